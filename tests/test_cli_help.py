"""`daidai --help`, `--version`, each command's `--help` and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from daidai import __version__
from daidai.cli._app import app
from daidai.cli._overview import _render, overview
from tests.cli_project import daidai

_COMMANDS = [
    ["graph"],
    ["fetch"],
    ["verify"],
    ["run"],
    ["cache"],
    ["cache", "dir"],
    ["cache", "ls"],
    ["cache", "prune"],
    ["cache", "clear"],
]


def test_help_and_version_come_from_the_installed_executable_without_typer_or_rich() -> None:
    helped = daidai("--help")
    bare = daidai()
    version = daidai("--version")
    module = subprocess.run(
        [sys.executable, "-m", "daidai", "--version"], capture_output=True, text=True, check=False
    )
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom daidai.cli import main\ntry: main(['--help'])\n"
            "except SystemExit: print(sorted({'typer', 'rich', 'click'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert helped.code == 0 and bare.code == 0
    for command in ("graph", "fetch", "verify", "run", "cache"):
        assert command in helped.stdout
    assert bare.stdout == helped.stdout
    assert version.stdout == module.stdout == f"daidai {__version__}\n"
    assert probe.stdout.splitlines()[-1] == "[]"


def test_the_fast_overview_is_what_typer_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")

    assert overview() == _render()  # regenerate with `python -m daidai.cli._overview`


@pytest.mark.parametrize("command", _COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], prog_name="daidai")

    assert result.exit_code == 0, result.output
    assert "Usage: daidai " + " ".join(command) in result.output


def test_shell_completion_completes_commands_and_subcommands() -> None:
    def complete(words: str, index: int) -> str:
        env = {"_DAIDAI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        return daidai(env={**os.environ, **env}).stdout

    assert complete("daidai ca", 1).split() == ["cache"]
    assert complete("daidai cache p", 2).split() == ["prune"]
