"""`daidai cache dir|ls|prune|clear|rm`: look at and clean up the on-disk cache.

Destructive commands plan first (one scan, a frozen plan), print what they would free and
what they leave in place (versions in use, downloads in progress), honour `--dry-run`, and
ask unless `--yes`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from daidai.cli._options import DryRun, Json, Verbose, Yes
from daidai.cli._render import confirm, console, escape_controls, is_terminal, print_json, say
from daidai.cli._units import format_age, format_size, parse_duration, parse_size

if TYPE_CHECKING:
    from collections.abc import Sequence

    from daidai._maintenance import CachePlan, Listing, Skipped

__all__ = ["app"]

app = typer.Typer(
    name="cache",
    help="Look at and clean up the on-disk cache.",
    no_args_is_help=True,
    add_completion=False,
)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


OlderThan = Annotated[
    Optional[float],  # noqa: UP045 - evaluated by typer at runtime
    typer.Option(
        "--older-than",
        parser=_duration,
        metavar="DURATION",
        help="Evict entries unused for this long (12h, 30d).",
        show_default=False,
    ),
]
MaxSize = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--max-size",
        parser=_size,
        metavar="SIZE",
        help="Evict least recently used entries until the cache fits (500MB, 10GiB).",
        show_default=False,
    ),
]
IncludeLocked = Annotated[
    bool, typer.Option("--include-locked", help="Allow evicting files a lockfile pins.")
]
ProjectOnly = Annotated[
    bool,
    typer.Option(
        "--project",
        help="Keep only what this project's lockfile pins, not every registered lockfile's.",
    ),
]


@app.command("dir")
def cache_dir(verbose: Verbose = False) -> None:
    """Print the cache folder."""
    from daidai._settings import load_settings

    say(str(load_settings().cache_dir))


@app.command("ls")
def cache_ls(json_: Json = False, verbose: Verbose = False) -> None:
    """List cache entries with URI, size, last use and whether a lockfile pins them."""
    from daidai._maintenance import list_cache
    from daidai._settings import load_settings

    listing = list_cache(settings=load_settings())
    for note in listing.notes:
        say(f"note: {note}", err=True)
    if json_:
        print_json(_listing_json(listing))
    elif is_terminal():
        _print_table(listing)
    else:
        for entry in listing.entries:
            lock = "locked" if entry.locked else "-"
            say(f"{entry.size}\t{_iso(entry.last_used)}\t{lock}\t{entry.uri or '?'}")
        if listing.staging:
            say(_staging_line(listing))
        say(f"total\t{listing.total_size}")


@app.command("prune")
def cache_prune(
    older_than: OlderThan = None,
    max_size: MaxSize = None,
    include_locked: IncludeLocked = False,
    project: ProjectOnly = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    verbose: Verbose = False,
) -> None:
    """Evict what no project's lockfile pins, least recently used first.

    With no criteria, everything unpinned. Leftover partial downloads always go.
    Never a version a running process uses, nor a download in progress.
    """
    from daidai._maintenance import plan_prune
    from daidai._settings import load_settings
    from daidai.cli._errors import UsageProblem

    settings = load_settings()
    if project and settings.config_file is None and not settings.lockfile.is_file():
        raise UsageProblem(
            f"--project needs a project, and none was found from {settings.root} (no "
            "daidai.toml, pyproject.toml with [tool.daidai] or daidai.lock); run it in the "
            "project's folder, or drop --project to keep every registered lockfile's pins",
            hint="daidai cache prune",
        )
    plan = plan_prune(
        settings=settings,
        older_than=older_than,
        max_size=max_size,
        include_locked=include_locked,
        project_only=project,
        dry_run=dry_run,
    )
    _carry_out(plan, dry_run=dry_run, yes=yes, verb="prune")


@app.command("clear")
def cache_clear(dry_run: DryRun = False, yes: Yes = False, verbose: Verbose = False) -> None:
    """Empty the cache, locked files included.

    Versions a running process uses and downloads in progress stay.
    """
    from daidai._maintenance import plan_clear
    from daidai._settings import load_settings

    _carry_out(plan_clear(settings=load_settings()), dry_run=dry_run, yes=yes, verb="clear")


@app.command("rm")
def cache_rm(
    patterns: Annotated[
        list[str],
        typer.Argument(
            metavar="URI-OR-GLOB...",
            help="Entries to remove: a URI as `cache ls` shows it, or a glob (quote it).",
            show_default=False,
        ),
    ],
    dry_run: DryRun = False,
    yes: Yes = False,
    verbose: Verbose = False,
) -> None:
    """Remove the entries matching URIs or globs, locked or not.

    Versions a running process uses stay.
    """
    from daidai._maintenance import plan_rm
    from daidai._settings import load_settings
    from daidai.errors import DaidaiError

    plan = plan_rm(settings=load_settings(), patterns=patterns)
    if plan.empty and not plan.skipped:
        shown = ", ".join(repr(p) for p in patterns)
        raise DaidaiError(f"no cache entry matches {shown}; `daidai cache ls` lists them")
    _carry_out(plan, dry_run=dry_run, yes=yes, verb="rm")


def _carry_out(plan: CachePlan, *, dry_run: bool, yes: bool, verb: str) -> None:
    from daidai._maintenance import apply_plan
    from daidai._sharing import require_writable

    if not dry_run and not plan.empty:
        require_writable(plan.cache_dir)  # before listing what could not be deleted
    for note in plan.notes:
        say(f"note: {note}", err=True)
    _say_skipped(plan.skipped)
    if plan.empty:
        say(f"nothing to {verb}: the cache holds {format_size(plan.kept_size)}")
        return
    for entry in plan.entries:
        say(f"  {format_size(entry.size):>10}  {entry.uri or entry.path}")
    for version in plan.versions:
        say(f"  {format_size(version.size):>10}  old version {version.checksum[:19]}…")
    for partial in plan.partials:
        say(f"  {format_size(partial.size):>10}  partial download {partial.path.name}")
    summary = (
        f"{len(plan.entries)} entries, {len(plan.versions)} old versions and "
        f"{len(plan.partials)} partial downloads: {format_size(plan.freed_size)} "
        f"(the cache keeps {format_size(plan.kept_size)})"
    )
    if dry_run:
        say(f"would free {summary}; nothing deleted (--dry-run)")
        return
    if not confirm(f"Delete {summary}?", yes=yes):
        say("nothing deleted")
        return
    applied = apply_plan(plan)
    _say_skipped(applied.skipped)
    say(f"freed {format_size(applied.freed)}")


def _say_skipped(skipped: Sequence[Skipped]) -> None:
    for item in skipped:
        say(f"skipped {item.what}: {item.why}", err=True)


def _staging_line(listing: Listing) -> str:
    running = sum(1 for s in listing.staging if s.in_progress)
    left = len(listing.staging) - running
    size = format_size(sum(s.size for s in listing.staging))
    return (
        f"first downloads not finished: {running} in progress, {left} left by killed "
        f"processes ({size}; prune removes the leftovers)"
    )


def _listing_json(listing: Listing) -> dict[str, object]:
    return {
        "entries": [
            {
                "uri": e.uri,
                "size": e.size,
                "total_size": e.total_size,
                "last_used": _iso(e.last_used),
                "locked": e.locked,
                "key": e.key,
                "path": str(e.path),
                "versions": e.versions,
                "partial_size": e.partial,
            }
            for e in listing.entries
        ],
        "staging": [
            {"uri": s.uri, "path": str(s.path), "size": s.size, "in_progress": s.in_progress}
            for s in listing.staging
        ],
        "total_size": listing.total_size,
    }


def _print_table(listing: Listing) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column, justify in (("URI", "left"), ("SIZE", "right"), ("LAST USED", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("LOCKED")
    for e in listing.entries:
        lock = "[green]locked[/]" if e.locked else "[dim]-[/]"
        uri = escape(escape_controls(e.uri or "?"))
        table.add_row(uri, format_size(e.size), format_age(e.last_used), lock)
    out = console()
    out.print(table)
    size = format_size(listing.total_size)
    out.print(f"{len(listing.entries)} entries, {size} in {escape(str(listing.cache_dir))}")
    if listing.staging:
        out.print(escape(_staging_line(listing)))


def _iso(timestamp: float) -> str | None:
    if timestamp <= 0:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
