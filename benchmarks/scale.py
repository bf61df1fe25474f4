"""Scale: 10,000 components in a chain and in a wide fan-out, against 1,000.

- chain: `a0 <- a1 <- ... <- a{N-1} <- predict`, each artifact injected into the next;
- fan-out: one predictor with N parameters, each injected from its own artifact (the widest
  node a graph can have, and a generated wrapper with N parameters).

Each figure comes from fresh processes: decoration (importing the generated module, its
bytecode compiled beforehand, so only the decorators' work is timed), `daidai graph
--format json` (whole process), and the first call (building every artifact). Growth is
linear when the N = 10,000 figure stays within 12x the N = 1,000 one.
"""

from __future__ import annotations

import compileall
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
    last_line,
    median,
    run,
    run_python,
)

__all__ = ["scenario"]

NAME = "scale"
_MEASURE = """
import importlib, json, time
began = time.perf_counter()
module = importlib.import_module({module!r})
imported = time.perf_counter()
result = module.predict(1)
called = time.perf_counter()
print(json.dumps({{"decorate": imported - began, "first": called - imported, "result": result}}))
"""


def chain_source(n: int, decorator: str) -> str:
    """A module declaring an `n`-artifact chain and a predictor at its end."""
    lines = [
        "from typing import Annotated",
        f"from daidai import {decorator}, predictor",
        "",
        f"@{decorator}",
        "def a0() -> int:",
        "    return 0",
    ]
    for i in range(1, n):
        lines += [
            f"@{decorator}",
            f"def a{i}(p: Annotated[int, a{i - 1}]) -> int:",
            "    return p + 1",
        ]
    lines += ["@predictor", f"def predict(x: int, p: Annotated[int, a{n - 1}]) -> int:"]
    lines += ["    return x + p", ""]
    return "\n".join(lines)


def fan_source(n: int, decorator: str) -> str:
    """A module declaring `n` artifacts and one predictor taking each of them."""
    lines = ["from typing import Annotated", f"from daidai import {decorator}, predictor", ""]
    for i in range(n):
        lines += [f"@{decorator}", f"def a{i}() -> int:", f"    return {i}"]
    params = "".join(f"    p{i}: Annotated[int, a{i}],\n" for i in range(n))
    total = ", ".join(f"p{i}" for i in range(n))
    lines += ["@predictor", f"def predict(\n    x: int,\n{params}) -> int:"]
    lines += [f"    return x + sum(({total},))", ""]
    return "\n".join(lines)


def expected(shape: str, n: int) -> int:
    """What `predict(1)` returns."""
    return 1 + (n - 1 if shape == "chain" else n * (n - 1) // 2)


def scenario(ctx: Context) -> list[Row]:
    small, large = (100, 1_000) if ctx.quick else (1_000, 10_000)
    folder = ctx.scratch("scale")
    rows: list[Row] = []
    for shape, source in (("chain", chain_source), ("fan-out", fan_source)):
        ours = folder / "ours"
        theirs = folder / "upstream"
        for n in (small, large):
            _write(ours, f"{shape.replace('-', '_')}_{n}", source(n, "artifact"))
            _write(theirs, f"{shape.replace('-', '_')}_{n}", source(n, "asset"))
        ctx.log(f"  {shape}")
        rows += _ours(ctx, ours, shape, small, large)
        rows += _upstream(ctx, theirs, shape, small, large)
    return rows


def _write(folder: Path, module: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(text)
    compileall.compile_file(str(path), quiet=1)


def _figures(ctx: Context, python: Path | str, folder: Path, module: str) -> dict[str, float]:
    env = ctx.env() if python == PYTHON else ctx.upstream_env()
    found = [
        run_python(python, _MEASURE.format(module=module), env=env, cwd=folder)
        for _ in range(ctx.repeats)
    ]
    return {
        "decorate": median([f["decorate"] for f in found]),
        "first": median([f["first"] for f in found]),
        "result": found[-1]["result"],
    }


def _ours(ctx: Context, folder: Path, shape: str, small: int, large: int) -> list[Row]:
    figures, graphs = {}, {}
    for n in (small, large):
        module = f"{shape.replace('-', '_')}_{n}"
        figures[n] = _figures(ctx, PYTHON, folder, module)
        if figures[n]["result"] != expected(shape, n):
            raise AssertionError(f"{module}.predict(1) returned {figures[n]['result']}")
        command = [daidai_script(), "graph", module, "--format", "json"]
        graphs[n] = median(
            [run(command, env=ctx.env(), cwd=folder).seconds for _ in range(ctx.repeats)]
        )
    rows = []
    for label, small_value, large_value in (
        ("decoration (module import)", figures[small]["decorate"], figures[large]["decorate"]),
        ("`daidai graph --format json`", graphs[small], graphs[large]),
        ("first call (builds everything)", figures[small]["first"], figures[large]["first"]),
    ):
        rows.append(
            floor_row(
                NAME,
                f"{shape}: {label}, {large:,} components",
                format_seconds(large_value),
                f"{small:,} components {format_seconds(small_value)}",
                large_value / small_value,
                at_most=12,
            )
        )
    return rows


def _upstream(ctx: Context, folder: Path, shape: str, small: int, large: int) -> list[Row]:
    rows: list[Row] = []
    prefix = f"upstream 0.0.7: {shape}"
    if ctx.upstream_python is None:
        return [fail_row(NAME, prefix, ctx.upstream_problem)]
    found: dict[int, dict[str, float]] = {}
    for n in (small, large):
        module = f"{shape.replace('-', '_')}_{n}"
        try:
            found[n] = _figures(ctx, ctx.upstream_python, folder, module)
        except RuntimeError as exc:
            rows.append(fail_row(NAME, f"{prefix}, {n:,} components", last_line(str(exc))))
    for key, label in (("decorate", "decoration"), ("first", "first call")):
        if small in found and large in found:
            rows.append(
                info_row(
                    NAME,
                    f"{prefix}: {label}, {large:,} components",
                    format_seconds(found[large][key]),
                    f"{small:,} components {format_seconds(found[small][key])}",
                    ratio=found[large][key] / found[small][key],
                )
            )
    module = f"{shape.replace('-', '_')}_{large}"
    listing = run(
        [ctx.upstream_python.parent / "daidai", "list", "-m", module, "-f", "raw"],
        env=ctx.upstream_env(PYTHONPATH=folder),
        cwd=folder,
        check=False,
    )
    measure = f"{prefix}: `daidai list` (its graph), {large:,} components"
    if listing.returncode != 0:
        rows.append(fail_row(NAME, measure, last_line(listing.stderr)))
    else:
        rows.append(info_row(NAME, measure, format_seconds(listing.seconds), note="one run"))
    return rows
