"""Hostile `daidai.toml` and `daidai.lock` (deep nesting, huge values) are one error line
naming the file, and untrusted strings (URIs from the lockfile, names) reach the terminal
with their control characters escaped (SPEC §8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daidai.errors import ConfigError, LockfileError
from tests.cli_project import daidai, one_error_line

HOSTILE = {
    "deep arrays": "x = " + "[" * 50_000 + "]" * 50_000 + "\n",
    "deep tables": "x = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n",
    "huge integer": "x = " + "9" * 100_000 + "\n",
    "too large": "# " + "a" * (70 * 1024 * 1024) + "\n",
}
# Title change, OSC 52 clipboard write, cursor movement, and a C1 CSI.
ESCAPES = "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31m"


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("which", ["daidai.toml", "daidai.lock"])
def test_hostile_toml_is_one_error_line_naming_the_file(
    name: str, which: str, tmp_path: Path
) -> None:
    (tmp_path / "daidai.toml").write_text("")
    (tmp_path / which).write_text(HOSTILE[name])
    if which == "daidai.toml":
        (tmp_path / "daidai.lock").write_text("version = 1\n")

    for command in (("fetch", "--frozen"), ("verify",), ("cache", "ls")):
        line = one_error_line(daidai(*command, cwd=tmp_path))
        assert str(tmp_path / which) in line, line
        assert "RecursionError" not in line and "Traceback" not in line


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_toml_is_a_daidai_error_in_the_library(name: str, tmp_path: Path) -> None:
    from daidai._settings import load_settings
    from daidai.files.lockfile import read_lockfile

    (tmp_path / "daidai.toml").write_text(HOSTILE[name])
    (tmp_path / "daidai.lock").write_text(HOSTILE[name])

    with pytest.raises(ConfigError, match=r"daidai\.toml"):
        load_settings(start=tmp_path)
    with pytest.raises(LockfileError, match=r"daidai\.lock"):
        read_lockfile(tmp_path / "daidai.lock")


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, control characters as `\\uXXXX`."""
    body = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in '"\\' else c
        for c in text
    )
    return f'"{body}"'


def defused(out: str) -> bool:
    return not any(c in out for c in "\x1b\x07\x9b") and "\\x1b]0;pwned\\x07" in out


@pytest.mark.parametrize("uri", ["file:///\x00", "/tmp/a\x00b", "memory://b/\x00", "\x00"])
def test_a_locked_uri_with_a_nul_byte_is_one_error_line(uri: str, tmp_path: Path) -> None:
    (tmp_path / "daidai.lock").write_text(
        f"version = 1\n\n[[files]]\nuri = {toml_string(uri)}\n"
        f'checksum = "sha256:{"0" * 64}"\nsize = 1\n'
    )

    for command in (("fetch", "--frozen"), ("verify", "--repair")):
        result = daidai(*command, cwd=tmp_path)
        assert result.code in (1, 3), result
        assert "Traceback" not in result.stderr and "NUL" in result.stdout + result.stderr


def test_control_characters_of_a_locked_uri_never_reach_the_terminal(tmp_path: Path) -> None:
    uri = f"memory://bucket/weights{ESCAPES}.bin"
    (tmp_path / "daidai.lock").write_text(
        f"version = 1\n\n[[files]]\nuri = {toml_string(uri)}\n"
        f'checksum = "sha256:{"0" * 64}"\nsize = 1\n'
    )

    runs = [
        daidai(*c, cwd=tmp_path) for c in (("fetch", "--frozen"), ("verify",), ("verify", "-v"))
    ]

    for run in runs:
        assert run.code in (1, 3), run
        assert "weights" in run.stdout + run.stderr
        assert defused(run.stdout + run.stderr), repr(run.stdout + run.stderr)


def test_control_characters_in_a_cached_file_name_never_reach_the_terminal(
    tmp_path: Path,
) -> None:
    import hashlib
    import json

    source = tmp_path / f"weights{ESCAPES}.bin"
    source.write_bytes(b"w")
    checksum = "sha256:" + hashlib.sha256(b"w").hexdigest()
    (tmp_path / "daidai.lock").write_text(
        f"version = 1\n\n[[files]]\nuri = {toml_string(str(source))}\n"
        f'checksum = "{checksum}"\nsize = 1\n'
    )
    assert daidai("fetch", "--frozen", cwd=tmp_path).code == 0

    plain, as_json, verbose = (
        daidai(*c, cwd=tmp_path)
        for c in (("cache", "ls"), ("cache", "ls", "--json"), ("fetch", "--frozen", "-v"))
    )

    assert defused(plain.stdout) and defused(verbose.stdout), (plain, verbose)
    assert not any(c in as_json.stdout for c in "\x1b\x07\x9b"), repr(as_json.stdout)
    (entry,) = json.loads(as_json.stdout)["entries"]
    assert entry["uri"] == str(source)  # JSON keeps the exact name, escaped
