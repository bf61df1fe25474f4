"""Checksums of files and folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from daidai.files.hashing import hash_directory, hash_file, is_checksum


def test_a_file_checksum_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    data = b"x" * (5 * 1024 * 1024 + 3)
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f", chunk_size=1024 * 1024) == (
        "sha256:" + hashlib.sha256(data).hexdigest()
    )


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_a_folder_checksum_changes_with_a_name_a_byte_or_a_file(tmp_path: Path) -> None:
    base = {"a.txt": b"a", "sub/b.bin": b"bb"}
    digest = hash_directory(_tree(tmp_path / "0", base))
    assert (digest.size, digest.nfiles) == (3, 2)
    variants = [
        {"a.txt": b"a", "sub/c.bin": b"bb"},
        {"a.txt": b"A", "sub/b.bin": b"bb"},
        {**base, "new": b""},
    ]
    for i, files in enumerate(variants, start=1):
        assert hash_directory(_tree(tmp_path / str(i), files)).checksum != digest.checksum


def test_a_folder_checksum_does_not_depend_on_creation_order(tmp_path: Path) -> None:
    one = _tree(tmp_path / "1", {"a": b"1", "b/c": b"2"})
    two = _tree(tmp_path / "2", {"b/c": b"2", "a": b"1"})
    assert hash_directory(one).checksum == hash_directory(two).checksum


def test_only_well_formed_sha256_checksums_are_accepted() -> None:
    assert is_checksum("sha256:" + "0" * 64)
    assert not is_checksum("sha256:" + "A" * 64)
    assert not is_checksum("md5:" + "0" * 32)
    assert not is_checksum(None)
