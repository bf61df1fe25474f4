"""The one place that turns exceptions into a red line on stderr and an exit code.

Exit codes (SPEC §4): 0 success; 1 an error; 2 a usage error; 3 an integrity problem
(lockfile out of date, checksum mismatch, verify failure). A traceback is shown only with
`-v`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Terminated",
    "UsageProblem",
    "exit_code_of",
    "guarded",
    "message_of",
    "state",
    "stop_on_sigterm",
]

OK, ERROR, USAGE, INTEGRITY, INTERRUPTED, TERMINATED = 0, 1, 2, 3, 130, 143


class Terminated(BaseException):
    """SIGTERM (`timeout`, `docker stop`, Kubernetes) arrived.

    A `BaseException`, like Ctrl-C's interrupt, so every path that cleans up after Ctrl-C
    (cut downloads, staging folders removed, no lockfile written) does the same for it;
    not a `KeyboardInterrupt`, which click turns into a silent exit 130.
    """


def stop_on_sigterm() -> None:
    """Make SIGTERM raise `Terminated` in the main thread, as SIGINT raises its interrupt.

    Python's default for SIGTERM is to die on the spot, leaving staging folders and
    half-written files behind; raising lets `finally` blocks run. A second SIGTERM ends the
    process at once, whatever its threads are waiting for.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    import os

    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        if received:  # cleanup itself is stuck (a thread blocked in I/O): end at once
            os._exit(TERMINATED)
        received.append(signum)
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)


class UsageProblem(Exception):
    """A command line that parses but makes no sense (exit 2).

    Attributes:
        hint: the command whose `--help` to point to, e.g. `daidai fetch`.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass
class _State:
    verbose: bool = False


state = _State()


def guarded(call: Callable[[], object]) -> int:
    """Run `call` (the CLI), returning its exit code; errors become one line on stderr."""
    try:
        result = call()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (ERROR if exc.code else OK)
    except BrokenPipeError:
        _silence_stdout()
        return ERROR
    except BaseException as exc:  # the boundary that reports every error
        return _report(exc)
    if result == INTERRUPTED:  # typer turns Ctrl-C into a silent exit 130
        return _report(KeyboardInterrupt())
    return result if isinstance(result, int) else OK


def exit_code_of(exc: BaseException) -> int:
    """The exit code for an exception reaching the command line."""
    from daidai.errors import IntegrityError

    if isinstance(exc, Terminated):
        return TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(exc, IntegrityError):
        return INTEGRITY
    if isinstance(exc, UsageProblem):
        return USAGE
    code = getattr(exc, "exit_code", None)
    if _is_click_error(exc) and isinstance(code, int):
        return code
    return ERROR


def message_of(exc: BaseException) -> str:
    """One line saying what failed and, where known, what to do."""
    import typer

    from daidai.errors import DaidaiError

    if isinstance(exc, Terminated):
        text = "terminated (SIGTERM)"
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted"
    elif isinstance(exc, typer.Abort):
        text = "aborted"
    elif isinstance(exc, UsageProblem):
        text = str(exc) + (f" (see `{exc.hint} --help`)" if exc.hint else "")
    elif _is_click_error(exc):
        text = _click_message(exc)
    elif isinstance(exc, DaidaiError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    from daidai.cli._render import escape_controls

    return "error: " + escape_controls(" ".join(text.split()))


def _report(exc: BaseException) -> int:
    import typer

    if state.verbose and not _is_click_error(exc):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    typer.secho(message_of(exc), fg="red", err=True)
    return exit_code_of(exc)


def _is_click_error(exc: BaseException) -> bool:
    # typer's own copy of click is private; its exceptions are recognised by their
    # documented interface (`exit_code`, `format_message`) rather than by import.
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code")


def _click_message(exc: BaseException) -> str:
    text = str(exc.format_message())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    if exit_code_of(exc) == USAGE and path:
        text += f" (see `{path} --help`)"
    return text


def _silence_stdout() -> None:
    import os

    # Python would complain again while flushing stdout at exit (`daidai cache ls | head`).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
