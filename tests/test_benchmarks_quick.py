"""The benchmark suite's quick mode runs to the end and reports a table.

No timing is asserted here: floors are checked (PASS/MISS) by the suite itself, and a slow
CI machine must not fail the build. What is asserted is that every scenario ran without
crashing and that the report has the table and the machine it ran on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import SCENARIOS
from benchmarks.upstream import VENV

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_quick_benchmarks_complete_and_write_a_table(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--output", str(report)]
    if not (VENV / ".installed").is_file():
        command.append("--no-upstream")  # CI does not install upstream daidai just for this
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIDAI_")}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=570, check=False
    )

    assert done.returncode == 0, done.stderr[-3000:]
    header = "| scenario | measure | daidai | baseline | ratio | floor | result | note |"
    assert header in done.stdout
    assert "| ERROR |" not in done.stdout
    text = report.read_text()
    for name in SCENARIOS:
        assert f"### {name}" in text
    assert "`nproc`" in text
    assert "python -m benchmarks --quick" in text
    assert any(f"| {status} |" in text for status in ("PASS", "MISS"))
