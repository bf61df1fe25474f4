"""The lockfiles that use a cache, so that a prune run anywhere keeps what each one pins.

```
<cache>/lockfiles/<sha256 of the path, 32 hex>.json    {"lockfile": "/abs/path/daidai.lock"}
```

`daidai fetch` registers the lockfile it writes or reads, and the runtime the lockfile it
reads; one record per lockfile's absolute path, written once (through a temporary file and
`os.replace`, so a reader sees a whole record or none). `registered` drops the records of
lockfiles that no longer exist. A read-only cache is never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path

from daidai.files import layout

__all__ = ["REGISTRY_DIR", "register", "registered"]

REGISTRY_DIR = "lockfiles"
_TMP_PREFIX = ".tmp-"


def register(cache_dir: Path, lockfile: Path) -> None:
    """Record that `lockfile` (which exists) uses `cache_dir`; best-effort, errors ignored."""
    path = Path(os.path.abspath(lockfile))
    record = _record_path(Path(cache_dir), path)
    if record.exists() or not path.is_file():
        return
    with contextlib.suppress(OSError):
        if not _writable(Path(cache_dir)):
            return  # a read-only deployment must see no write at all
        layout.cache_tag(Path(cache_dir))  # marks a folder daidai creates now
        if not layout.is_daidai_cache(Path(cache_dir)):
            return  # someone else's folder (a pull request's cache_dir = $HOME): write nothing
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.json")
        try:
            tmp.write_text(json.dumps({"lockfile": str(path)}), encoding="utf-8")
            os.replace(tmp, record)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def registered(cache_dir: Path) -> list[Path]:
    """The registered lockfiles that still exist, sorted; the others' records are dropped."""
    folder = Path(cache_dir) / REGISTRY_DIR
    found = []
    try:
        records = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    except OSError:
        return []
    for record in records:
        if record.name.startswith(_TMP_PREFIX):
            _remove_if_dead(record)
            continue
        lockfile = _read(record)
        if lockfile is not None and lockfile.is_file():
            found.append(lockfile)
        else:  # gone, or a garbled record (never a half-written one: see `register`)
            with contextlib.suppress(OSError):
                record.unlink()
    return sorted(set(found))


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


def _read(record: Path) -> Path | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return Path(data["lockfile"]) if isinstance(data.get("lockfile"), str) else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _writable(cache_dir: Path) -> bool:
    existing = cache_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.access(existing, os.W_OK)
