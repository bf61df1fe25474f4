"""Type checkers keep each component's return type and accept the seed's calls."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).parent / "typing" / "seed_usage.py"


def revealed(output: str) -> list[str]:
    """The revealed types, in order, from mypy's or pyright's output."""
    lines = [line for line in output.splitlines() if re.search("[Rr]evealed type|Type of", line)]
    return [re.findall(r'"([^"]+)"\s*$', line)[0] for line in lines]


def test_mypy_keeps_return_types_and_reports_no_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(SAMPLE)],
        capture_output=True,
        text=True,
    )
    assert "error:" not in out.stdout, out.stdout
    types = revealed(out.stdout)
    assert types[0] == "str", out.stdout
    assert types[1].endswith("seed_usage.Client") and types[2].endswith("seed_usage.Client")
    assert types[3] == "typing.Coroutine[Any, Any, str]", out.stdout


def test_pyright_keeps_return_types_and_reports_no_error() -> None:
    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.fail("pyright is not installed: pip install -e '.[test]'")
    out = subprocess.run([pyright, str(SAMPLE)], capture_output=True, text=True)
    assert "\n0 errors" in out.stdout, out.stdout
    types = revealed(out.stdout)
    assert types == ["str", "Client", "Client", "Coroutine[Any, Any, str]"], out.stdout
