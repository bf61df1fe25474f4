"""daidai.lock: deterministic, atomic, and strict about what it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from daidai.errors import LockfileError
from daidai.files.lockfile import LockEntry, dumps, read_lockfile, write_lockfile

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
ENTRIES = [
    LockEntry("s3://models/weights.bin", A, 10, etag='"abc"', version_id="v1"),
    LockEntry("http://h/tok/", B, 3, kind="directory", nfiles=2),
]


def test_entries_are_written_sorted_by_uri_with_version_1() -> None:
    text = dumps(ENTRIES)
    assert text.startswith("version = 1\n")
    assert text.index("http://h/tok/") < text.index("s3://models/weights.bin")
    assert 'kind = "directory"\nnfiles = 2' in text


def test_a_lockfile_reads_back_what_was_written(tmp_path: Path) -> None:
    write_lockfile(tmp_path / "daidai.lock", ENTRIES)
    lock = read_lockfile(tmp_path / "daidai.lock")
    assert dict(lock.entries) == {e.uri: e for e in ENTRIES}


def test_nothing_is_rewritten_when_nothing_changed(tmp_path: Path) -> None:
    path = tmp_path / "daidai.lock"
    assert write_lockfile(path, ENTRIES)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert not write_lockfile(path, list(reversed(ENTRIES)))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["daidai.lock"]


def test_credentials_have_no_place_in_an_entry() -> None:
    assert set(LockEntry("s3://b/k", A, 1).to_toml()) == {"uri", "checksum", "size"}


def test_a_missing_lockfile_reads_as_empty_unless_required(tmp_path: Path) -> None:
    assert len(read_lockfile(tmp_path / "daidai.lock")) == 0
    with pytest.raises(LockfileError, match="daidai fetch"):
        read_lockfile(tmp_path / "daidai.lock", missing_ok=False)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("version = [", "not valid TOML"),
        ("version = 2\n", "'version'"),
        ("version = 1\nextra = 1\n", "'extra'"),
        ('version = 1\n[[files]]\nuri = "u"\nchecksum = "sha256:12"\nsize = 1\n', "'checksum'"),
        (f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = -1\n', "'size'"),
        (f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = true\n', "'size'"),
        (f'version = 1\n[[files]]\nchecksum = "{A}"\nsize = 1\n', "'uri'"),
        (f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = 1\nkey = "s"\n', "'key'"),
        (f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = 1\nkind = "x"\n', "'kind'"),
        (
            f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = 1\nkind = "directory"\n',
            "'nfiles'",
        ),
        (
            f'version = 1\n[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = 1\n'
            f'[[files]]\nuri = "u"\nchecksum = "{A}"\nsize = 1\n',
            "appears twice",
        ),
        ('version = 1\nfiles = "x"\n', "'files'"),
    ],
)
def test_a_hand_edited_lockfile_is_an_error_naming_the_file_and_key(
    tmp_path: Path, text: str, names: str
) -> None:
    path = tmp_path / "daidai.lock"
    path.write_text(text)
    with pytest.raises(LockfileError) as caught:
        read_lockfile(path)
    assert names in str(caught.value)
    assert str(path) in str(caught.value)
    assert "daidai fetch" in str(caught.value)


def test_a_lockfile_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "daidai.lock"
    path.write_bytes(b"version = 1\n\xff\xfe")
    with pytest.raises(LockfileError, match="not valid TOML"):
        read_lockfile(path)
