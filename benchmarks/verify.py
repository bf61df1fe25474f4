"""`daidai verify` over 2 GiB of cached files against `sha256sum` of the same files.

The cache is filled once (8 x 256 MiB through `fetch_many` from `file://` sources, and a
lockfile pinning them). Both sides then read the same files from the page cache (one
untimed warm-up run each) and both use the two cores: daidai hashes in threads (hashlib
releases the GIL), the baseline is `xargs -n1 -P2 sha256sum`.
"""

from __future__ import annotations

from benchmarks._common import (
    Context,
    Row,
    daidai_script,
    fail_row,
    floor_row,
    format_bytes,
    format_seconds,
    info_row,
    median,
    time_process,
    write_random,
)

__all__ = ["scenario"]

NAME = "verify"


def scenario(ctx: Context) -> list[Row]:
    from daidai._settings import Settings
    from daidai.files.fetch import FetchRequest, fetch_many
    from daidai.files.lockfile import write_lockfile

    count, size = (4, 64 << 20) if ctx.quick else (8, 256 << 20)
    folder = ctx.scratch("verify")
    project = folder / "project"
    project.mkdir()
    sources = [folder / "src" / f"shard-{i}.bin" for i in range(count)]
    for path in sources:
        write_random(path, size)
    cache = folder / "cache"
    settings = Settings(cache_dir=cache, lockfile=project / "daidai.lock")
    results = fetch_many([FetchRequest(p.as_uri()) for p in sources], settings=settings)
    write_lockfile(settings.lockfile, [r.lock_entry() for r in results])
    for path in sources:
        path.unlink()  # only the cached copies remain, like in a built image
    (project / "daidai.toml").write_text(f'cache_dir = "{cache}"\n')
    env = ctx.env()
    ours = median(time_process([daidai_script(), "verify"], ctx.repeats, env=env, cwd=project))
    files = [str(r.path) for r in results]
    figures = {}
    for tool in ("sha256sum", "openssl dgst -sha256"):
        shell = f"printf '%s\\n' \"$@\" | xargs -n1 -P2 {tool} > /dev/null"
        command = ["sh", "-c", shell, "sh", *files]
        # No warm-up run: `daidai verify`'s own warm-up already read the files into memory.
        figures[tool] = median(time_process(command, ctx.repeats, env=env, warmup=False))
    what = f"{count} x {format_bytes(size)} = {format_bytes(count * size)}"
    openssl = figures["openssl dgst -sha256"]
    return [
        floor_row(
            NAME,
            f"`daidai verify` over {what}",
            format_seconds(ours),
            f"`xargs -n1 -P2 sha256sum` {format_seconds(figures['sha256sum'])}",
            ours / figures["sha256sum"],
            at_most=1.3,
        ),
        info_row(
            NAME,
            f"`daidai verify` over {what}, against OpenSSL's SHA-256",
            format_seconds(ours),
            f"`xargs -n1 -P2 openssl dgst -sha256` {format_seconds(openssl)}",
            ratio=ours / openssl,
            note="coreutils' sha256sum does not use the CPU's SHA extensions; OpenSSL "
            "(which hashlib uses) does",
        ),
        _upstream(ctx),
    ]


def _upstream(ctx: Context) -> Row:
    measure = "upstream 0.0.7: re-hash the cache"
    if ctx.upstream_python is None:
        return fail_row(NAME, measure, ctx.upstream_problem)
    return fail_row(NAME, measure, "no such command: it records no checksums to verify against")
