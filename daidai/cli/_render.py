"""Output helpers: JSON on stdout, rich only for people at a terminal, progress on stderr."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from daidai.cli._errors import UsageProblem

if TYPE_CHECKING:
    from rich.console import Console

    from daidai.files.fetch import ProgressCallback

__all__ = [
    "confirm",
    "console",
    "download_progress",
    "escape_controls",
    "is_terminal",
    "print_json",
    "say",
]

_C1 = re.compile("[\x7f-\x9f]")


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
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    # JSON escapes C0 itself; DEL and C1 (0x9b is a CSI on some terminals) it leaves raw.
    sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def say(text: str = "", *, err: bool = False) -> None:
    """Print plain text (no markup) on stdout, or stderr, control characters escaped
    (line breaks and tabs aside): URIs and server messages cannot drive the terminal."""
    typer.echo(escape_controls(text, keep="\n\t"), err=err)


def escape_controls(text: str, *, keep: str = "") -> str:
    """`text` with every control character (C0, DEL, C1) but those in `keep` written as a
    visible escape (`\\x1b`), so that a lockfile URI or a server's error text printed
    on a terminal cannot change its title, write the clipboard (OSC 52) or move the cursor."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) if _is_control(c) and c not in keep else c for c in text)


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


def _escaped(char: str) -> str:
    return f"\\x{ord(char):02x}"


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
                    tasks[uri] = progress.add_task(_short(escape_controls(uri)), total=total)
            progress.update(tasks[uri], completed=done, total=total)

        yield update


def _short(uri: str, width: int = 40) -> str:
    return uri if len(uri) <= width else "…" + uri[-(width - 1) :]
