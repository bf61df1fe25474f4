"""The text of `daidai --help`, printed without importing typer or rich.

It is typer's own rendering of `daidai.cli._app.app` at 80 columns, kept here so the
overview costs one `write()`; `tests/test_cli_help.py` fails when the two drift apart
(regenerate with `python -m daidai.cli._overview`).
"""

from __future__ import annotations

__all__ = ["overview"]

_OVERVIEW = (
    "                                                                                \n"
    " Usage: daidai [OPTIONS] COMMAND [ARGS]...                                      \n"
    "                                                                                \n"
    " Declare what a model needs in decorated Python; daidai builds, fetches and     \n"
    " caches it.                                                                     \n"
    "                                                                                \n"
    " Commands read daidai.toml (in this folder or a parent) and daidai.lock next to \n"
    " it.                                                                            \n"
    "                                                                                \n"
    "╭─ Options ────────────────────────────────────────────────────────────────────╮\n"
    "│ --version                       Show the version.                            │\n"
    "│ --verbose             -v        Show tracebacks and progress logs.           │\n"
    "│ --install-completion            Install completion for the current shell.    │\n"
    "│ --show-completion               Show completion for the current shell, to    │\n"
    "│                                 copy it or customize the installation.       │\n"
    "│ --help                -h        Show this message and exit.                  │\n"
    "╰──────────────────────────────────────────────────────────────────────────────╯\n"
    "╭─ Commands ───────────────────────────────────────────────────────────────────╮\n"
    "│ graph   Show components, their dependencies and files.                       │\n"
    "│ fetch   Download on_disk files and update daidai.lock.                       │\n"
    "│ verify  Re-hash locked files in the cache.                                   │\n"
    "│ run     Run a predictor with options from its signature.                     │\n"
    "│ cache   Look at and clean up the cache.                                      │\n"
    "╰──────────────────────────────────────────────────────────────────────────────╯\n"
    "\n"
)


def overview() -> str:
    """The overview, as `daidai --help` prints it."""
    return _OVERVIEW


def _render() -> str:
    import contextlib
    import io
    import os

    from daidai.cli._app import app

    os.environ["COLUMNS"] = "80"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        app(args=["--help"], prog_name="daidai", standalone_mode=False)
    return buffer.getvalue()


if __name__ == "__main__":
    print(repr(_render()))
