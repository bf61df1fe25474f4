"""Content checksums as `sha256:<hex>`, for files and whole folders.

A folder's checksum is the sha256 of its sorted file list, one line per file:
`<relative posix path>\\0<file checksum>\\0<size>\\n`. It changes when any name, byte or
size changes, and does not depend on the order a listing returns files in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CHUNK_SIZE",
    "DirectoryDigest",
    "format_checksum",
    "hash_directory",
    "hash_file",
    "hash_listing",
    "is_checksum",
    "new_hasher",
]

CHUNK_SIZE = 4 * 1024 * 1024  # big enough that hashlib releases the GIL and syscalls amortize
PREFIX = "sha256:"


def new_hasher() -> _Hash:
    """A fresh sha256 object (flagged as not used for security, for FIPS builds)."""
    return hashlib.sha256(usedforsecurity=False)


def format_checksum(hasher: _Hash) -> str:
    """`sha256:<hex>` of a finished hasher."""
    return PREFIX + hasher.hexdigest()


def is_checksum(value: object) -> bool:
    """Whether `value` is a well-formed `sha256:<64 lowercase hex digits>` string."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return False
    digest = value[len(PREFIX) :]
    return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def hash_file(path: str | os.PathLike[str], *, chunk_size: int = CHUNK_SIZE) -> str:
    """`sha256:<hex>` of a file's content, read in chunks (constant memory)."""
    hasher = new_hasher()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            hasher.update(view[:n])
    return format_checksum(hasher)


def hash_listing(files: Iterable[tuple[str, str, int]]) -> str:
    """Checksum of a folder from `(relative path, file checksum, size)` triples."""
    hasher = new_hasher()
    for rel, checksum, size in sorted(files):
        hasher.update(f"{rel}\0{checksum}\0{size}\n".encode("utf-8", "surrogatepass"))
    return format_checksum(hasher)


class DirectoryDigest:
    """The result of hashing a folder.

    Attributes:
        checksum: `sha256:<hex>` over the sorted file list.
        size: total bytes.
        nfiles: number of files.
    """

    __slots__ = ("checksum", "nfiles", "size")

    def __init__(self, checksum: str, size: int, nfiles: int) -> None:
        self.checksum = checksum
        self.size = size
        self.nfiles = nfiles

    def __repr__(self) -> str:
        return f"DirectoryDigest({self.checksum!r}, size={self.size}, nfiles={self.nfiles})"


def hash_directory(root: str | os.PathLike[str]) -> DirectoryDigest:
    """Hash every file under `root` (symlinks are not followed) into a `DirectoryDigest`."""
    base = Path(root)
    files = []
    for folder, dirs, names in os.walk(base):
        dirs.sort()
        for name in names:
            path = Path(folder, name)
            rel = path.relative_to(base).as_posix()
            files.append((rel, hash_file(path), path.stat().st_size))
    return DirectoryDigest(hash_listing(files), sum(f[2] for f in files), len(files))
