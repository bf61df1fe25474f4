"""Options shared by several commands, defined once as `Annotated` aliases."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from daidai.cli._errors import state

__all__ = ["DryRun", "Jobs", "Json", "Targets", "Verbose", "Yes"]


def _set_verbose(value: bool) -> bool:
    if value:
        state.verbose = True
        import logging

        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("daidai").setLevel(logging.INFO)
    return value


# `Optional[...]` rather than `X | None`: typer evaluates these at runtime on Python 3.10 too.
Targets = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Argument(
        help="Modules (app.models), files (app/models.py), either with :component. "
        "Default: `modules` from daidai.toml.",
        show_default=False,
    ),
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Show tracebacks and progress logs.",
        callback=_set_verbose,
        is_eager=True,
    ),
]
Jobs = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--jobs", "-j", min=1, help="Parallel downloads [default: `jobs` setting, 8]."),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
]
