"""`daidai.lock`: the checksums a project pins (SPEC §3).

The file is TOML with `version = 1` and one `[[files]]` table per URI, sorted by URI.
Output is a pure function of the entries (no timestamps, no credentials), so re-running
`daidai fetch` with nothing changed rewrites the same bytes, and it is written through a
temporary file and `os.replace`, so a killed writer leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daidai.errors import LockfileError
from daidai.files._process import is_alive
from daidai.files.hashing import is_checksum
from daidai.files.layout import strip_credentials

__all__ = ["LOCKFILE_VERSION", "LockEntry", "Lockfile", "dumps", "read_lockfile", "write_lockfile"]

LOCKFILE_VERSION = 1
MAX_LOCKFILE_BYTES = 64 * 1024 * 1024  # ~300k entries; bounds what a hostile file costs
_FIX = "re-run `daidai fetch` to regenerate it"
_KINDS = ("file", "directory")
_OPTIONAL_STR = ("etag", "version_id")
_KEYS = ("uri", "checksum", "size", "etag", "version_id", "kind", "nfiles")


@dataclass(frozen=True)
class LockEntry:
    """One pinned file or folder.

    Attributes:
        uri: the source URI.
        checksum: `sha256:<hex>` (over the sorted file list for a directory).
        size: bytes (total for a directory).
        etag: the source's ETag when it gives one.
        version_id: the source's version id (versioned buckets).
        kind: `"file"` or `"directory"`.
        nfiles: number of files, for a directory.
    """

    uri: str
    checksum: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    kind: str = "file"
    nfiles: int | None = None

    def __post_init__(self) -> None:
        # Credentials never reach the lockfile (SPEC §2), whatever URI the entry came from.
        object.__setattr__(self, "uri", strip_credentials(self.uri))

    def to_toml(self) -> dict[str, Any]:
        """The table written for this entry, in a fixed key order."""
        table: dict[str, Any] = {"uri": self.uri, "checksum": self.checksum, "size": self.size}
        for key in _OPTIONAL_STR:
            if getattr(self, key) is not None:
                table[key] = getattr(self, key)
        if self.kind == "directory":
            table["kind"] = "directory"
            table["nfiles"] = self.nfiles or 0
        return table


@dataclass(frozen=True)
class Lockfile:
    """The parsed content of a lockfile.

    Attributes:
        path: where it was read from (or will be written).
        entries: pinned entries by URI.
    """

    path: Path
    entries: Mapping[str, LockEntry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", _Entries(self.entries))

    def get(self, uri: str) -> LockEntry | None:
        """The entry pinning `uri` (credentials in it aside), if any."""
        return self.entries.get(uri)

    def __contains__(self, uri: object) -> bool:
        return uri in self.entries

    def __len__(self) -> int:
        return len(self.entries)


class _Entries(dict[str, LockEntry]):
    """Entries by URI, looked up as written: a URI with credentials finds its entry."""

    def __getitem__(self, uri: str) -> LockEntry:
        return super().__getitem__(strip_credentials(uri))

    def __contains__(self, uri: object) -> bool:
        return super().__contains__(strip_credentials(uri) if isinstance(uri, str) else uri)

    def get(self, uri: str, default: Any = None) -> Any:
        return super().get(strip_credentials(uri), default)


def read_lockfile(path: str | os.PathLike[str], *, missing_ok: bool = True) -> Lockfile:
    """Read and validate a lockfile.

    Args:
        path: the lockfile.
        missing_ok: return an empty `Lockfile` when the file does not exist.

    Raises:
        LockfileError: the file is missing (unless `missing_ok`), unreadable, not TOML, or an
            entry is malformed; the message names the file, the entry and the key.
    """
    lock_path = Path(path)
    try:
        raw = lock_path.read_bytes()
    except FileNotFoundError as exc:
        if missing_ok:
            return Lockfile(lock_path, {})
        raise LockfileError("no lockfile; run `daidai fetch` to create it", path=str(path)) from exc
    except OSError as exc:
        raise LockfileError(f"cannot be read ({exc.strerror})", path=str(path)) from exc
    return Lockfile(lock_path, _parse(raw, str(path)))


def _parse(raw: bytes, where: str) -> dict[str, LockEntry]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    if len(raw) > MAX_LOCKFILE_BYTES:
        raise LockfileError(f"larger than {MAX_LOCKFILE_BYTES} bytes; not read", path=where)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LockfileError(f"not valid TOML ({exc}); {_FIX}", path=where) from exc
    except (RecursionError, ValueError, MemoryError) as exc:
        # Hostile input: nesting deeper than the parser's stack, an integer of 100k digits.
        why = "nested too deeply" if isinstance(exc, RecursionError) else "a value too large"
        raise LockfileError(f"not valid TOML ({why}); {_FIX}", path=where) from exc
    unknown = sorted(set(data) - {"version", "files"})
    if unknown:
        raise LockfileError(f"unknown key {unknown[0]!r}; {_FIX}", path=where)
    if data.get("version") != LOCKFILE_VERSION:
        raise LockfileError(
            f"key 'version' must be {LOCKFILE_VERSION}, got {data.get('version')!r}; {_FIX}",
            path=where,
        )
    files = data.get("files", [])
    if not isinstance(files, list):
        raise LockfileError(f"key 'files' must be an array of tables; {_FIX}", path=where)
    entries: dict[str, LockEntry] = {}
    for index, table in enumerate(files, start=1):
        entry = _entry(table, index, where)
        if entry.uri in entries:
            raise LockfileError(
                f"entry {index}: uri {entry.uri!r} appears twice; {_FIX}", path=where
            )
        entries[entry.uri] = entry
    return entries


def _entry(table: Any, index: int, where: str) -> LockEntry:
    def fail(key: str, why: str) -> LockfileError:
        uri = table.get("uri") if isinstance(table, dict) else None
        label = f"entry {index}" + (f" ({uri!r})" if isinstance(uri, str) else "")
        return LockfileError(f"{label}: key {key!r} {why}; {_FIX}", path=where)

    if not isinstance(table, dict):
        raise fail("files", "must hold tables")
    for key in sorted(set(table) - set(_KEYS)):
        raise fail(key, "is not a lockfile key")
    if not isinstance(table.get("uri"), str) or not table["uri"]:
        raise fail("uri", "must be a non-empty string")
    if not is_checksum(table.get("checksum")):
        raise fail("checksum", "must be 'sha256:<64 lowercase hex digits>'")
    if not _is_count(table.get("size")):
        raise fail("size", "must be a non-negative integer")
    for key in _OPTIONAL_STR:
        if key in table and not isinstance(table[key], str):
            raise fail(key, "must be a string")
    kind = table.get("kind", "file")
    if kind not in _KINDS:
        raise fail("kind", f"must be one of {', '.join(_KINDS)}")
    if kind == "directory" and not _is_count(table.get("nfiles")):
        raise fail("nfiles", "must be a non-negative integer for a directory")
    if kind == "file" and "nfiles" in table:
        raise fail("nfiles", "is only valid with kind = 'directory'")
    return LockEntry(
        uri=table["uri"],
        checksum=table["checksum"],
        size=table["size"],
        etag=table.get("etag"),
        version_id=table.get("version_id"),
        kind=kind,
        nfiles=table.get("nfiles"),
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def dumps(entries: Iterable[LockEntry]) -> str:
    """The lockfile text for these entries: sorted by URI, deterministic."""
    import tomli_w

    ordered = sorted(entries, key=lambda e: e.uri)
    return tomli_w.dumps({"version": LOCKFILE_VERSION, "files": [e.to_toml() for e in ordered]})


def write_lockfile(path: str | os.PathLike[str], entries: Iterable[LockEntry]) -> bool:
    """Write the lockfile atomically, unless its bytes would not change.

    Returns:
        True if the file was written, False if it already held exactly this content.

    Raises:
        LockfileError: the file cannot be written (full disk, read-only folder); the old
            lockfile, if any, is left as it was.
    """
    target = Path(path)
    data = dumps(entries).encode("utf-8")
    _remove_dead_writers_temps(target)
    with contextlib.suppress(OSError):
        if target.read_bytes() == data:
            return False  # untouched: same bytes and same mtime for build caches
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise LockfileError(
            f"cannot be written ({exc.strerror or exc}); the previous lockfile is unchanged; "
            "free space or fix the folder's permissions and re-run `daidai fetch`",
            path=str(path),
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


def _remove_dead_writers_temps(target: Path) -> None:
    """Remove temporary files left next to the lockfile by writers that were killed.

    Each name carries its writer's pid; a live writer's file is left alone.
    """
    with contextlib.suppress(OSError):
        for tmp in target.parent.glob(f".{glob.escape(target.name)}.*-*.tmp"):
            pid = tmp.name[len(target.name) + 2 :].split("-", 1)[0]
            if pid.isdigit() and not is_alive(int(pid)):
                with contextlib.suppress(OSError):
                    tmp.unlink()
