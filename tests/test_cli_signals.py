"""SIGTERM stops a command the way Ctrl-C does (`timeout`, `docker stop`, Kubernetes)."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.cli_project import DAIDAI, daidai

_SIZE = 64 << 20


class _SlowThenFastHandler(http.server.BaseHTTPRequestHandler):
    """The first GET trickles 64 KiB every 50 ms of a 64 MiB body (50 s in all); later
    ones send it at once, so a rerun can finish."""

    protocol_version = "HTTP/1.0"
    body = b""
    served = 0

    def do_GET(self) -> None:
        cls = type(self)
        slow, cls.served = cls.served == 0, cls.served + 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        step = 65536
        try:
            for start in range(0, len(self.body), step):
                self.wfile.write(self.body[start : start + step])
                if slow:
                    self.wfile.flush()
                    time.sleep(0.05)
        except OSError:
            pass  # the client went away

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_sigterm_mid_download_leaves_no_partial_entry_and_a_rerun_succeeds(
    tmp_path: Path, cache_dir: Path
) -> None:
    body = os.urandom(_SIZE)
    handler = type("Handler", (_SlowThenFastHandler,), {"body": body, "served": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/big.bin"
    (tmp_path / "daidai.toml").write_text('modules = ["app_big"]\n')
    (tmp_path / "app_big.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n\n"
        f"@artifact\ndef big(p: Annotated[Path, {url!r}]) -> int:\n    return 0\n"
    )
    try:
        child = subprocess.Popen(
            [DAIDAI, "fetch"],
            cwd=tmp_path,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not list(cache_dir.glob("files/*/*/.tmp-*/big.bin")):  # under way
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
            child.send_signal(signal.SIGTERM)
            _, stderr = child.communicate(timeout=30)
        finally:
            child.kill()
            child.wait()
        leftovers = [p.name for p in cache_dir.glob("files/*/*/*") if p.is_dir()]
        lock_after_kill = (tmp_path / "daidai.lock").exists()
        rerun = daidai("fetch", cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()

    assert child.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert leftovers == []  # no version, no staging folder
    assert not lock_after_kill
    assert rerun.code == 0, rerun
    assert "1 downloaded" in rerun.stdout
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert digest in (tmp_path / "daidai.lock").read_text()
    [cached] = cache_dir.glob("files/*/*/sha256-*/big.bin")
    assert cached.read_bytes() == body
