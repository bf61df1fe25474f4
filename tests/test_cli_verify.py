"""`daidai verify [--repair]` through the installed executable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_project import Project, make_project, one_error_line
from tests.servers import NginxServer, S3Server


@pytest.fixture
def project(tmp_path: Path, http_server: NginxServer) -> Project:
    project = make_project(tmp_path / "proj", http_server)
    assert project.run("fetch").code == 0
    return project


def _flip_first_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_passes_on_an_intact_cache(project: Project) -> None:
    result = project.run("verify")

    assert result.code == 0, result
    assert "2 locked files intact" in result.stdout


def test_verify_exits_3_after_a_cached_byte_is_flipped_and_repair_fixes_it(
    project: Project, cache_dir: Path
) -> None:
    [weights] = cache_dir.rglob("*-weights.bin")
    _flip_first_byte(weights)

    broken = project.run("verify")
    repaired = project.run("verify", "--repair", "--jobs", "2")
    after = project.run("verify")

    assert broken.code == 3, broken
    assert "verify --repair" in one_error_line(broken)
    assert f"corrupt  {project.urls['weights.bin']}" in broken.stdout
    assert repaired.code == 0, repaired
    assert f"repaired {project.urls['weights.bin']}" in repaired.stdout
    assert after.code == 0, after
    assert [p.read_bytes() for p in cache_dir.rglob("*-weights.bin")] == [
        project.files["weights.bin"]
    ]


def test_verify_exits_3_listing_a_missing_file(project: Project, tmp_path: Path) -> None:
    result = project.run("verify", env={"DAIDAI_CACHE_DIR": str(tmp_path / "empty")})

    assert result.code == 3, result
    assert f"missing  {project.urls['vocab.txt']}" in result.stdout
    one_error_line(result)


def test_verify_without_a_lockfile_says_to_fetch(project: Project) -> None:
    project.lockfile.unlink()

    result = project.run("verify")

    assert result.code == 1, result
    assert "daidai fetch" in one_error_line(result)


def test_verify_finds_a_file_cached_under_its_annotations_own_endpoint(
    tmp_path: Path, s3_server: S3Server, http_server: NginxServer
) -> None:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/weights.bin", b"weights from a private endpoint")
    folder = tmp_path / "own-endpoint"
    folder.mkdir()
    (folder / "daidai.toml").write_text('modules = ["models"]\n')
    (folder / "models.py").write_text(
        "from pathlib import Path\n"
        "from typing import Annotated\n"
        "from daidai import artifact\n"
        f"OPTIONS = {s3_server.storage_options!r}\n"
        "@artifact\n"
        f"def weights(p: Annotated[Path, {uri!r}, {{'storage_options': OPTIONS}}]) -> bytes:\n"
        "    return p.read_bytes()\n"
    )
    project = Project(folder, http_server)
    assert project.run("fetch").code == 0

    result = project.run("verify")

    assert result.code == 0, result
    assert "1 locked file intact" in result.stdout
