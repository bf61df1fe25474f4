"""Run every scenario, print the table of ratios, write `BENCHMARKS.md`.

    python -m benchmarks                 the full suite (< 10 minutes on 2 cores)
    python -m benchmarks --quick         smaller sizes, fewer repeats (what CI runs)
    python -m benchmarks --only verify   one scenario (repeatable)

Floors are checked here and reported as PASS or MISS; the exit code is 1 only when a
scenario crashed (ERROR), so a slow machine never fails CI.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from benchmarks import (
    first_call,
    large_file,
    many_files,
    overhead,
    scale,
    startup,
    verify,
)
from benchmarks._common import REPO_ROOT, Context, Row, last_line
from benchmarks.upstream import ensure_upstream

__all__ = ["SCENARIOS", "main"]

SCENARIOS: dict[str, ModuleType] = {
    "overhead": overhead,
    "startup": startup,
    "first-call": first_call,
    "many-files": many_files,
    "large-file": large_file,
    "verify": verify,
    "scale": scale,
}
_FINDINGS = Path(__file__).with_name("FINDINGS.md")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, run the scenarios, print and write the results; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    load_before = _load()
    names = _selected(args.only)
    began = time.monotonic()
    _compile_bytecode()
    upstream, problem = (None, "skipped (--no-upstream)")
    if not args.no_upstream:
        _say("preparing upstream daidai==0.0.7 in benchmarks/.upstream-venv")
        upstream, problem = ensure_upstream()
    workdir = Path(tempfile.mkdtemp(prefix="daidai-bench-"))
    ctx = Context(args.quick, workdir, upstream, problem, log=_say)
    rows: list[Row] = []
    try:
        for name in names:
            rows += _run_one(name, ctx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - began
    table = render_table(rows)
    print(table)
    print(_summary(rows, elapsed))
    output = args.output or (None if args.quick else REPO_ROOT / "BENCHMARKS.md")
    if output is not None:
        command = "python -m benchmarks" + "".join(f" {shlex.quote(a)}" for a in argv)
        load = f"{load_before} at the start, {_load()} at the end"
        output.write_text(render_report(rows, names, command, elapsed, load, quick=args.quick))
        _say(f"wrote {output}")
    return 1 if any(r.status == "ERROR" for r in rows) else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"one of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--output", type=Path, help="where to write the report (quick: none)")
    parser.add_argument(
        "--no-upstream", action="store_true", help="do not install or run daidai==0.0.7"
    )
    return parser


def _selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(SCENARIOS)
    wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise SystemExit(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    return wanted


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _compile_bytecode() -> None:
    # PYTHONDONTWRITEBYTECODE=1 is set here: without compiled bytecode every fresh process
    # would compile daidai from source and start-up figures would measure the compiler.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "daidai")], check=True
    )


def _run_one(name: str, ctx: Context) -> list[Row]:
    _say(f"== {name}")
    began = time.monotonic()
    scenario: Callable[[Context], list[Row]] = SCENARIOS[name].scenario
    try:
        rows = scenario(ctx)
    except Exception as exc:
        traceback.print_exc()
        rows = [Row(name, "scenario crashed", "error", status="ERROR", note=last_line(str(exc)))]
    _say(f"   {time.monotonic() - began:.1f} s")
    return rows


def _ratio(row: Row) -> str:
    return f"{row.ratio:.2f}x" if row.ratio is not None else ""


def render_table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| scenario | measure | daidai | baseline | ratio | floor | result | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r.scenario, r.measure, r.value, r.baseline, _ratio(r), r.floor, r.status, r.note]
        lines.append(
            "| " + " | ".join(" ".join(c.replace("|", "\\|").split()) for c in cells) + " |"
        )
    return "\n".join(lines)


def _summary(rows: Sequence[Row], elapsed: float) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("PASS", "MISS", "FAIL", "ERROR")}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"\nfloors: {parts}; {elapsed:.0f} s in all"


def machine(load: str) -> list[str]:
    """What the figures were measured on, and how busy it was."""
    cpu = "unknown"
    memory = "unknown"
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln)
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        memory = f"{int(mem) / (1 << 20):.1f} GiB"
    except (OSError, StopIteration, IndexError, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {cpu}, `nproc` = {cores}",
        f"- memory: {memory}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- {_versions()}",
        f"- load average: {load}",
    ]


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("fsspec", "aiohttp", "s3fs", "typer", "rich"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    for tool in (["curl", "--version"], ["nginx", "-v"]):
        if shutil.which(tool[0]) or Path(f"/usr/sbin/{tool[0]}").exists():
            done = subprocess.run(tool, capture_output=True, text=True, check=False)
            found.append((done.stdout or done.stderr).splitlines()[0].split(" (")[0])
    return ", ".join(found)


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def render_report(
    rows: Sequence[Row],
    names: Sequence[str],
    command: str,
    elapsed: float,
    load: str,
    *,
    quick: bool,
) -> str:
    """The whole `BENCHMARKS.md`."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = (
        "quick mode: smaller sizes, 3 repeats"
        if quick
        else "every figure is a median of 5 runs or more"
    )
    parts = [
        "# Benchmarks",
        "",
        "daidai next to what a user would otherwise use (plain Python, raw fsspec, `curl`, "
        "`sha256sum`) and next to upstream `daidai==0.0.7`, measured side by side in one run. "
        "Generated by `benchmarks/`; do not edit by hand (findings live in "
        "`benchmarks/FINDINGS.md`).",
        "",
        f"- command: `{command}` (from the repository root; {mode}; {elapsed:.0f} s in all)",
        f"- date: {now}, commit {_commit()} plus the working tree",
        "- bytecode compiled first (`python -m compileall -q daidai`): this environment sets "
        "`PYTHONDONTWRITEBYTECODE=1`, and without `.pyc` files every fresh process would "
        "compile daidai and start-up figures would time the compiler",
        "- servers: nginx, SeaweedFS, started on 127.0.0.1 by the suite and stopped after",
        "",
        "## Machine",
        "",
        *machine(load),
        "",
        "## Results",
        "",
        "`ratio` is daidai over the baseline unless the note says otherwise; `floor` is the "
        "bound the suite checks (PASS/MISS). FAIL means the subject could not do it at all.",
        "",
        render_table(rows),
        "",
        _summary(rows, elapsed).strip(),
        "",
        "## How each scenario measures",
        "",
    ]
    for name in names:
        doc = (SCENARIOS[name].__doc__ or "").strip()
        parts += [f"### {name}", "", doc, ""]
    if _FINDINGS.is_file():
        parts += [_FINDINGS.read_text().strip(), ""]
    return "\n".join(parts)
