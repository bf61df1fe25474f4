"""Many small files: 50 x 1 MiB from nginx (0 and 20 ms added per request) and SeaweedFS S3.

Two comparisons per source, every run into an empty folder:
- the download phase inside one process: `fetch_many` (default jobs, and 16 where the
  floor applies) against a sequential `fs.get_file` loop over the same files (the ratio is
  loop time over daidai time);
- the whole command: `daidai fetch` (import the app, fetch, hash, write the lockfile) against
  a standalone script that runs an 8-thread fsspec pool (`_pool_fetch.py`), both fresh
  processes (the ratio is daidai time over the script's).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PYTHON,
    REPO_ROOT,
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
    write_random,
)
from tests.servers import NginxServer, S3Server, ServerError

__all__ = ["scenario"]

NAME = "many files"


@dataclass(frozen=True)
class Source:
    """One place serving the same files."""

    label: str
    protocol: str
    uris: list[str]
    paths: list[str]  # what `fs.get_file` takes
    options: dict[str, Any] = field(default_factory=dict)
    floors: bool = False

    def toml(self) -> str:
        if not self.options:
            return ""
        lines = [f"[storage_options.{self.protocol}]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in self.options.items()]
        return "\n".join(lines) + "\n"


def scenario(ctx: Context) -> list[Row]:
    count, size = (10, 256 << 10) if ctx.quick else (50, 1 << 20)
    folder = ctx.scratch("many-files")
    data = folder / "data"
    names = [f"part-{i:03d}.bin" for i in range(count)]
    for name in names:
        write_random(data / name, size)
    rows: list[Row] = []
    with ExitStack() as stack:
        sources: list[Source] = []
        for latency in (0, 20):
            try:
                server = NginxServer(root=data, latency_ms=latency, workdir=folder / f"n{latency}")
                stack.enter_context(server)
            except ServerError as exc:
                rows.append(fail_row(NAME, f"HTTP {latency} ms", f"nginx: {exc}"))
                continue
            uris = [server.url_for(n) for n in names]
            sources.append(Source(f"HTTP +{latency} ms", "http", uris, uris, floors=latency > 0))
        try:
            s3 = stack.enter_context(S3Server(workdir=folder / "s3"))
            bucket = s3.make_bucket("bench")
            uris = [s3.put(f"{bucket}/{n}", (data / n).read_bytes()) for n in names]
            paths = [u.removeprefix("s3://") for u in uris]
            sources.append(Source("S3 (SeaweedFS)", "s3", uris, paths, s3.storage_options))
        except ServerError as exc:
            rows.append(fail_row(NAME, "S3 (SeaweedFS)", f"SeaweedFS: {exc}"))
        what = f"{count} x {format_bytes(size)}"
        for source in sources:
            ctx.log(f"  {source.label}")
            rows += _in_process(ctx, folder, source, what)
            rows += _whole_command(ctx, folder, source, what)
            rows.append(_upstream(ctx, folder, source, what))
    return rows


def _timed(action: Callable[[Path], object], folder: Path) -> float:
    target = folder / f"run-{time.monotonic_ns()}"
    target.mkdir()
    try:
        began = time.perf_counter()
        action(target)
        return time.perf_counter() - began
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _in_process(ctx: Context, folder: Path, source: Source, what: str) -> list[Row]:
    import fsspec

    from daidai._settings import Settings
    from daidai.files.fetch import FetchRequest, fetch_many

    requests = [FetchRequest(uri) for uri in source.uris]
    options = {source.protocol: source.options} if source.options else {}

    def with_daidai(target: Path, jobs: int | None = None) -> None:
        settings = Settings(
            cache_dir=target, lockfile=target / "daidai.lock", storage_options=options
        )
        fetch_many(requests, settings=settings, jobs=jobs)

    def with_16_jobs(target: Path) -> None:
        with_daidai(target, jobs=16)

    def sequential(target: Path) -> None:
        fs = fsspec.filesystem(source.protocol, **source.options)
        for path in source.paths:
            fs.get_file(path, str(target / path.rsplit("/", 1)[-1]))

    ours, more, loop = [], [], []
    for index in range(ctx.repeats + 1):  # the first round warms connection pools
        took_ours, took_loop = _timed(with_daidai, folder), _timed(sequential, folder)
        took_more = _timed(with_16_jobs, folder) if source.floors else 0.0
        if index:
            ours.append(took_ours)
            loop.append(took_loop)
            more.append(took_more)
    measure = f"{source.label}: {what}, download phase (`fetch_many`)"
    baseline = f"sequential fsspec loop {format_seconds(median(loop))}"
    speedup = median(loop) / median(ours)
    value = format_seconds(median(ours))
    if not source.floors:
        return [info_row(NAME, measure, value, baseline, ratio=speedup, note="loop / daidai")]
    note = "ratio = loop time / daidai time"
    return [
        floor_row(NAME, measure, value, baseline, speedup, at_least=10, note=note),
        info_row(
            NAME,
            f"{source.label}: {what}, download phase with 16 jobs (`--jobs 16`)",
            format_seconds(median(more)),
            baseline,
            ratio=median(loop) / median(more),
            note="loop / daidai",
        ),
    ]


_APP_HEADER = """
from pathlib import Path
from typing import Annotated

from {package} import {decorator}


@{decorator}
def parts(
"""


def _write_app(app: Path, source: Source, *, package: str, decorator: str, extra: str) -> None:
    app.mkdir(parents=True, exist_ok=True)
    lines = [_APP_HEADER.format(package=package, decorator=decorator).rstrip("\n")]
    lines += [f"    p{i}: Annotated[Path, {u!r}{extra}]," for i, u in enumerate(source.uris)]
    lines += [
        ") -> int:",
        f"    return len([{', '.join(f'p{i}' for i in range(len(source.uris)))}])",
    ]
    (app / "app_many.py").write_text("\n".join(lines) + "\n")


def _whole_command(ctx: Context, folder: Path, source: Source, what: str) -> list[Row]:
    app = folder / f"app-{source.protocol}-{len(source.label)}"
    _write_app(app, source, package="daidai", decorator="artifact", extra="")
    (app / "daidai.toml").write_text(source.toml())
    spec = app / "pool.json"
    pool_script = REPO_ROOT / "benchmarks" / "_pool_fetch.py"

    def with_daidai(target: Path) -> None:
        (app / "daidai.lock").unlink(missing_ok=True)
        run([daidai_script(), "fetch", "app_many"], env=ctx.env(DAIDAI_CACHE_DIR=target), cwd=app)

    def pool(target: Path) -> None:
        spec.write_text(
            json.dumps(
                {
                    "protocol": source.protocol,
                    "storage_options": source.options,
                    "paths": source.paths,
                    "dest": str(target),
                }
            )
        )
        run([PYTHON, pool_script, spec], env=ctx.env(), cwd=app)

    ours, theirs = [], []
    for index in range(ctx.repeats + 1):
        took_ours, took_pool = _timed(with_daidai, folder), _timed(pool, folder)
        if index:
            ours.append(took_ours)
            theirs.append(took_pool)
    measure = f"{source.label}: {what}, whole `daidai fetch` command"
    baseline = f"8-thread fsspec pool script {format_seconds(median(theirs))}"
    ratio = median(ours) / median(theirs)
    value = format_seconds(median(ours))
    if source.floors:
        return [floor_row(NAME, measure, value, baseline, ratio, at_most=1.2)]
    return [info_row(NAME, measure, value, baseline, ratio=ratio)]


def _upstream(ctx: Context, folder: Path, source: Source, what: str) -> Row:
    measure = f"upstream 0.0.7: {source.label}, {what} cached on disk (preload)"
    if ctx.upstream_python is None:
        return fail_row(NAME, measure, ctx.upstream_problem)
    app = folder / f"upstream-{source.protocol}-{len(source.label)}"
    extra = f", {{'storage_options': {source.options!r}}}" if source.options else ""
    _write_app(app, source, package="daidai", decorator="asset", extra=extra)
    code = (
        "import time, app_many\nfrom daidai import ModelManager\nt = time.perf_counter()\n"
        "with ModelManager([app_many.parts]):\n    pass\nprint(time.perf_counter() - t)"
    )
    env = ctx.upstream_env(DAIDAI_CACHE_DIR=app / "cache")
    done = run([ctx.upstream_python, "-c", code], env=env, cwd=app, check=False)
    if done.returncode != 0:
        return fail_row(NAME, measure, f"cannot cache these files: {last_line(done.stderr)}")
    seconds = float(done.stdout.split()[-1])
    return info_row(NAME, measure, format_seconds(seconds), note="one run, sequential by design")
