"""What every scenario shares: the result row, the run context, timing and process helpers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PYTHON",
    "REPO_ROOT",
    "Context",
    "Row",
    "Timed",
    "daidai_script",
    "fail_row",
    "floor_row",
    "format_bytes",
    "format_seconds",
    "info_row",
    "last_line",
    "median",
    "run",
    "run_python",
    "time_process",
    "write_random",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes:
        scenario: the scenario's short name.
        measure: what was measured.
        value: daidai's figure, formatted.
        baseline: what it is compared with, and its figure, formatted.
        ratio: daidai's figure over the baseline's (or the other way round, as `measure` says).
        floor: the required bound on `ratio` (or on `value`), empty when none applies.
        status: `PASS` or `MISS` (a floor), `INFO` (no floor), `FAIL` (could not run), `ERROR`.
        note: a short explanation (an error message, a profile's finding).
    """

    scenario: str
    measure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    floor: str = ""
    status: str = "INFO"
    note: str = ""


def info_row(scenario: str, measure: str, value: str, baseline: str = "", **kw: Any) -> Row:
    """A row with no floor."""
    return Row(scenario, measure, value, baseline, status="INFO", **kw)


def fail_row(scenario: str, measure: str, why: str) -> Row:
    """A row for something that could not run at all (not a number)."""
    return Row(scenario, measure, "failed", status="FAIL", note=why)


def floor_row(
    scenario: str,
    measure: str,
    value: str,
    baseline: str,
    ratio: float | None,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    checked: float | None = None,
    floor: str | None = None,
    note: str = "",
) -> Row:
    """A row whose `checked` figure (default: `ratio`) must stay within a bound."""
    figure = ratio if checked is None else checked
    ok = figure is not None
    if ok and at_most is not None:
        ok = figure <= at_most  # type: ignore[operator]
    if ok and at_least is not None:
        ok = figure >= at_least  # type: ignore[operator]
    if floor is None:
        floor = f"≤ {at_most:g}x" if at_most is not None else f"≥ {at_least:g}x"
    return Row(scenario, measure, value, baseline, ratio, floor, "PASS" if ok else "MISS", note)


@dataclass
class Context:
    """What a scenario gets: mode, sizes, a scratch folder, the upstream interpreter."""

    quick: bool
    workdir: Path
    upstream_python: Path | None = None
    upstream_problem: str = ""
    log: Callable[[str], None] = field(default=lambda message: None)

    @property
    def repeats(self) -> int:
        """Timed runs per figure: the table reports their median."""
        return 3 if self.quick else 5

    def scratch(self, name: str) -> Path:
        """A fresh, empty folder under the run's scratch folder."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path

    def env(self, **extra: str | os.PathLike[str]) -> dict[str, str]:
        """The environment for a child process: no `DAIDAI_*` from outside, the repo importable."""
        env = self.upstream_env(**extra)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return env

    def upstream_env(self, **extra: str | os.PathLike[str]) -> dict[str, str]:
        """The environment for upstream's venv: this repository stays out of its path."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIDAI_")}
        env.pop("PYTHONPATH", None)
        env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        env.update({k: str(v) for k, v in extra.items()})
        return env


@dataclass(frozen=True)
class Timed:
    """One child process: wall seconds, peak RSS in bytes (when asked), its output."""

    seconds: float
    rss: int | None
    stdout: str
    stderr: str
    returncode: int


def daidai_script() -> str:
    """The `daidai` console script of this interpreter (not a pyenv shim, which adds ~40 ms)."""
    candidate = Path(sysconfig.get_path("scripts")) / "daidai"
    return str(candidate) if candidate.is_file() else shutil.which("daidai") or "daidai"


def run(
    command: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    rss: bool = False,
    check: bool = True,
    timeout: float = 300,
) -> Timed:
    """Run a command to completion; with `rss`, measure its peak RSS with `/usr/bin/time`.

    A child's own `ru_maxrss` would be inherited from this (large) parent across fork, so the
    peak is read by GNU time, which execs the command itself.
    """
    argv = [str(part) for part in command]
    with contextlib.ExitStack() as stack:
        report: Path | None = None
        if rss:
            handle, name = tempfile.mkstemp(prefix="rss-", suffix=".txt")
            os.close(handle)
            report = Path(name)
            stack.callback(report.unlink, missing_ok=True)
            argv = [_TIME, "-f", "%M", "-o", str(report), *argv]
        began = time.perf_counter()
        done = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - began
        peak = int(report.read_text().split()[-1]) * 1024 if report is not None else None
    if check and done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return Timed(seconds, peak, done.stdout, done.stderr, done.returncode)


def run_python(
    python: str | os.PathLike[str],
    code: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 300,
) -> Any:
    """Run `code` in a fresh interpreter and return the JSON it prints last on stdout."""
    done = run([python, "-c", code], env=env, cwd=cwd, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(last_line(done.stderr))
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_process(
    command: Sequence[str | os.PathLike[str]],
    repeats: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    before: Callable[[], Any] | None = None,
    warmup: bool = True,
) -> list[float]:
    """Wall seconds of `repeats` runs of `command` (after one untimed warm-up run)."""
    times = []
    for index in range(repeats + 1 if warmup else repeats):
        if before is not None:
            before()
        took = run(command, env=env, cwd=cwd).seconds
        if index or not warmup:
            times.append(took)
    return times


def median(values: Sequence[float]) -> float:
    """The median of `values`."""
    return statistics.median(values)


def last_line(text: str) -> str:
    """The last non-empty line of `text` (the message of a Python traceback), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "(no output)")[:300]


def format_seconds(seconds: float) -> str:
    """`1.23 s`, `45.6 ms` or `789 ns`, whichever reads best."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e9:.0f} ns"


def format_bytes(size: float) -> str:
    """`512 MiB`, `57.3 MiB`, ..."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size:.0f} B"


def write_random(path: Path, size: int, *, chunk: int = 8 << 20) -> None:
    """Write `size` random bytes to `path` (incompressible, so no layer can cheat)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size
        while left:
            step = min(chunk, left)
            out.write(os.urandom(step))
            left -= step


PYTHON = sys.executable
