"""Output helpers: JSON on stdout, rich only for people at a terminal, progress on stderr."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from daidai.cli._errors import UsageProblem

if TYPE_CHECKING:
    from rich.console import Console

    from daidai.files.fetch import ProgressCallback

__all__ = ["confirm", "console", "download_progress", "is_terminal", "print_json", "say"]


def is_terminal(stream: Any = None) -> bool:
    """Whether `stream` (default: stdout) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout or stderr (imported only when something is drawn)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def say(text: str = "", *, err: bool = False) -> None:
    """Print plain text (no markup) on stdout, or stderr."""
    typer.echo(text, err=err)


def confirm(question: str, *, yes: bool) -> bool:
    """Ask `question` unless `yes`; refuse to guess when nobody can answer.

    Raises:
        UsageProblem: stdin is not a terminal and `--yes` was not given.
    """
    if yes:
        return True
    if not is_terminal(sys.stdin):
        raise UsageProblem(
            "nothing deleted: stdin is not a terminal, so nobody can confirm; "
            "pass --yes to delete, or --dry-run to only see the plan"
        )
    return bool(typer.confirm(question, default=False, err=True))


@contextlib.contextmanager
def download_progress(*, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing one bar per download on stderr, when it is a terminal."""
    if not enabled or not is_terminal(sys.stderr):
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    extra = (TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, *extra, console=console(stderr=True)) as progress:
        tasks: dict[str, Any] = {}
        lock = threading.Lock()

        def update(uri: str, done: int, total: int | None) -> None:
            with lock:
                if uri not in tasks:
                    tasks[uri] = progress.add_task(_short(uri), total=total)
            progress.update(tasks[uri], completed=done, total=total)

        yield update


def _short(uri: str, width: int = 40) -> str:
    return uri if len(uri) <= width else "…" + uri[-(width - 1) :]
