"""Fixtures for the security suite: a loopback HTTP server that records every request's
headers and can answer as an attacker's server would (an endless body, a gzip bomb), and a
sandbox that sees every file written outside the cache."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENDLESS_CHUNK = 64 * 1024
BOMB_SIZE = 64 * 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Recorder:
    """What one server was asked: `(path, headers)` per request, and what it serves."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    endless_sent: int = 0

    def put(self, path: str, data: bytes) -> str:
        self.files["/" + path.lstrip("/")] = data
        return f"{self.url}/{path.lstrip('/')}"

    def headers_seen(self) -> list[dict[str, str]]:
        return [headers for _, headers in self.seen]


class _Handler(http.server.BaseHTTPRequestHandler):
    recorder: Recorder

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        rec = self.recorder
        rec.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path.startswith("/endless"):
            return self._endless(body)
        if self.path.startswith("/bomb"):
            return self._bomb(body)
        data = rec.files.get(self.path.split("?", 1)[0])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _endless(self, body: bool) -> None:
        # No Content-Length: the body ends when the client hangs up (at most 256 MiB).
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"A" * ENDLESS_CHUNK
        try:
            for _ in range(4096 if body else 0):
                self.wfile.write(chunk)
                self.recorder.endless_sent += len(chunk)
        except OSError:
            return

    def _bomb(self, body: bool) -> None:
        # 64 MiB of zeros in ~64 KiB: small on the wire, large once decoded.
        packed = _bomb()
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(packed)))
        self.end_headers()
        if body:
            self.wfile.write(packed)


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9)


@pytest.fixture
def recording_server() -> Iterator[Callable[[], Recorder]]:
    """`start() -> Recorder`: a fresh loopback HTTP server per call, stopped after the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start() -> Recorder:
        handler = type("Handler", (_Handler,), {})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        handler.recorder = Recorder(f"http://127.0.0.1:{server.server_address[1]}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return handler.recorder

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def files_under(root: Path, skip: tuple[Path, ...] = ()) -> set[Path]:
    """Every path under `root`, links not followed, except under `skip`."""
    found: set[Path] = set()
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        found.update(here / n for n in names + dirs if here / n not in skip)
    return found


@dataclass
class Sandbox:
    """A home folder for the test, and the cache inside the test folder: `outside()` lists
    what appeared anywhere but in the cache since the sandbox was made."""

    root: Path
    cache: Path
    before: set[Path]

    def mark(self) -> None:
        """Take the snapshot again (after the test laid out its project)."""
        self.before = files_under(self.root, (self.cache,))

    def outside(self, *allowed: Path) -> set[Path]:
        now = files_under(self.root, (self.cache, *allowed))
        return now - self.before


@pytest.fixture
def sandbox(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The test's folder as HOME (a `.pth` in site-packages would go under it), TMPDIR
    inside it, and a snapshot taken now."""
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    return Sandbox(tmp_path, cache_dir, files_under(tmp_path, (cache_dir,)))
