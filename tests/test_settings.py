"""daidai.toml, [tool.daidai] and DAIDAI_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from daidai import ConfigError
from daidai._settings import load_settings


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAIDAI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = load_settings()
    assert settings.cache_dir == tmp_path / "xdg" / "daidai"
    assert settings.lockfile == Path.cwd() / "daidai.lock"
    assert settings.default_cache_strategy == "on_disk"
    assert settings.jobs == 8
    assert settings.offline is False
    assert not (tmp_path / "xdg").exists(), "reading settings must not create folders"


def test_daidai_toml_is_found_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAIDAI_CACHE_DIR")
    write(
        tmp_path / "daidai.toml",
        'modules = ["app.models"]\ncache_dir = "/var/cache/x"\nlockfile = "locks/daidai.lock"\n'
        'default_cache_strategy = "in_memory"\njobs = 3\noffline = true\n'
        '[storage_options.s3]\nendpoint_url = "http://127.0.0.1:8333"\n',
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    settings = load_settings()
    assert settings.config_file == tmp_path / "daidai.toml"
    assert settings.modules == ("app.models",)
    assert settings.cache_dir == Path("/var/cache/x")
    assert settings.lockfile == tmp_path / "locks" / "daidai.lock"
    assert settings.default_cache_strategy == "in_memory"
    assert (settings.jobs, settings.offline) == (3, True)
    assert settings.storage_options == {"s3": {"endpoint_url": "http://127.0.0.1:8333"}}


def test_pyproject_tool_section_is_read(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.daidai]\njobs = 2\n')
    assert load_settings().jobs == 2


def test_environment_wins_over_the_file_and_arguments_win_over_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "daidai.toml", 'cache_dir = "from-file"\noffline = false\n')
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    settings = load_settings()
    assert settings.cache_dir == tmp_path / "from-env"
    assert settings.offline is True
    assert load_settings(cache_dir=tmp_path / "arg", offline=False).cache_dir == tmp_path / "arg"
    assert load_settings(offline=False).offline is False


def test_daidai_config_points_at_a_file_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "elsewhere" / "conf.toml", "jobs = 5\n")
    monkeypatch.setenv("DAIDAI_CONFIG", str(config))
    assert load_settings().jobs == 5
    monkeypatch.setenv("DAIDAI_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="DAIDAI_CONFIG"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("cache_dri = 'x'\n", "cache_dri", "valid keys are"),
        ("jobs = 'eight'\n", "jobs", "positive integer"),
        ("jobs = true\n", "jobs", "positive integer"),
        ("jobs = 0\n", "jobs", "positive integer"),
        ("offline = 'yes'\n", "offline", "true or false"),
        ("default_cache_strategy = 'fast'\n", "default_cache_strategy", "on_disk"),
        ("modules = 'app'\n", "modules", "list of module names"),
        ("[storage_options]\ns3 = 1\n", "storage_options.s3", "table"),
    ],
)
def test_a_wrong_key_or_type_names_file_key_and_choices(
    tmp_path: Path, text: str, key: str, hint: str
) -> None:
    write(tmp_path / "daidai.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert str(tmp_path / "daidai.toml") in message
    assert repr(key) in message
    assert hint in message


def test_malformed_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "daidai.toml", "jobs = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_an_invalid_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAIDAI_OFFLINE", "maybe")
    with pytest.raises(ConfigError, match="DAIDAI_OFFLINE"):
        load_settings()
    monkeypatch.setenv("DAIDAI_OFFLINE", "0")
    monkeypatch.setenv("DAIDAI_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="DAIDAI_LOG_LEVEL"):
        load_settings()


def test_settings_are_read_when_needed_not_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import daidai  # noqa: F401  (already imported: the point is that nothing was frozen)

    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(tmp_path / "late"))
    assert load_settings().cache_dir == tmp_path / "late"


def test_daidai_log_level_sets_the_level_of_daidai_loggers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from daidai import ModelManager

    logger = logging.getLogger("daidai")
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setenv("DAIDAI_LOG_LEVEL", "debug")
    assert ModelManager().settings.log_level == "DEBUG"
    assert logger.getEffectiveLevel() == logging.DEBUG
