"""`daidai run MODULE:PREDICTOR` with options typed from the predictor's signature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_project import Project, make_project, one_error_line
from tests.servers import NginxServer

EXTRA = """
import asyncio
import enum


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@predictor
async def slow_echo(text: str, words: Annotated[list, vocabulary], mode: Mode = Mode.FAST) -> str:
    await asyncio.sleep(0)
    return f"{text}/{mode.value}/{len(words)}"


@predictor
def tally(values: list[int], options: dict = None) -> dict:
    return {"sum": sum(values), "options": options}
"""


@pytest.fixture
def project(tmp_path: Path, http_server: NginxServer) -> Project:
    project = make_project(tmp_path / "proj", http_server)
    project.write_models(extra=EXTRA)
    return project


def test_run_types_options_from_the_signature_and_prints_text_as_is(project: Project) -> None:
    text = project.run("run", "app.models:predict", "--text", "lime kiwi", "--times", "2")
    structured = project.run("run", "app.models:stats", "--n", "3", "--ratio", "0.25", "--shout")
    forced = project.run("run", "app.models:predict", "--text", "lime", "--json")

    assert text.code == 0, text
    assert text.stdout == "1 known, model of 65536 bytes x2" * 2 + "\n"
    assert json.loads(structured.stdout) == {"n": 3, "ratio": 0.25, "shout": True, "words": 3}
    assert json.loads(forced.stdout) == "1 known, model of 65536 bytes x2"


def test_run_handles_async_predictors_enums_lists_and_json_values(project: Project) -> None:
    echoed = project.run("run", "app/models.py:slow_echo", "--text", "hi", "--mode", "slow")
    tallied = project.run(
        "run", "app.models:tally", "--values", "1", "--values", "2", "--options", '{"a": 1}'
    )

    assert echoed.code == 0, echoed
    assert echoed.stdout == "hi/slow/3\n"
    assert json.loads(tallied.stdout) == {"sum": 3, "options": {"a": 1}}


def test_run_help_lists_the_predictors_own_options(project: Project) -> None:
    predictor_help = project.run("run", "app.models:stats", "--help")
    run_help = project.run("run", "--help")

    assert predictor_help.code == 0, predictor_help
    for option in ("--n", "--ratio", "--shout"):
        assert option in predictor_help.stdout
    assert "--words" not in predictor_help.stdout  # injected, not an option
    assert run_help.code == 0 and "MODULE:PREDICTOR" in run_help.stdout


def test_run_rejects_a_wrong_type_an_unknown_option_and_a_non_predictor(project: Project) -> None:
    wrong_type = project.run("run", "app.models:stats", "--n", "three")
    unknown = project.run("run", "app.models:stats", "--n", "3", "--colour", "red")
    missing = project.run("run", "app.models:stats")
    artifact = project.run("run", "app.models:model")
    no_colon = project.run("run", "app.models")

    assert wrong_type.code == 2, wrong_type
    assert "--n" in one_error_line(wrong_type)
    assert unknown.code == 2, unknown
    assert "--colour" in one_error_line(unknown)
    assert missing.code == 2 and "--n" in one_error_line(missing), missing
    assert artifact.code == 1, artifact
    assert "not a predictor" in one_error_line(artifact)
    assert no_colon.code == 2 and "MODULE:PREDICTOR" in one_error_line(no_colon), no_colon
