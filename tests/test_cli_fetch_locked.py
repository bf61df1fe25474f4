"""`daidai fetch --locked` notices a changed source by whatever the source tells (SPEC §4):
ETag or version id, else Last-Modified and size, else the content's hash."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_project import daidai, one_error_line


class _LastModifiedOnly(http.server.SimpleHTTPRequestHandler):
    """python's own file server: Content-Length and Last-Modified, no ETag."""

    methods: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.methods.append(self.command)


class _NoIdentity(_LastModifiedOnly):
    """The same files with neither ETag nor Last-Modified."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() not in ("etag", "last-modified"):
            super().send_header(keyword, value)


@pytest.fixture(params=[_LastModifiedOnly, _NoIdentity], ids=["last-modified", "no-identity"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, str, list[str], bool]]:
    root = tmp_path / "served"
    root.mkdir()
    methods: list[str] = []
    cls = type("Handler", (request.param,), {"methods": methods})
    handler = functools.partial(cls, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tells = request.param is _LastModifiedOnly
        yield root, f"http://127.0.0.1:{server.server_address[1]}", methods, tells
    finally:
        server.shutdown()
        server.server_close()


def _project(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "daidai.toml").write_text('modules = ["weights_app"]\n')
    (root / "weights_app.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n\n"
        f"@artifact\ndef model(w: Annotated[Path, {url!r}]) -> int:\n    return 0\n"
    )
    return root


def test_fetch_locked_fails_after_a_same_size_change_at_a_source_without_etag(
    served: tuple[Path, str, list[str], bool], tmp_path: Path
) -> None:
    folder, base, methods, tells_last_modified = served
    weights = folder / "w.bin"
    weights.write_bytes(b"A" * 4096)
    root = _project(tmp_path, f"{base}/w.bin")
    assert daidai("fetch", cwd=root).code == 0
    methods.clear()
    unchanged = daidai("fetch", "--locked", cwd=root)
    asked = list(methods)
    weights.write_bytes(b"B" * 4096)  # same size
    later = weights.stat().st_mtime + 60
    os.utime(weights, (later, later))  # Last-Modified has one-second resolution
    lock = (root / "daidai.lock").read_bytes()

    changed = daidai("fetch", "--locked", cwd=root)

    assert unchanged.code == 0, unchanged
    # Last-Modified and size answer from one HEAD; a source telling nothing is read whole.
    assert ("GET" in asked) != tells_last_modified, asked
    assert changed.code == 3, changed
    line = one_error_line(changed)
    assert f"{base}/w.bin" in line
    assert "daidai fetch --refresh weights_app:model" in line
    assert (root / "daidai.lock").read_bytes() == lock
    assert daidai("fetch", "--refresh", "weights_app:model", cwd=root).code == 0
    assert daidai("fetch", "--locked", cwd=root).code == 0
