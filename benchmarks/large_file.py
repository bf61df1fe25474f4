"""One large file (512 MiB) from nginx on loopback: wall time and peak RSS.

- Into an empty cache (streamed, hashed, renamed into place; the checksum is compared with
  one computed independently) against `curl -o`, twice: the library's `fetch` timed inside a
  fresh process once its imports are done (the transfer itself), and the whole `daidai
  fetch` command (what a Docker build step pays, start-up and imports included). Peak RSS
  is the whole process's, reported by GNU time.
- Predictors reading the file as `in_memory_stream` (`Generator[bytes]`) and `no_cache`
  (`BinaryIO`, read in 1 MiB chunks): peak RSS must stay flat, far below the file's size.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from benchmarks._common import (
    PYTHON,
    Context,
    Row,
    Timed,
    daidai_script,
    fail_row,
    floor_row,
    format_bytes,
    format_seconds,
    info_row,
    last_line,
    median,
    run,
    write_random,
)
from tests.servers import NginxServer, ServerError

__all__ = ["scenario"]

NAME = "large file"
_RSS_LIMIT = 100 << 20

_APP = """
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, BinaryIO

from daidai import artifact, predictor

URL = "{url}"


@artifact
def weights(path: Annotated[Path, URL]) -> Path:
    return path


@predictor
def stream_total(
    chunks: Annotated[Generator[bytes], URL, {{"cache_strategy": "in_memory_stream"}}],
) -> int:
    return sum(len(chunk) for chunk in chunks)


@predictor
def no_cache_total(source: Annotated[BinaryIO, URL, {{"cache_strategy": "no_cache"}}]) -> int:
    total = 0
    while chunk := source.read(1 << 20):
        total += len(chunk)
    return total
"""

_UPSTREAM_APP = """
from typing import Annotated
from pathlib import Path

from daidai import asset, predictor

URL = "{url}"


@predictor
def on_disk(path: Annotated[Path, URL]) -> int:
    return path.stat().st_size


@predictor
def no_cache(data: Annotated[bytes, URL, {{"cache_strategy": "no_cache"}}]) -> int:
    return len(data)
"""


_FETCH = """
import json, time
from daidai._settings import load_settings
from daidai.files.fetch import FetchRequest, fetch
import fsspec.implementations.http  # imported before the clock starts, like a warm server

began = time.perf_counter()
result = fetch(FetchRequest({url!r}), settings=load_settings())
took = time.perf_counter() - began
print(json.dumps({{"seconds": took, "checksum": result.checksum}}))
"""


def scenario(ctx: Context) -> list[Row]:
    size = (64 << 20) if ctx.quick else (512 << 20)
    folder = ctx.scratch("large-file")
    try:
        server = NginxServer(workdir=folder / "nginx").start()
    except ServerError as exc:
        return [fail_row(NAME, "one large file", f"nginx: {exc}")]
    try:
        source = server.root / "weights.bin"
        write_random(source, size)
        digest = _sha256(source)
        url = server.url_for("weights.bin")
        app = folder / "app"
        app.mkdir()
        (app / "app_large.py").write_text(_APP.format(url=url))
        rows = _fetch_vs_curl(ctx, folder, app, url, size, digest)
        rows += _streams(ctx, folder, app, size)
        rows += _upstream(ctx, folder, url, size)
        return rows
    finally:
        server.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_vs_curl(
    ctx: Context, folder: Path, app: Path, url: str, size: int, digest: str
) -> list[Row]:
    ours: list[Timed] = []
    phases: list[float] = []
    phase_rss: list[int] = []
    curls: list[Timed] = []
    checksum_ok = True
    cache = folder / "cache"
    env = ctx.env(DAIDAI_CACHE_DIR=cache)
    for index in range(ctx.repeats + 1):
        (app / "daidai.lock").unlink(missing_ok=True)
        mine = run([daidai_script(), "fetch", "app_large"], env=env, cwd=app, rss=True)
        checksum_ok &= f"sha256:{digest}" in (app / "daidai.lock").read_text()
        shutil.rmtree(cache)
        phase = run([PYTHON, "-c", _FETCH.format(url=url)], env=env, cwd=app, rss=True)
        found = json.loads(phase.stdout.strip().splitlines()[-1])
        checksum_ok &= found["checksum"] == f"sha256:{digest}"
        shutil.rmtree(cache)
        target = folder / "curl.bin"
        theirs = run(["curl", "-sS", "-o", target, url], rss=True)
        target.unlink()
        if index:
            ours.append(mine)
            phases.append(float(found["seconds"]))
            phase_rss.append(phase.rss or 0)
            curls.append(theirs)
    wall = median([t.seconds for t in ours])
    phase_wall = median(phases)
    curl_wall = median([t.seconds for t in curls])
    rss = max(t.rss or 0 for t in ours)
    what = format_bytes(size)
    curl_label = f"`curl -o` {format_seconds(curl_wall)}"
    verdict = "checksum matches" if checksum_ok else "CHECKSUM DIFFERS"
    return [
        floor_row(
            NAME,
            f"download of {what} into the cache (`fetch`, sha256 included)",
            format_seconds(phase_wall),
            curl_label,
            phase_wall / curl_wall if checksum_ok else None,
            at_most=1.5,
            note=f"{verdict}; timed inside a fresh process, imports excluded",
        ),
        floor_row(
            NAME,
            f"whole `daidai fetch` command, {what}",
            format_seconds(wall),
            curl_label,
            wall / curl_wall if checksum_ok else None,
            at_most=1.5,
            note=f"{verdict}; includes start-up and imports (typer, fsspec, aiohttp)",
        ),
        floor_row(
            NAME,
            f"`daidai fetch` of {what}: peak RSS (max of runs)",
            format_bytes(rss),
            f"`curl -o` {format_bytes(max(t.rss or 0 for t in curls))}",
            None,
            at_most=_RSS_LIMIT,
            checked=rss if checksum_ok else None,
            floor="< 100 MiB",
            note=f"library `fetch` alone: {format_bytes(max(phase_rss))}",
        ),
    ]


def _streams(ctx: Context, folder: Path, app: Path, size: int) -> list[Row]:
    rows = []
    for strategy, predictor in (
        ("in_memory_stream", "stream_total"),
        ("no_cache", "no_cache_total"),
    ):
        code = f"import app_large; print(app_large.{predictor}())"
        env = ctx.env(DAIDAI_CACHE_DIR=folder / "stream-cache")
        runs = [run([PYTHON, "-c", code], env=env, cwd=app, rss=True) for _ in range(ctx.repeats)]
        correct = all(int(r.stdout.split()[-1]) == size for r in runs)
        rss = max(r.rss or 0 for r in runs)
        rows.append(
            floor_row(
                NAME,
                f"`{strategy}` predictor reading {format_bytes(size)}: peak RSS",
                format_bytes(rss),
                f"wall {format_seconds(median([r.seconds for r in runs]))}",
                None,
                at_most=_RSS_LIMIT,
                checked=rss if correct else None,
                floor="< 100 MiB",
                note="" if correct else "WRONG BYTE COUNT",
            )
        )
    return rows


def _upstream(ctx: Context, folder: Path, url: str, size: int) -> list[Row]:
    measures = {
        "on_disk": f"upstream 0.0.7: {format_bytes(size)} over HTTP into its disk cache",
        "no_cache": f"upstream 0.0.7: `no_cache` `bytes` of {format_bytes(size)}: peak RSS",
    }
    if ctx.upstream_python is None:
        return [fail_row(NAME, m, ctx.upstream_problem) for m in measures.values()]
    app = folder / "upstream"
    app.mkdir()
    (app / "app_large.py").write_text(_UPSTREAM_APP.format(url=url))
    env = ctx.upstream_env(DAIDAI_CACHE_DIR=folder / "upstream-cache")
    rows = []
    for name, measure in measures.items():
        code = f"import app_large; print(app_large.{name}())"
        done = run([ctx.upstream_python, "-c", code], env=env, cwd=app, rss=True, check=False)
        if done.returncode != 0:
            rows.append(fail_row(NAME, measure, last_line(done.stderr)))
        elif name == "no_cache":
            rows.append(
                info_row(
                    NAME,
                    measure,
                    format_bytes(done.rss or 0),
                    f"wall {format_seconds(done.seconds)}",
                    note="the whole file is held in memory (no streaming strategy)",
                )
            )
        else:
            rows.append(info_row(NAME, measure, format_seconds(done.seconds), note="one run"))
    return rows
