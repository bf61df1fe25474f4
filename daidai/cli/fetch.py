"""`daidai fetch`: download every `on_disk` file in parallel and keep `daidai.lock` in step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from daidai.cli._errors import UsageProblem
from daidai.cli._options import Jobs, Targets, Verbose
from daidai.cli._render import download_progress, say
from daidai.cli._units import format_size

if TYPE_CHECKING:
    from daidai._project import FetchReport

__all__ = ["fetch"]

Refresh = Annotated[
    bool, typer.Option("--refresh", help="Download every file again, even when cached.")
]
Locked = Annotated[
    bool,
    typer.Option(
        "--locked",
        help="Fail (exit 3) if the lockfile lacks a declared file or a source's content "
        "differs from it; never write the lockfile.",
    ),
]
Frozen = Annotated[
    bool,
    typer.Option(
        "--frozen",
        help="Fetch exactly the lockfile's files without importing any code "
        "(storage options from daidai.toml).",
    ),
]


def fetch(
    targets: Targets = None,
    jobs: Jobs = None,
    refresh: Refresh = False,
    locked: Locked = False,
    frozen: Frozen = False,
    verbose: Verbose = False,
) -> None:
    """Download every on_disk file, in parallel, and write or update the lockfile.

    With no TARGET the lockfile mirrors the project (entries no longer declared are
    dropped); with TARGETs other entries stay.
    """
    from daidai._project import fetch_frozen, fetch_project
    from daidai._settings import load_settings

    if locked and frozen:
        raise UsageProblem("--locked and --frozen cannot be combined", hint="daidai fetch")
    if frozen and targets:
        raise UsageProblem(
            "--frozen takes no TARGET: it fetches exactly the lockfile's files",
            hint="daidai fetch",
        )
    settings = load_settings()
    if frozen:
        with download_progress() as progress:
            report = fetch_frozen(
                settings=settings, refresh=refresh, jobs=jobs, on_progress=progress
            )
    else:
        from daidai.cli._targets import load_targets

        components = load_targets(targets or [], settings=settings, command="daidai fetch")
        with download_progress() as progress:
            report = fetch_project(
                components,
                settings=settings,
                mirror=not targets,
                locked=locked,
                refresh=refresh,
                jobs=jobs,
                on_progress=progress,
            )
    _summarize(report, verbose=verbose, checking=locked, frozen=frozen)


def _summarize(report: FetchReport, *, verbose: bool, checking: bool, frozen: bool) -> None:
    if verbose:
        for result in report.results:
            how = "downloaded" if result.downloaded else "cached    "
            say(f"{how} {result.uri} ({format_size(result.size)})")
    count = len(report.results)
    say(
        f"{count} file{'s' if count != 1 else ''} ready ({format_size(report.total_size)}): "
        f"{report.downloaded} downloaded, {count - report.downloaded} already cached"
    )
    name = report.lockfile.name
    if frozen:
        say(f"exactly the files {name} pins (not rewritten)")
    elif checking:
        say(f"{name} is up to date" if not report.unused else f"{name} matches the code")
    elif report.lock_written:
        parts = [f"{len(report.added)} added", f"{len(report.changed)} changed"]
        parts.append(f"{len(report.dropped)} dropped")
        say(f"{name} updated: {', '.join(parts)}")
    else:
        say(f"{name} unchanged")
    if report.unused:
        say(
            f"note: {len(report.unused)} locked file(s) are no longer declared; "
            "`daidai fetch` would drop them",
            err=True,
        )
