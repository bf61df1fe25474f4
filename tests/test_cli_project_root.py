"""One project root: every command behaves the same from any subfolder (SPEC §1.4, §2).

Relative local paths in annotations, and a relative `cache_dir` or `lockfile` in
`daidai.toml`, are relative to the folder holding `daidai.toml`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cli_project import DAIDAI, Result, one_error_line
from tests.servers import NginxServer

Project = Path  # a project's root folder

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


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, cache_from_toml: bool = False
) -> Result:
    """The installed `daidai`; with `cache_from_toml`, `DAIDAI_CACHE_DIR` unset."""
    drop = "DAIDAI_CACHE_DIR" if cache_from_toml else None
    full = {k: v for k, v in os.environ.items() if k != drop}
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
def project(tmp_path: Path, cache_dir: Path) -> Project:
    return make(tmp_path / "proj", toml='modules = ["app.models"]\n')


def test_a_relative_cache_dir_is_relative_to_daidai_toml_from_any_subfolder(
    tmp_path: Path,
) -> None:
    root = make(tmp_path / "proj", toml='modules = ["app.models"]\ncache_dir = ".cache"\n')

    shown = [
        run("cache", "dir", cwd=where, cache_from_toml=True).stdout.strip()
        for where in (root, root / "data")
    ]
    fetched = run("fetch", cwd=root, cache_from_toml=True)

    assert shown == [str(root / ".cache")] * 2
    assert fetched.code == 0, fetched
    assert list((root / ".cache").rglob("lexicon.tsv"))
    assert not (root / "data" / ".cache").exists()


def _lock_text(root: Path) -> str:
    return (root / "daidai.lock").read_text()


def test_every_command_behaves_the_same_from_a_subfolder(project: Project) -> None:
    deep = project / "data" / "deep"

    fetched = run("fetch", cwd=deep)
    graph = run("graph", "--format", "json", cwd=project / "data")
    verified = run("verify", cwd=deep)
    ran = run("run", "app.models:lookup", "--word", "kiwi", cwd=deep)
    listed = run("cache", "ls", "--json", cwd=deep)

    assert fetched.code == 0, fetched
    assert 'uri = "models/lexicon.tsv"' in _lock_text(project)  # portable: relative to the root
    assert graph.code == 0, graph
    [node] = [n for n in json.loads(graph.stdout)["components"] if n["files"]]
    assert [(f["uri"], f["state"], f["locked"]) for f in node["files"]] == [
        ("models/lexicon.tsv", "cached", True)
    ]
    assert verified.code == 0, verified
    assert ran.code == 0 and ran.stdout == "fruit\n", ran
    assert listed.code == 0, listed
    [entry] = json.loads(listed.stdout)["entries"]
    assert entry["uri"] == str(project / "models" / "lexicon.tsv")
    assert entry["locked"] is True


def test_two_projects_sharing_a_cache_list_their_files_by_absolute_uri(tmp_path: Path) -> None:
    one = make(tmp_path / "one", toml='modules = ["app.models"]\n', lexicon="kiwi\tbird\n")
    two = make(tmp_path / "two", toml='modules = ["app.models"]\n', lexicon="kiwi\tfruit\n")
    env = {"DAIDAI_CACHE_DIR": str(tmp_path / "shared")}

    answers = []
    for root in (one, two):
        assert run("fetch", cwd=root / "data", env=env).code == 0
        answers.append(run("run", "app.models:lookup", "--word", "kiwi", cwd=root, env=env))
    listed = run("cache", "ls", "--json", cwd=tmp_path, env=env)

    assert [a.stdout for a in answers] == ["bird\n", "fruit\n"]
    uris = sorted(e["uri"] for e in json.loads(listed.stdout)["entries"])
    assert uris == [str(one / "models" / "lexicon.tsv"), str(two / "models" / "lexicon.tsv")]


def test_a_relative_path_without_any_project_file_is_relative_to_the_current_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.py").write_text(_MODELS)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "lexicon.tsv").write_text("kiwi\tfruit\n")

    ran = run("run", "app:lookup", "--word", "kiwi", cwd=tmp_path)
    elsewhere = run(
        "run", str(tmp_path / "app.py") + ":lookup", "--word", "kiwi", cwd=tmp_path / "models"
    )

    assert ran.code == 0 and ran.stdout == "fruit\n", ran
    assert elsewhere.code == 1, elsewhere
    assert str(tmp_path / "models" / "models" / "lexicon.tsv") in elsewhere.stderr


def test_frozen_fetch_takes_a_cached_local_file_whose_source_is_absent(
    project: Project, http_server: NginxServer, tmp_path: Path
) -> None:
    """The Docker layer before `COPY . .`: the cache (a cache mount) already holds the
    locked copy of a local file that the build context does not have yet."""
    assert run("fetch", cwd=project).code == 0
    (project / "models" / "lexicon.tsv").unlink()
    shutil.rmtree(project / "app")

    frozen = run("fetch", "--frozen", cwd=project / "data")

    assert frozen.code == 0, frozen
    assert "0 downloaded, 1 already cached" in frozen.stdout


def test_frozen_fetch_names_each_locked_file_neither_fetchable_nor_cached(
    project: Project, http_server: NginxServer
) -> None:
    gone = http_server.put(f"{uuid.uuid4().hex}-gone.bin", b"soon gone")
    (project / "app" / "extra.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n\n"
        f"@artifact\ndef extra(p: Annotated[Path, {gone!r}], q: Annotated[Path, 'models/b.txt'])"
        " -> int:\n    return 0\n"
    )
    (project / "models" / "b.txt").write_text("b\n")
    (project / "daidai.toml").write_text('modules = ["app.models", "app.extra"]\n')
    assert run("fetch", cwd=project).code == 0
    cache = Path(os.environ["DAIDAI_CACHE_DIR"])
    for name in (gone.rsplit("/", 1)[1], "b.txt"):
        for copy in cache.glob(f"files/*/*/sha256-*/{name}"):
            shutil.rmtree(copy.parent)
    (project / "models" / "b.txt").unlink()
    (http_server.root / gone.rsplit("/", 1)[1]).unlink()

    frozen = run("fetch", "--frozen", cwd=project)

    assert frozen.code == 1, frozen
    line = one_error_line(frozen)
    assert "2 locked file(s)" in line
    assert gone in line and "models/b.txt" in line
    assert "models/lexicon.tsv" not in line  # cached with its locked checksum: fine


def test_frozen_fetch_in_another_folder_takes_local_files_from_the_shared_cache(
    project: Project, tmp_path: Path
) -> None:
    """A Docker build at /srv whose cache was filled where the project lived elsewhere: the
    locked copy of a local file, found by its checksum and name, serves the image."""
    assert run("fetch", cwd=project).code == 0
    image = tmp_path / "image"
    image.mkdir()
    for name in ("daidai.toml", "daidai.lock"):
        shutil.copy(project / name, image / name)

    frozen = run("fetch", "--frozen", cwd=image)  # before `COPY . .`: no models/ yet
    shutil.copytree(project / "app", image / "app")
    shutil.copytree(project / "models", image / "models")
    offline = {"DAIDAI_OFFLINE": "1"}
    ran = run("run", "app.models:lookup", "--word", "kiwi", cwd=image, env=offline)
    gate = run("fetch", "--locked", cwd=image, env=offline)

    assert frozen.code == 0, frozen
    assert "1 file ready" in frozen.stdout
    assert ran.code == 0 and ran.stdout == "fruit\n", ran
    assert "out of date" not in ran.stderr  # nothing says the file differs from its pin
    assert gate.code == 0, gate
