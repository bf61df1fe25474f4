"""What user code prints never reaches a command's JSON on stdout (SPEC §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_project import daidai

_NOISY = """
import os, sys
from typing import Annotated
from daidai import artifact, predictor

print("hello from the module")
sys.stdout.write("more text\\n")
os.write(1, b"straight to descriptor 1\\n")

@artifact
def words(text: Annotated[str, "words.txt"]) -> list:
    return text.split()

@predictor
def count(w: Annotated[list, words]) -> int:
    print("counting")
    return len(w)
"""


@pytest.fixture
def noisy(tmp_path: Path) -> Path:
    (tmp_path / "daidai.toml").write_text('modules = ["noisy"]\n')
    (tmp_path / "noisy.py").write_text(_NOISY)
    (tmp_path / "words.txt").write_text("a b c\n")
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ("graph", "--format", "json"),
        ("fetch",),
        ("run", "--json", "noisy:count"),
    ],
    ids=["graph-json", "fetch", "run-json"],
)
def test_json_stdout_is_one_document_whatever_the_module_prints(
    noisy: Path, args: tuple[str, ...]
) -> None:
    result = daidai(*args, cwd=noisy)

    assert result.code == 0, result
    assert "hello from the module" in result.stderr
    assert "straight to descriptor 1" in result.stderr
    for text in ("hello from the module", "more text", "straight to descriptor 1", "counting"):
        assert text not in result.stdout
    if "json" in " ".join(args):
        document = json.loads(result.stdout)
        assert document == 3 if args[0] == "run" else isinstance(document, (list, dict))
