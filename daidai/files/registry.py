"""The lockfiles that use a cache, so that a prune run anywhere keeps what each one pins.

```
<cache>/lockfiles/<sha256 of the path, 32 hex>.json
    {"lockfile": "/abs/path/daidai.lock", "pins": [[uri, checksum], ...], "missing_since": t}
```

`daidai fetch` registers the lockfile it writes or reads, and the runtime the lockfile it
reads; one record per lockfile's absolute path, holding the pins last seen in it (written
through a temporary file and `os.replace`, so a reader sees a whole record or none;
rewritten only when they change).

A lockfile can be missing for a moment: a deploy swapping folders, a `git checkout`, a
project moved and moved back. So a missing lockfile's record is not dropped at once: a real
prune notes when it first found it missing, its last known pins keep counting, and only a
prune `MISSING_GRACE_SECONDS` later drops the record. A dry run or `cache ls` reads the
records and never writes them. A read-only cache is never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daidai.files import _records, layout

__all__ = ["MISSING_GRACE_SECONDS", "REGISTRY_DIR", "Record", "register", "registered"]

REGISTRY_DIR = "lockfiles"
MISSING_GRACE_SECONDS = 7 * 86400.0
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Record:
    """A registered lockfile.

    Attributes:
        lockfile: its absolute path.
        present: whether it exists now.
        pins: the `(uri, checksum)` pairs last seen in it (URIs as the lockfile writes them).
        missing_since: when a prune first found it missing, if it is.
    """

    lockfile: Path
    present: bool
    pins: frozenset[tuple[str, str]]
    missing_since: float | None = None


def register(
    cache_dir: Path, lockfile: Path, pins: Iterable[tuple[str, str]] | None = None
) -> None:
    """Record that `lockfile` (which exists) uses `cache_dir`, with the pins read from it
    (None: keep the ones recorded); best-effort, errors ignored."""
    path = Path(os.path.abspath(lockfile))
    record = _record_path(Path(cache_dir), path)
    _refuse_link(Path(cache_dir))
    if not path.is_file():
        return
    known = _read(record)
    pairs = None if pins is None else frozenset(pins)
    settled = known is not None and known.get("missing_since") is None
    if settled and (pairs is None or _pairs(known or {}) == pairs):
        return  # the common case: one small read, no write
    if pairs is None:
        pairs = _pairs(known) if known is not None else frozenset()
    with contextlib.suppress(OSError):
        if not _writable(Path(cache_dir)):
            return  # a read-only deployment must see no write at all
        layout.cache_tag(Path(cache_dir))  # marks a folder daidai creates now
        if not layout.is_daidai_cache(Path(cache_dir)):
            return  # someone else's folder (a pull request's cache_dir = $HOME): write nothing
        _write(record, {"lockfile": str(path), "pins": sorted(map(list, pairs))})


def registered(cache_dir: Path, *, write: bool = True, now: float | None = None) -> list[Record]:
    """The registered lockfiles, sorted by path: those that exist, and those missing for
    less than `MISSING_GRACE_SECONDS` (with their last known pins).

    With `write` (a real prune), a missing lockfile's record gets the time it was first
    found missing, records missing for longer than the grace period and garbled ones are
    dropped; without it (a dry run, `cache ls`) nothing is written.
    """
    folder = Path(cache_dir) / REGISTRY_DIR
    now = time.time() if now is None else now
    _refuse_link(Path(cache_dir))  # records are written and removed there: never through a link
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    except OSError:
        return []
    found: dict[Path, Record] = {}
    for name in names:
        if name.name.startswith(_TMP_PREFIX):
            if write:
                _remove_if_dead(name)
            continue
        item = _record_of(name, write=write, now=now)
        if item is not None:
            found[item.lockfile] = item
    return [found[p] for p in sorted(found)]


def _record_of(name: Path, *, write: bool, now: float) -> Record | None:
    data = _read(name)
    lockfile = data.get("lockfile") if data is not None else None
    if data is None or not isinstance(lockfile, str):
        if write:  # garbled (never half-written: see `_write`)
            with contextlib.suppress(OSError):
                name.unlink()
        return None
    path, pairs = Path(lockfile), _pairs(data)
    since = data.get("missing_since")
    since = float(since) if isinstance(since, (int, float)) else None
    if path.is_file():
        return Record(path, True, pairs)
    if since is None:
        since = now
        if write:
            with contextlib.suppress(OSError):
                _write(name, {**data, "missing_since": now})
    elif now - since > MISSING_GRACE_SECONDS:
        if write:
            with contextlib.suppress(OSError):
                name.unlink()
        return None
    return Record(path, False, pairs, since)


def _pairs(data: dict[str, Any]) -> frozenset[tuple[str, str]]:
    pins = data.get("pins")
    if not isinstance(pins, list):
        return frozenset()
    return frozenset(
        (p[0], p[1])
        for p in pins
        if isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p)
    )


def _write(record: Path, data: dict[str, Any]) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.json")
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, record)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_if_dead(tmp: Path) -> None:
    """Remove the temporary record of a writer killed before its `os.replace`."""
    from daidai.files._process import is_alive

    pid = tmp.name[len(_TMP_PREFIX) :].split("-", 1)[0]
    if pid.isdigit() and not is_alive(int(pid)):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _record_path(cache_dir: Path, lockfile: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(lockfile), usedforsecurity=False).hexdigest()[:32]
    return cache_dir / REGISTRY_DIR / f"{digest}.json"


def _refuse_link(cache_dir: Path) -> None:
    """Refuse a planted `<cache>/lockfiles` link, as `files/` is: every byte daidai writes
    stays inside the cache folder."""
    folder = cache_dir / REGISTRY_DIR
    if os.path.islink(folder):
        from daidai.errors import CacheError

        raise CacheError(
            "it is a symbolic link; daidai writes only inside its cache folder, never "
            "through a link; remove the link or use another DAIDAI_CACHE_DIR",
            uri=str(folder),
        )


def _read(record: Path) -> dict[str, Any] | None:
    data = _records.read_json(record)  # a FIFO, a link or deep nesting: a garbled record
    return data if isinstance(data, dict) else None


def _writable(cache_dir: Path) -> bool:
    existing = cache_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.access(existing, os.W_OK)
