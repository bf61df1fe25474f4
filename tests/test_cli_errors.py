"""Bad input gives one clear red line on stderr, the right exit code and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_project import Project, make_project, one_error_line
from tests.servers import NginxServer


@pytest.fixture
def project(tmp_path: Path, http_server: NginxServer) -> Project:
    return make_project(tmp_path / "proj", http_server)


def test_targets_that_cannot_be_imported_or_found(project: Project) -> None:
    (project.root / "app" / "broken.py").write_text("1 / 0\n")
    missing_module = project.run("graph", "app.nowhere")
    raising = project.run("graph", "app.broken")
    missing_attr = project.run("graph", "app.models:nothing")
    missing_file = project.run("fetch", "app/nowhere.py")
    verbose = project.run("graph", "app.broken", "-v")

    assert missing_module.code == 1
    assert "no module named 'app.nowhere'" in one_error_line(missing_module)
    assert raising.code == 1
    assert "ZeroDivisionError" in one_error_line(raising)
    assert missing_attr.code == 1
    line = one_error_line(missing_attr)
    assert "'nothing'" in line and "predict" in line  # lists what is there
    assert missing_file.code == 1
    assert "no such file" in one_error_line(missing_file)
    assert verbose.code == 1 and "Traceback" in verbose.stderr


def test_unknown_option_and_unknown_command_are_usage_errors(project: Project) -> None:
    option = project.run("fetch", "--fast")
    command = project.run("fecth")

    assert option.code == 2
    assert "--fast" in one_error_line(option)
    assert command.code == 2
    assert "fecth" in one_error_line(command)


def test_malformed_daidai_toml_names_the_file_and_key(project: Project) -> None:
    (project.root / "daidai.toml").write_text('modules = ["app.models"]\njobs = "many"\n')
    wrong_type = project.run("fetch")
    (project.root / "daidai.toml").write_text("modules = [\n")
    not_toml = project.run("graph")
    (project.root / "daidai.toml").write_text("colour = 'red'\n")
    unknown_key = project.run("cache", "ls")

    assert wrong_type.code == 1
    line = one_error_line(wrong_type)
    assert "daidai.toml" in line and "'jobs'" in line and "positive integer" in line
    assert not_toml.code == 1
    assert "not valid TOML" in one_error_line(not_toml)
    assert unknown_key.code == 1
    assert "'colour'" in one_error_line(unknown_key) and "cache_dir" in unknown_key.stderr


def test_malformed_or_hand_edited_lockfile(project: Project) -> None:
    project.lockfile.write_text("version = 1\n[[files]\n")
    not_toml = project.run("fetch", "--frozen")
    project.lockfile.write_text(
        'version = 1\n\n[[files]]\nuri = "http://x/a.bin"\nchecksum = "md5:abc"\nsize = 1\n'
    )
    bad_checksum = project.run("verify")
    project.lockfile.write_text("version = 2\nfiles = []\n")
    bad_version = project.run("cache", "ls")

    for result in (not_toml, bad_checksum, bad_version):
        assert result.code == 1, result
        assert "daidai.lock" in one_error_line(result)
    assert "'checksum'" in bad_checksum.stderr


def test_no_target_and_no_modules_is_a_usage_error(project: Project) -> None:
    (project.root / "daidai.toml").write_text("jobs = 2\n")

    result = project.run("fetch")

    assert result.code == 2
    assert "TARGET" in one_error_line(result)
