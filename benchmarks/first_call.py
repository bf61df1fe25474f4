"""Time to first prediction in a fresh process with a warm cache, and the requests it makes.

The model file is served by nginx and fetched once (`daidai fetch`); then each timed run is
a new interpreter that imports the app and calls the predictor. The baseline is a new
interpreter reading the same cached file with `Path.read_bytes()`. nginx's access log must
stay empty while the timed runs happen: a cache hit makes no request at all.
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
    format_bytes,
    format_seconds,
    info_row,
    last_line,
    median,
    run,
    time_process,
    write_random,
)
from tests.servers import NginxServer, ServerError

__all__ = ["scenario"]

NAME = "first call"

_APP = """
from pathlib import Path
from typing import Annotated

from {package} import {decorator}, predictor

URL = "{url}"


@{decorator}
def load_model(path: Annotated[Path, URL]) -> bytes:
    return path.read_bytes()


@predictor
def predict(x: int, model: Annotated[bytes, load_model]) -> int:
    return len(model) + x
"""
_CALL = "import app_first; print(app_first.predict(1))"


def scenario(ctx: Context) -> list[Row]:
    size = (4 << 20) if ctx.quick else (64 << 20)
    folder = ctx.scratch("first-call")
    try:
        server = NginxServer(workdir=folder / "nginx").start()
    except ServerError as exc:
        return [fail_row(NAME, "time to first prediction", f"nginx: {exc}")]
    try:
        write_random(server.root / "model.bin", size)
        return _measure(ctx, folder, server, size)
    finally:
        server.close()


def _measure(ctx: Context, folder: Path, server: NginxServer, size: int) -> list[Row]:
    url = server.url_for("model.bin")
    app = folder / "app"
    app.mkdir()
    (app / "app_first.py").write_text(_APP.format(package="daidai", decorator="artifact", url=url))
    cache = folder / "cache"
    env = ctx.env(DAIDAI_CACHE_DIR=cache)
    run([daidai_script(), "fetch", "app_first"], env=env, cwd=app)
    cached = next(p for p in cache.rglob("model.bin") if p.is_file())
    server.clear_log()
    ours = time_process([PYTHON, "-c", _CALL], ctx.repeats, env=env, cwd=app)
    requests = len(server.requests())
    read = f"from pathlib import Path; print(len(Path({str(cached)!r}).read_bytes()) + 1)"
    plain = time_process([PYTHON, "-c", read], ctx.repeats, env=env, cwd=app)
    rows = [
        floor_row(
            NAME,
            f"fresh process to first prediction, warm cache ({format_bytes(size)} model)",
            format_seconds(median(ours)),
            f"plain `read_bytes()` {format_seconds(median(plain))}",
            median(ours) / median(plain),
            at_most=0,
            checked=requests,
            floor="0 requests",
            note=f"{requests} HTTP requests seen by nginx over {ctx.repeats + 1} runs",
        )
    ]
    rows.append(_upstream(ctx, folder, url))
    return rows


def _upstream(ctx: Context, folder: Path, url: str) -> Row:
    measure = "upstream 0.0.7: first prediction from an HTTP file cached on disk"
    if ctx.upstream_python is None:
        return fail_row(NAME, measure, ctx.upstream_problem)
    app = folder / "upstream"
    app.mkdir()
    (app / "app_first.py").write_text(_APP.format(package="daidai", decorator="asset", url=url))
    env = ctx.upstream_env(DAIDAI_CACHE_DIR=folder / "upstream-cache")
    first = run([ctx.upstream_python, "-c", _CALL], env=env, cwd=app, check=False)
    if first.returncode != 0:
        return fail_row(
            NAME, measure, f"cannot cache HTTP files on disk: {last_line(first.stderr)}"
        )
    theirs = time_process([ctx.upstream_python, "-c", _CALL], ctx.repeats, env=env, cwd=app)
    return info_row(NAME, measure, format_seconds(median(theirs)))
