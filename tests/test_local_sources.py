"""Local sources in the runtime: which version is in use, and edits picked up (SPEC §1.4, §1.8)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

_APP = """
import logging, sys
from pathlib import Path
from typing import Annotated
from daidai import ModelManager, artifact, predictor

@artifact
def labels(text: Annotated[str, "labels.txt"]) -> str:
    return text.strip()

@predictor
def label(path: Annotated[Path, "labels.txt"], current: Annotated[str, labels]) -> str:
    return current

for _ in range(3):
    print(label())
with ModelManager():
    print(label())
"""


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_version_in_use_is_logged_once_per_process_at_info(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("v1\n")
    digest = "sha256:" + hashlib.sha256(b"v1\n").hexdigest()

    first = _python(_APP, tmp_path, DAIDAI_LOG_LEVEL="INFO")
    second = _python(_APP, tmp_path, DAIDAI_LOG_LEVEL="INFO")

    for done in (first, second):
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["v1"] * 4
        using = [line for line in done.stderr.splitlines() if " using " in line]
        assert len(using) == 1, done.stderr
        assert "INFO" in using[0] and "labels.txt" in using[0] and digest in using[0]


_PROJECT = """
from typing import Annotated
from daidai import artifact, predictor

@artifact
def labels(text: Annotated[str, "data/labels.txt"]) -> str:
    return text.strip()

@predictor
def label(current: Annotated[str, labels]) -> str:
    return current
"""


def _daidai(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    from tests.cli_project import DAIDAI

    return subprocess.run(
        [DAIDAI, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _edit(path: Path, text: str) -> None:
    """Rewrite `path` with a modification time that surely differs (coarse clocks)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 5_000_000_000, before + 5_000_000_000))


def _project(root: Path, with_lock: bool) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(_PROJECT)
    (root / "data").mkdir()
    (root / "data" / "labels.txt").write_text("v1\n")
    (root / "daidai.toml").write_text('modules = ["app.models"]\n')
    if with_lock:
        assert _daidai("fetch", cwd=root).returncode == 0
    return root


def test_an_edited_local_file_is_picked_up_when_no_lockfile_pins_it(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", with_lock=False)
    first = _daidai("run", "app.models:label", cwd=root)
    _edit(root / "data" / "labels.txt", "v2\n")

    second = _daidai("run", "app.models:label", cwd=root)

    assert first.stdout == "v1\n", first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout == "v2\n"


def test_an_edited_locked_local_file_keeps_the_pin_until_daidai_fetch_records_it(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "proj", with_lock=True)
    lock = root / "daidai.lock"
    pinned = lock.read_text()
    _edit(root / "data" / "labels.txt", "v2\n")

    ran = _daidai("run", "app.models:label", cwd=root)
    locked = _daidai("fetch", "--locked", cwd=root)
    still = lock.read_text()
    fetched = _daidai("fetch", cwd=root)
    after = _daidai("run", "app.models:label", cwd=root)
    relocked = _daidai("fetch", "--locked", cwd=root)

    # The pin wins at run time, and a warning says the lockfile is out of date.
    assert ran.returncode == 0 and ran.stdout == "v1\n", ran.stderr
    assert "out of date" in ran.stderr and "data/labels.txt" in ran.stderr
    # --locked fails naming the command that fixes it, and writes nothing.
    assert locked.returncode == 3, locked.stderr
    assert "data/labels.txt" in locked.stderr
    assert "daidai fetch --refresh app.models:labels" in locked.stderr
    assert still == pinned
    # Plain fetch records the new checksum; then everything agrees on v2.
    assert fetched.returncode == 0, fetched.stderr
    assert "1 changed" in fetched.stdout
    v2 = "sha256:" + hashlib.sha256(b"v2\n").hexdigest()
    assert v2 in lock.read_text() and lock.read_text() != pinned
    assert after.stdout == "v2\n", after.stderr
    assert relocked.returncode == 0, relocked.stderr


def test_a_touched_but_unchanged_local_file_keeps_fetch_locked_passing(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", with_lock=True)
    _edit(root / "data" / "labels.txt", "v1\n")  # same bytes, new modification time

    locked = _daidai("fetch", "--locked", cwd=root)

    assert locked.returncode == 0, locked.stderr


def test_a_locked_local_file_edited_and_missing_from_the_cache_is_a_checksum_error(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "proj", with_lock=True)
    _edit(root / "data" / "labels.txt", "v2\n")
    assert _daidai("cache", "clear", "--yes", cwd=root).returncode == 0

    ran = _daidai("run", "app.models:label", cwd=root)

    assert ran.returncode == 3, ran.stderr
    line = ran.stderr.strip().splitlines()[-1]
    assert "checksum mismatch" in line and "data/labels.txt" in line
    assert "daidai fetch" in line
