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
