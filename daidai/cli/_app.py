"""The typer application: every command registered under `daidai`."""

from __future__ import annotations

from typing import Annotated

import typer

from daidai.cli import cache, fetch, graph, run, verify
from daidai.cli._options import Verbose

__all__ = ["HELP", "app"]

HELP = (
    "Declare what a model needs in decorated Python; daidai builds, fetches and caches it.\n\n"
    "Commands read daidai.toml (in this folder or a parent) and daidai.lock next to it."
)

app = typer.Typer(
    name="daidai",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["--help", "-h"]},
)


def _print_version(value: bool) -> None:
    if value:
        from daidai import __version__

        typer.echo(f"daidai {__version__}")
        raise typer.Exit()


Version = Annotated[
    bool,
    typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
]


@app.callback()
def _root(version: Version = False, verbose: Verbose = False) -> None:
    """Declare what a model needs in decorated Python; daidai builds, fetches and caches it."""


app.command("graph", short_help="Show components, their dependencies and files.")(graph.graph)
app.command("fetch", short_help="Download on_disk files and update daidai.lock.")(fetch.fetch)
app.command("verify", short_help="Re-hash locked files in the cache.")(verify.verify)
app.add_typer(cache.app, name="cache", short_help="Look at and clean up the cache.")
app.command(
    "run",
    short_help="Run a predictor with options from its signature.",
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
)(run.run)
