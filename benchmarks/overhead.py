"""Per-call overhead: a warm predictor against the plain function with the same arguments.

Both run in this process under `timeit`; each figure is the median over repeats of the mean
time per call within one repeat (`number` calls). The predictor is warm: its artifact was
built by an earlier call, so what is left is daidai's own work on every request.
"""

from __future__ import annotations

import timeit
from typing import Annotated, Any

from benchmarks._common import (
    Context,
    Row,
    fail_row,
    floor_row,
    format_seconds,
    info_row,
    median,
    run_python,
)
from daidai import ModelManager, artifact, predictor

__all__ = ["scenario"]

NAME = "overhead"


class Model:
    """A stand-in for a loaded model: the body is cheap so the wrapper's cost shows."""

    def __init__(self) -> None:
        self.weight = 2

    def predict(self, x: int) -> int:
        return x * self.weight


@artifact
def load_model() -> Model:
    return Model()


@predictor
def predict(x: int, model: Annotated[Model, load_model]) -> int:
    return model.predict(x)


def plain_predict(x: int, model: Model) -> int:
    return model.predict(x)


def per_call(stmt: str, namespace: dict[str, Any], number: int, repeat: int) -> float:
    """Median over `repeat` runs of the seconds per call of `stmt`."""
    runs = timeit.repeat(stmt, globals=namespace, number=number, repeat=repeat)
    return median([total / number for total in runs])


_UPSTREAM = """
import json, timeit, statistics
from typing import Annotated
from daidai import asset, predictor

class Model:
    def __init__(self):
        self.weight = 2
    def predict(self, x):
        return x * self.weight

@asset
def load_model() -> Model:
    return Model()

@predictor
def predict(x: int, model: Annotated[Model, load_model]) -> int:
    return model.predict(x)

def plain_predict(x, model):
    return model.predict(x)

model = load_model()
predict(3)
ns = {"predict": predict, "plain_predict": plain_predict, "model": model}
def per_call(stmt):
    runs = timeit.repeat(stmt, globals=ns, number=NUMBER, repeat=REPEAT)
    return statistics.median([t / NUMBER for t in runs])
print(json.dumps({"plain": per_call("plain_predict(3, model)"), "warm": per_call("predict(3)")}))
"""


def scenario(ctx: Context) -> list[Row]:
    number = 20_000 if ctx.quick else 200_000
    repeat = 5 if ctx.quick else 7
    model = load_model()
    assert predict(3) == plain_predict(3, model) == 6
    namespace = {"predict": predict, "plain_predict": plain_predict, "model": model}
    plain = per_call("plain_predict(3, model)", namespace, number, repeat)
    warm = per_call("predict(3)", namespace, number, repeat)
    explicit = per_call("predict(3, model=model)", namespace, number, repeat)
    with ModelManager([load_model], namespace="bench"):
        predict(3)
        in_block = per_call("predict(3)", namespace, number, repeat)
    baseline = f"plain {format_seconds(plain)}"
    rows = [
        floor_row(
            NAME,
            "warm predictor call, default manager",
            format_seconds(warm),
            baseline,
            warm / plain,
            at_most=5,
            note="goal 2x",
        ),
        info_row(
            NAME,
            "warm predictor call inside `with ModelManager(...)`",
            format_seconds(in_block),
            baseline,
            ratio=in_block / plain,
        ),
        info_row(
            NAME,
            "predictor call with the artifact passed explicitly",
            format_seconds(explicit),
            baseline,
            ratio=explicit / plain,
        ),
    ]
    rows.append(_upstream(ctx, number, repeat))
    return rows


def _upstream(ctx: Context, number: int, repeat: int) -> Row:
    measure = "upstream 0.0.7: warm predictor call"
    if ctx.upstream_python is None:
        return fail_row(NAME, measure, ctx.upstream_problem)
    code = _UPSTREAM.replace("NUMBER", str(number // 10)).replace("REPEAT", str(repeat))
    try:
        found = run_python(ctx.upstream_python, code, env=ctx.upstream_env(), cwd=ctx.workdir)
    except RuntimeError as exc:
        return fail_row(NAME, measure, str(exc))
    plain, warm = float(found["plain"]), float(found["warm"])
    return info_row(
        NAME,
        measure,
        format_seconds(warm),
        f"plain {format_seconds(plain)}",
        ratio=warm / plain,
        note="same timeit statements, in the upstream venv",
    )
