"""`daidai fetch` through the installed executable, against nginx on loopback."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli_project import DAIDAI, Project, daidai, make_project, one_error_line
from tests.servers import NginxServer


@pytest.fixture
def project(tmp_path: Path, http_server: NginxServer) -> Project:
    return make_project(tmp_path / "proj", http_server)


def _locked_uris(project: Project) -> list[str]:
    return [
        line.split('"')[1] for line in project.lockfile.read_text().splitlines() if "uri" in line
    ]


def test_fetch_downloads_every_on_disk_file_and_writes_a_sorted_lockfile(
    project: Project, http_server: NginxServer, cache_dir: Path
) -> None:
    first = project.run("fetch", "--jobs", "2")
    lock = project.lockfile.read_bytes()
    http_server.clear_log()
    again = project.run("fetch")

    assert first.code == 0, first
    assert "2 downloaded" in first.stdout
    assert _locked_uris(project) == sorted(project.urls.values())
    assert lock.startswith(b"version = 1\n")
    assert b"sha256:" in lock and b"size = 65536" in lock
    assert again.code == 0, again
    assert "0 downloaded, 2 already cached" in again.stdout
    assert project.lockfile.read_bytes() == lock  # byte-identical when nothing changed
    assert http_server.requests() == []  # a cache hit makes no request at all
    assert any(cache_dir.rglob("*-weights.bin"))


def test_fetch_refresh_downloads_again(project: Project, http_server: NginxServer) -> None:
    project.run("fetch")
    http_server.clear_log()

    result = project.run("fetch", "--refresh")

    assert result.code == 0, result
    assert "2 downloaded" in result.stdout
    fetched = {path for method, path in http_server.requests() if method == "GET"}
    assert len(fetched) == 2


def test_fetch_without_target_mirrors_the_project_and_with_targets_keeps_other_entries(
    project: Project,
) -> None:
    project.run("fetch")
    weights = project.urls["weights.bin"]
    (project.root / "app" / "models.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n"
        f"@artifact\ndef model(weights: Annotated[Path, {weights!r}]) -> int:\n    return 1\n"
    )

    targeted = project.run("fetch", "app.models:model")
    kept = _locked_uris(project)
    mirrored = project.run("fetch")

    assert targeted.code == 0, targeted
    assert project.urls["vocab.txt"] in kept
    assert mirrored.code == 0, mirrored
    assert "1 dropped" in mirrored.stdout
    assert _locked_uris(project) == [weights]


def test_fetch_locked_passes_when_up_to_date_and_never_writes(project: Project) -> None:
    project.run("fetch")
    before = project.lockfile.stat().st_mtime_ns

    result = project.run("fetch", "--locked")

    assert result.code == 0, result
    assert project.lockfile.stat().st_mtime_ns == before


def test_fetch_locked_counts_a_uri_with_credentials_as_declared(project: Project) -> None:
    # The lockfile keeps the URI without `user:token@`; the code declares it with them.
    project.urls["vocab.txt"] = project.urls["vocab.txt"].replace("://", "://user:tok3n@", 1)
    project.write_models()
    project.run("fetch")

    result = project.run("fetch", "--locked")

    assert result.code == 0, result
    assert "no longer declared" not in result.stdout + result.stderr, result
    assert "tok3n" not in project.lockfile.read_text()


def test_fetch_locked_exits_3_when_a_remote_file_changed(project: Project) -> None:
    project.run("fetch")
    lock = project.lockfile.read_bytes()
    project.serve("weights.bin", os.urandom(1000))

    result = project.run("fetch", "--locked")

    assert result.code == 3, result
    assert project.urls["weights.bin"] in one_error_line(result)
    assert project.lockfile.read_bytes() == lock


def test_fetch_locked_exits_3_when_the_code_declares_a_file_the_lockfile_lacks(
    project: Project,
) -> None:
    project.run("fetch")
    new = project.serve("extra.bin", b"new file")
    project.write_models(
        extra=f"""
        @artifact
        def extra(data: Annotated[bytes, {new!r}]) -> bytes:
            return data
        """
    )

    result = project.run("fetch", "--locked")

    assert result.code == 3, result
    line = one_error_line(result)
    assert new in line and "daidai fetch" in line
    assert new not in project.lockfile.read_text()


def test_fetch_locked_exits_3_when_there_is_no_lockfile(project: Project) -> None:
    result = project.run("fetch", "--locked")

    assert result.code == 3, result
    assert not project.lockfile.exists()


def test_docker_flow_frozen_fetch_then_offline_predictors(
    project: Project, http_server: NginxServer, tmp_path: Path
) -> None:
    assert project.run("fetch").code == 0
    image = tmp_path / "image"
    image.mkdir()
    for name in ("daidai.toml", "daidai.lock"):
        shutil.copy(project.root / name, image / name)
    env = {"DAIDAI_CACHE_DIR": str(tmp_path / "image-cache")}

    # The layer before `COPY . .`: only daidai.toml and daidai.lock exist, no code.
    frozen = daidai("fetch", "--frozen", cwd=image, env=env)
    shutil.copytree(project.root / "app", image / "app")
    http_server.stop()
    try:
        offline = {**env, "DAIDAI_OFFLINE": "1"}
        ran = daidai("run", "app.models:predict", "--text", "lemon kiwi", cwd=image, env=offline)
        script = "from app.models import predict, stats; print(predict('lime'), stats(3))"
        direct = subprocess.run(
            [sys.executable, "-c", script],
            cwd=image,
            env={**os.environ, **offline},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        http_server.start()

    assert frozen.code == 0, frozen
    assert "2 downloaded" in frozen.stdout
    assert ran.code == 0, ran
    assert ran.stdout == "1 known, model of 65536 bytes x2\n"
    assert direct.returncode == 0, direct.stderr
    assert "1 known" in direct.stdout and "'words': 3" in direct.stdout


def test_fetch_frozen_imports_no_code_and_exits_3_on_a_hand_edited_checksum(
    project: Project, tmp_path: Path
) -> None:
    project.run("fetch")
    (project.root / "app" / "models.py").write_text("raise SystemExit('imported!')\n")
    text = project.lockfile.read_text()
    start = text.index("sha256:") + len("sha256:")
    project.lockfile.write_text(text[:start] + "0" * 64 + text[start + 64 :])
    env = {"DAIDAI_CACHE_DIR": str(tmp_path / "fresh-cache")}

    result = project.run("fetch", "--frozen", env=env)

    assert result.code == 3, result
    assert "checksum mismatch" in one_error_line(result)


def test_fetch_rejects_contradictory_or_invalid_options(project: Project) -> None:
    both = project.run("fetch", "--locked", "--frozen")
    zero_jobs = project.run("fetch", "--jobs", "0")
    frozen_target = project.run("fetch", "--frozen", "app.models")

    for result in (both, zero_jobs, frozen_target):
        assert result.code == 2, result
        one_error_line(result)


class _TricklingHandler(http.server.BaseHTTPRequestHandler):
    """64 KiB every 50 ms of a 64 MiB body (50 s in all), with or without Content-Length."""

    protocol_version = "HTTP/1.0"
    sized = True

    def do_GET(self) -> None:
        self.send_response(200)
        if self.sized:
            self.send_header("Content-Length", str(64 << 20))
        self.end_headers()
        try:
            for _ in range(1024):
                self.wfile.write(b"x" * 65536)
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client went away

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("sized", [True, False], ids=["content-length", "no-length"])
def test_ctrl_c_stops_a_large_download_at_once_and_caches_nothing(
    tmp_path: Path, sized: bool
) -> None:
    handler = type("Handler", (_TricklingHandler,), {"sized": sized})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/big.bin"
    (tmp_path / "daidai.toml").write_text("")
    (tmp_path / "app_big.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n\n"
        f"@artifact\ndef big(p: Annotated[Path, {url!r}]) -> int:\n    return 0\n"
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "DAIDAI_CACHE_DIR": str(cache)}
    try:
        child = subprocess.Popen(
            [DAIDAI, "fetch", "app_big"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not list(cache.glob("files/*/*/.tmp-*/big.bin")):  # the download is under way
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=30)
        took = time.monotonic() - interrupted
    finally:
        server.shutdown()
        server.server_close()
    assert child.returncode == 130
    assert took < 10  # the body alone needs 50 s
    leftovers = [p.name for p in cache.glob("files/*/*/*") if p.is_dir()]
    assert leftovers == []  # no version, no staging folder
    assert not (tmp_path / "daidai.lock").exists()
