"""The `daidai` command line (typer and rich; the library never imports either).

`main()` answers `daidai`, `daidai --help` and `daidai --version` without importing typer,
rich or the command modules: those take ~150 ms to import, more than the whole budget for
the overview. Everything else goes through the typer application in `daidai.cli._app`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and exit with its code."""
    args = list(sys.argv[1:] if argv is None else argv)
    completing = "_DAIDAI_COMPLETE" in os.environ  # typer's shell completion protocol
    if args in ([], ["--help"], ["-h"]) and not completing:
        from daidai.cli._overview import overview

        sys.stdout.write(overview())
        sys.exit(0)
    if args == ["--version"]:
        from daidai import __version__

        sys.stdout.write(f"daidai {__version__}\n")
        sys.exit(0)
    sys.exit(_run_app(args))


def _run_app(args: list[str]) -> int:
    from daidai.cli._errors import guarded, stop_on_sigterm

    def call() -> object:
        from daidai.cli._app import app

        return app(args=args, prog_name="daidai", standalone_mode=False)

    stop_on_sigterm()
    return guarded(call)
