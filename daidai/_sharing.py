"""What makes a cache safe to share, for `daidai cache prune|clear|rm` and `cache ls`.

- Pins: every registered lockfile that still exists (`daidai.files.registry`), plus the
  current project's; a version is pinned when one of them pins its checksum for the
  entry's URI (a relative local path in a lockfile also counts resolved against the
  lockfile's folder). This needs no other project's settings or code.
- In use and in progress (`daidai.files.in_use`): a plan leaves out, as `Skipped`, the
  versions live processes hold and the entries a download is writing to; applying it asks
  again, under the locks that make the answer hold while it deletes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daidai.files import in_use, layout

if TYPE_CHECKING:
    from daidai._settings import Settings

__all__ = ["Pins", "Skipped", "apply", "guard", "pins", "require_writable"]

IN_USE = "in use by a running process"
DOWNLOADING = "download in progress"


@dataclass(frozen=True)
class Skipped:
    """Something a cleanup left in place.

    Attributes:
        what: the entry's URI (or folder), and the version when only it is skipped.
        size: its bytes.
        why: `in use by a running process` or `download in progress`.
    """

    what: str
    size: int
    why: str


@dataclass(frozen=True)
class Pins:
    """What the lockfiles pin.

    Attributes:
        pairs: every pinned `(uri, checksum)`.
        lockfiles: the lockfiles read, sorted.
        looked_for: the current project's lockfile path (it may not exist).
        broken: registered lockfiles skipped because they are malformed (`strict` off).
    """

    pairs: frozenset[tuple[str, str]]
    lockfiles: tuple[Path, ...]
    looked_for: Path
    broken: tuple[str, ...] = ()

    def pinned(self, entry: layout.CacheEntry, version: layout.Version) -> bool:
        """Whether a lockfile pins this version of `entry`."""
        return entry.uri is not None and (entry.uri, version.checksum) in self.pairs

    def pins(self, entry: layout.CacheEntry) -> bool:
        """Whether any version of `entry` is pinned."""
        return any(self.pinned(entry, v) for v in entry.versions)


def pins(
    settings: Settings, *, project_only: bool = False, strict: bool = True, write: bool = True
) -> Pins:
    """Read the pins of the current project's lockfile and, unless `project_only`, of
    every registered one (a registered lockfile missing for a moment counts by its last
    known pins, see `daidai.files.registry`); with `write`, the current one is
    registered on the way and the records are brought up to date.

    Raises:
        LockfileError: one of the lockfiles is malformed (prune would not know its pins);
            without `strict`, only the current project's, the others are skipped.
    """
    from daidai.files import registry

    current = Path(settings.lockfile).absolute()
    records = [] if project_only else registry.registered(settings.cache_dir, write=write)
    present = {r.lockfile for r in records if r.present}
    if current.is_file():
        present.add(current)
    pairs: set[tuple[str, str]] = set()
    broken: list[str] = []
    for path in sorted(present):
        found = _read_pins(path, current, strict, broken)
        if found is None:
            continue
        if write:
            registry.register(settings.cache_dir, path, found)
        pairs.update(_all_forms(found, path))
    for record in records:
        if not record.present:
            pairs.update(_all_forms(record.pins, record.lockfile))
    lockfiles = sorted(present | {r.lockfile for r in records})
    return Pins(frozenset(pairs), tuple(lockfiles), current, tuple(broken))


def _read_pins(
    path: Path, current: Path, strict: bool, broken: list[str]
) -> set[tuple[str, str]] | None:
    from daidai.errors import LockfileError
    from daidai.files.lockfile import read_lockfile

    try:
        lock = read_lockfile(path, missing_ok=True)
    except LockfileError as exc:
        if path == current:
            raise
        if not strict:
            broken.append(str(exc))
            return None
        raise LockfileError(
            f"{exc.message}; it is registered as using this cache, so its pins are "
            "kept: fix or delete it, or pass --project to go by this project's "
            "lockfile only",
            path=str(path),
        ) from exc
    return {(e.uri, e.checksum) for e in lock.entries.values()}


def _all_forms(pairs: Iterable[tuple[str, str]], lockfile: Path) -> set[tuple[str, str]]:
    return {(form, checksum) for uri, checksum in pairs for form in _forms(uri, lockfile)}


def _forms(uri: str, lockfile: Path) -> set[str]:
    """A locked URI as an entry may record it: as written and, for a relative local path,
    resolved against the lockfile's folder."""
    if "://" in uri or os.path.isabs(uri):
        return {uri}
    return {uri, os.path.normpath(lockfile.parent / uri)}


def guard(
    entries: Sequence[layout.CacheEntry],
    versions: Sequence[tuple[layout.CacheEntry, layout.Version]],
) -> tuple[
    list[layout.CacheEntry],
    list[layout.Version],
    list[layout.Partial],
    list[Skipped],
]:
    """Split what a plan would delete into what it may: whole entries, single versions,
    the staging leftovers of entries cut down to versions, and what it skips."""
    whole: list[layout.CacheEntry] = []
    single: list[layout.Version] = []
    leftovers: list[layout.Partial] = []
    skipped: list[Skipped] = []
    for entry in entries:
        if entry.partials and in_use.download_running(entry.path):
            skipped.append(Skipped(_name(entry), entry.size, DOWNLOADING))
            continue
        used = [v for v in entry.versions if in_use.in_use(v)]
        if not used:
            whole.append(entry)
            continue
        skipped += [Skipped(_name(entry, v), v.size, IN_USE) for v in used]
        single += [v for v in entry.versions if v not in used]
        leftovers += entry.partials
    for entry, version in versions:
        if in_use.in_use(version):
            skipped.append(Skipped(_name(entry, version), version.size, IN_USE))
        else:
            single.append(version)
    return whole, single, leftovers, skipped


def require_writable(cache_dir: Path) -> None:
    """Refuse to delete in a cache that cannot be written to (a read-only mount): every
    in-use mark would look taken, and nothing could be deleted anyway.

    Raises:
        DaidaiError: the cache folder is read-only.
    """
    from daidai.errors import DaidaiError

    files = Path(cache_dir) / layout.FILES_DIR
    folder = files if files.is_dir() else Path(cache_dir)
    if folder.is_dir() and not os.access(folder, os.W_OK):
        raise DaidaiError(
            f"the cache folder {cache_dir} is read-only (not writable), so nothing in it can "
            "be deleted; run this command where the cache is mounted writable"
        )


def apply(
    entries: Iterable[layout.CacheEntry],
    versions: Iterable[layout.Version],
    partials: Iterable[layout.Partial],
) -> tuple[int, list[Skipped]]:
    """Delete under the locks, skipping what became used since the plan; return the bytes
    freed and what was skipped."""
    freed, skipped = 0, []
    for partial in partials:
        if in_use.remove_partial(partial):
            freed += partial.size
        else:
            skipped.append(Skipped(str(partial.path), partial.size, DOWNLOADING))
    for version in versions:
        if in_use.remove_version(version):
            freed += version.size
        else:
            skipped.append(Skipped(_version_name(version), version.size, IN_USE))
    for entry in entries:
        removed = in_use.remove_entry(entry)
        if removed is None:
            skipped.append(Skipped(_name(entry), entry.size, DOWNLOADING))
            continue
        kept, gone = removed
        freed += gone
        skipped += [Skipped(_name(entry, v), v.size, IN_USE) for v in kept]
    return freed, skipped


def _name(entry: layout.CacheEntry, version: layout.Version | None = None) -> str:
    where = entry.uri or str(entry.path)
    return f"{where} (version {version.checksum[:19]}…)" if version is not None else where


def _version_name(version: layout.Version) -> str:
    ref = layout.read_ref(in_use.version_folder(version).parent)
    where = ref.uri if ref is not None else str(in_use.version_folder(version).parent)
    return f"{where} (version {version.checksum[:19]}…)"
