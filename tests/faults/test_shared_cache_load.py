"""Load: a server answers from cached files while the cache is refreshed, pruned, emptied
and cleaned entry by entry in a loop, by other processes (SPEC §1.4).

The server holds a `Path` (read on every request) and opens a handle per request;
short-lived workers start all along (their first hand-out races the cleanups). A cleaner
process cycles `fetch --refresh`, `cache prune --yes` (from a folder with no project),
`cache rm --yes '*'` and `cache clear --yes`. Every request and every worker must get the
source's exact bytes, every cleanup command must succeed, and the cleanups must really
delete (a file nothing holds goes each round).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.cli_project import DAIDAI
from tests.servers import NginxServer

MiB = 1024 * 1024

APP = """
import hashlib
from pathlib import Path
from typing import Annotated, BinaryIO

from daidai import artifact, predictor


@artifact
def model(weights: Annotated[Path, {held!r}]) -> Path:
    return weights


@predictor
def from_path(m: Annotated[Path, model]) -> bytes:
    return m.read_bytes()


@predictor
def from_handle(f: Annotated[BinaryIO, {handle!r}]) -> bytes:
    return f.read()


@predictor
def worker(p: Annotated[Path, {worker!r}]) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@artifact
def spare(p: Annotated[Path, {spare!r}]) -> int:
    return 0
"""

SERVER = """
import http.server, sys
import app

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body = app.from_path() if self.path == "/path" else app.from_handle()
        except Exception as exc:  # a failed request is what the test counts
            self.send_error(500, repr(exc))
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

CLEANER = """
import subprocess, sys, time
daidai, project, elsewhere, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rounds = [
    ("fetch --refresh", [daidai, "fetch", "--refresh"], project),
    ("prune", [daidai, "cache", "prune", "--yes"], elsewhere),
    ("rm", [daidai, "cache", "rm", "--yes", "*"], elsewhere),
    ("clear", [daidai, "cache", "clear", "--yes"], elsewhere),
]
end = time.monotonic() + seconds
while time.monotonic() < end:
    for name, command, cwd in rounds:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        freed = [l for l in done.stdout.splitlines() if l.startswith("freed ")]
        print(name, done.returncode, freed[-1] if freed else "-", sep="|", flush=True)
        if done.returncode != 0:
            print("FAILED", name, done.stderr.strip().replace("\\n", " | "), flush=True)
"""


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(5.0, id="5s"), pytest.param(30.0, id="30s", marks=pytest.mark.slow)],
)
def test_a_server_answers_right_while_the_cache_is_refreshed_pruned_and_cleared(
    tmp_path: Path, http_server: NginxServer, seconds: float
) -> None:
    files = {name: os.urandom(MiB) for name in ("held", "handle", "worker", "spare")}
    urls = {name: http_server.put(f"load/{name}.bin", data) for name, data in files.items()}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    project = tmp_path / "proj"
    project.mkdir()
    (project / "daidai.toml").write_text('modules = ["app"]\n')
    (project / "app.py").write_text(APP.format(**urls))
    (project / "server.py").write_text(SERVER)
    (project / "cleaner.py").write_text(CLEANER)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert subprocess.run([DAIDAI, "fetch"], cwd=project, capture_output=True).returncode == 0

    tally: Counter[str] = Counter()
    server = subprocess.Popen(
        [sys.executable, "server.py"], cwd=project, stdout=subprocess.PIPE, text=True
    )
    cleaner = None
    stop = threading.Event()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for kind in ("path", "handle"):  # the server's first hand-outs, before the loop
            assert _get(port, kind) == files["held" if kind == "path" else "handle"]
        cleaner = subprocess.Popen(
            [sys.executable, "cleaner.py", DAIDAI, str(project), str(elsewhere), str(seconds)],
            cwd=project,
            stdout=subprocess.PIPE,
            text=True,
        )
        workers = threading.Thread(target=_spawn_workers, args=(project, digests, tally, stop))
        workers.start()
        try:
            while cleaner.poll() is None:
                for kind, name in (("path", "held"), ("handle", "handle")):
                    try:
                        body = _get(port, kind)
                    except OSError as exc:
                        tally[f"failed {kind}: {exc}"] += 1
                        continue
                    tally["requests"] += 1
                    tally["wrong bytes"] += body != files[name]
        finally:
            stop.set()
            workers.join(timeout=120)
        log = cleaner.communicate(timeout=120)[0].splitlines()
    finally:
        for process in (server, cleaner):
            if process is not None:
                process.kill()
                process.communicate(timeout=30)

    runs = Counter(line.split("|")[0] for line in log if not line.startswith("FAILED"))
    frees = [line for line in log if "|freed" in line and not line.endswith("|freed 0 B")]
    print(f"\nshared cache load, {seconds:.0f} s: {dict(tally)}; cleanups {dict(runs)}")
    print(f"{len(frees)} cleanup runs freed bytes")
    failures = [k for k in tally if k.startswith("failed")]
    assert failures == [] and tally["wrong bytes"] == 0, tally
    assert tally["requests"] > 0 and tally["workers"] > 0, tally
    assert [line for line in log if line.startswith("FAILED")] == [], log
    assert frees, log  # the cleanups did delete: a test of nothing would pass too


def _get(port: int, kind: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{kind}", timeout=60) as response:
        body: bytes = response.read()
    return body


def _spawn_workers(
    project: Path, digests: dict[str, str], tally: Counter[str], stop: threading.Event
) -> None:
    """Start one short-lived worker after another: each hands out `worker.bin` for the
    first time in its process (fetching it again when a cleanup removed it)."""
    code = "import app; print(app.worker())"
    while not stop.is_set():
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            tally[f"failed worker: {done.stderr.strip().splitlines()[-1:]}"] += 1
        elif done.stdout.strip() != digests["worker"]:
            tally["wrong bytes"] += 1
        else:
            tally["workers"] += 1
        time.sleep(0.05)
