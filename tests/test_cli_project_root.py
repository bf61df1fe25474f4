"""One project root: every command behaves the same from any subfolder (SPEC §1.4, §2).

Relative local paths in annotations, and a relative `cache_dir` or `lockfile` in
`daidai.toml`, are relative to the folder holding `daidai.toml`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_project import DAIDAI, Result

_MODELS = """
from pathlib import Path
from typing import Annotated
from daidai import artifact, predictor

@artifact
def lexicon(path: Annotated[Path, "models/lexicon.tsv"]) -> dict:
    return dict(line.split("\\t") for line in path.read_text().splitlines())

@predictor
def lookup(word: str, lex: Annotated[dict, lexicon]) -> str:
    return lex.get(word, "?")
"""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The installed `daidai`, with `DAIDAI_CACHE_DIR` unset unless `env` sets it."""
    full = {k: v for k, v in os.environ.items() if k != "DAIDAI_CACHE_DIR"}
    done = subprocess.run(
        [DAIDAI, *args],
        cwd=cwd,
        env={**full, "COLUMNS": "80", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(tuple(args), done.returncode, done.stdout, done.stderr)


def make(root: Path, *, toml: str, lexicon: str = "kiwi\tfruit\n") -> Path:
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "models.py").write_text(_MODELS)
    (root / "models").mkdir()
    (root / "models" / "lexicon.tsv").write_text(lexicon)
    (root / "data" / "deep").mkdir(parents=True)
    (root / "daidai.toml").write_text(toml)
    return root


@pytest.fixture
def project(tmp_path: Path, cache_dir: Path) -> Path:
    return make(tmp_path / "proj", toml='modules = ["app.models"]\n')


def test_a_relative_cache_dir_is_relative_to_daidai_toml_from_any_subfolder(
    tmp_path: Path,
) -> None:
    root = make(tmp_path / "proj", toml='modules = ["app.models"]\ncache_dir = ".cache"\n')

    shown = [run("cache", "dir", cwd=where).stdout.strip() for where in (root, root / "data")]
    fetched = run("fetch", cwd=root)

    assert shown == [str(root / ".cache")] * 2
    assert fetched.code == 0, fetched
    assert list((root / ".cache").rglob("lexicon.tsv"))
    assert not (root / "data" / ".cache").exists()
