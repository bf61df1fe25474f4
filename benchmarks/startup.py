"""Start-up: `import daidai` and `daidai --help`, each in fresh processes.

The import is timed inside the child around the `import` statement (interpreter start-up
is not daidai's), and the child reports which heavy modules got loaded. `daidai --help` is
timed from outside, whole process, through this interpreter's console script.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks._common import (
    PYTHON,
    Context,
    Row,
    daidai_script,
    fail_row,
    floor_row,
    format_seconds,
    info_row,
    median,
    run_python,
    time_process,
)

__all__ = ["scenario"]

NAME = "startup"
_HEAVY = ("fsspec", "rich", "typer", "click", "aiohttp")
_IMPORT = f"""
import json, sys, time
began = time.perf_counter()
import daidai
took = time.perf_counter() - began
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({_HEAVY!r}))
print(json.dumps({{"seconds": took, "heavy": heavy}}))
"""


def scenario(ctx: Context) -> list[Row]:
    runs = 5 if ctx.quick else 11
    rows = _imports(ctx, runs)
    rows += _help(ctx, runs)
    return rows


def _time_import(ctx: Context, python: Path | str, runs: int) -> tuple[float, list[str]]:
    env = ctx.env() if python == PYTHON else ctx.upstream_env()
    found = [run_python(python, _IMPORT, env=env, cwd=ctx.workdir) for _ in range(runs + 1)]
    return median([float(f["seconds"]) for f in found[1:]]), list(found[-1]["heavy"])


def _imports(ctx: Context, runs: int) -> list[Row]:
    seconds, heavy = _time_import(ctx, PYTHON, runs)
    rows = [
        floor_row(
            NAME,
            "`import daidai` (in a fresh process)",
            format_seconds(seconds),
            "40 ms budget",
            None,
            at_most=0.040,
            checked=seconds,
            floor="≤ 40 ms",
        ),
        Row(
            NAME,
            "modules loaded by `import daidai`",
            ", ".join(heavy) or "none of fsspec/rich/typer",
            floor="none of fsspec, rich, typer",
            status="MISS" if set(heavy) & {"fsspec", "rich", "typer"} else "PASS",
        ),
    ]
    measure = "upstream 0.0.7: `import daidai`"
    if ctx.upstream_python is None:
        return [*rows, fail_row(NAME, measure, ctx.upstream_problem)]
    try:
        theirs, their_heavy = _time_import(ctx, ctx.upstream_python, runs)
    except RuntimeError as exc:
        return [*rows, fail_row(NAME, measure, str(exc))]
    note = f"loads {', '.join(their_heavy)}" if their_heavy else ""
    rows.append(
        info_row(
            NAME,
            measure,
            format_seconds(theirs),
            f"ours {format_seconds(seconds)}",
            ratio=theirs / seconds,
            note=note,
        )
    )
    return rows


def _help(ctx: Context, runs: int) -> list[Row]:
    bare = median(time_process([PYTHON, "-c", "pass"], runs, env=ctx.env()))
    ours = median(time_process([daidai_script(), "--help"], runs, env=ctx.env()))
    rows = [
        floor_row(
            NAME,
            "`daidai --help` (whole process)",
            format_seconds(ours),
            f"`python -c pass` {format_seconds(bare)}",
            ours / bare,
            at_most=0.100,
            checked=ours,
            floor="≤ 100 ms",
        )
    ]
    measure = "upstream 0.0.7: `daidai --help`"
    if ctx.upstream_python is None:
        return [*rows, fail_row(NAME, measure, ctx.upstream_problem)]
    script = ctx.upstream_python.parent / "daidai"
    try:
        theirs = median(time_process([script, "--help"], runs, env=ctx.upstream_env()))
    except RuntimeError as exc:
        return [*rows, fail_row(NAME, measure, str(exc))]
    rows.append(
        info_row(
            NAME,
            measure,
            format_seconds(theirs),
            f"ours {format_seconds(ours)}",
            ratio=theirs / ours,
        )
    )
    return rows
