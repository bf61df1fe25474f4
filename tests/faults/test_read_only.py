"""A read-only deployment: `daidai fetch` at build time, then the cache (and the project) on a
read-only bind mount. Predictors load with no write attempted, nothing logged, no network.

The mount is the proof: any write (a last-used mark, a lock file, a staging folder) would
fail with EROFS. A snapshot of the cache's metadata (sizes, mtimes, ctimes) before and after
shows that nothing was written through another path either.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daidai import DaidaiError, ModelManager
from daidai.errors import CacheError
from tests.faults.conftest import child_env, run_cli, sha256, write_project
from tests.servers import NginxServer

HttpFile = Callable[..., tuple[str, bytes]]


# Runs the predictor with an audit hook (PEP 578) that records every attempt to create,
# change or remove anything under the cache, whether or not it would have succeeded.
WATCH_WRITES = """
import logging, os, sys
cache = os.path.realpath(os.environ["DAIDAI_CACHE_DIR"])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.utime", "os.truncate",
           "os.chmod", "os.chown", "os.link", "os.symlink", "shutil.rmtree", "shutil.move"}
attempted = []

def under_cache(path):
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.path.realpath(os.fsdecode(path)).startswith(cache)
    return False

def hook(event, args):
    if event == "open" and len(args) >= 3 and isinstance(args[2], int):
        if args[2] & WRITE_FLAGS and under_cache(args[0]):
            attempted.append((event, os.fsdecode(args[0])))
    elif event in CHANGES and args and under_cache(args[0]):
        attempted.append((event, os.fsdecode(args[0])))

sys.addaudithook(hook)
logging.basicConfig(level=logging.DEBUG)
import app
print(app.digests())
print("writes attempted:", attempted)
"""


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """`relative path -> (size, mtime_ns, ctime_ns)` for everything under `folder`."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return found


@pytest.fixture
def deployed(
    tmp_path: Path,
    http_file: HttpFile,
    read_only_view: Callable[[Path], Path],
    cache_dir: Path,
) -> tuple[Path, Path, dict[str, bytes]]:
    """`(read-only project, read-only cache, {name: bytes})` after a `daidai fetch`."""
    files = {name: http_file(size) for name, size in (("weights", 3 << 20), ("vocab", 5000))}
    project = tmp_path / "proj"
    write_project(project, {name: url for name, (url, _) in files.items()})
    fetched = run_cli("fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    return read_only_view(project), read_only_view(cache_dir), {n: d for n, (_, d) in files.items()}


def expected(files: dict[str, bytes]) -> str:
    return " ".join(f"{n}={sha256(d).partition(':')[2]}" for n, d in sorted(files.items()))


def test_a_predictor_loads_from_a_read_only_cache_silently_and_offline_from_the_server(
    deployed: tuple[Path, Path, dict[str, bytes]], http_server: NginxServer, cache_dir: Path
) -> None:
    project, cache, files = deployed
    before = snapshot(cache_dir)
    http_server.clear_log()
    env = child_env(DAIDAI_CACHE_DIR=str(cache), DAIDAI_LOG_LEVEL="DEBUG")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", WATCH_WRITES], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result, attempted = done.stdout.strip().splitlines()
    assert result == expected(files)
    assert attempted == "writes attempted: []"
    assert [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line] == []
    assert http_server.requests() == []
    assert snapshot(cache_dir) == before


def test_in_process_loads_log_nothing_above_debug_and_write_nothing(
    deployed: tuple[Path, Path, dict[str, bytes]],
    cache_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, cache, files = deployed
    before = snapshot(cache_dir)
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(cache))
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    sys.modules.pop("app", None)
    import app  # type: ignore[import-not-found]

    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        with ModelManager():
            assert app.digests() == expected(files)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert snapshot(cache_dir) == before
    sys.modules.pop("app", None)


def test_the_cli_verifies_and_lists_a_read_only_cache(
    deployed: tuple[Path, Path, dict[str, bytes]], cache_dir: Path
) -> None:
    project, cache, _ = deployed
    before = snapshot(cache_dir)
    env = child_env(DAIDAI_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1")
    for args in (("verify",), ("cache", "ls"), ("graph", "--format", "json")):
        done = run_cli(*args, cwd=project, env=env)
        assert done.returncode == 0, (args, done.stderr)
    assert snapshot(cache_dir) == before


def test_a_file_missing_from_a_read_only_cache_is_a_cache_error(
    deployed: tuple[Path, Path, dict[str, bytes]],
    http_file: HttpFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, cache, _ = deployed
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(cache))
    url, _ = http_file(100)
    from daidai._settings import load_settings
    from daidai.files.fetch import FetchRequest, fetch

    with pytest.raises(CacheError, match="not writable") as caught:
        fetch(FetchRequest(url, component="app.x", parameter="p"), settings=load_settings())
    assert isinstance(caught.value, DaidaiError) and caught.value.uri == url
    assert not os.access(cache, os.W_OK)
