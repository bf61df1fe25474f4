"""Cache maintenance behind `daidai verify` and `daidai cache ls|prune|clear|rm`.

Destructive operations plan first, then act: `plan_prune`, `plan_clear` and `plan_rm`
return a frozen `CachePlan` built from one scan; `apply_plan` deletes what it lists, except
what a live process started to use since (`daidai._sharing`). Nothing here imports user
code: the lockfiles and `daidai.toml` say what is pinned and how to reach it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from daidai import _sharing
from daidai._sharing import Skipped
from daidai.files import in_use, layout

if TYPE_CHECKING:
    from daidai._settings import Settings
    from daidai.files.fetch import ProgressCallback
    from daidai.files.lockfile import LockEntry

__all__ = [
    "Applied",
    "CachePlan",
    "Listing",
    "ListedEntry",
    "Skipped",
    "Staging",
    "VerifiedFile",
    "VerifyReport",
    "apply_plan",
    "list_cache",
    "plan_clear",
    "plan_prune",
    "plan_rm",
    "verify",
]

# A staging folder written to this recently may belong to a live download (a lock can lie
# on network filesystems), so it is not "leftover" yet.
PARTIAL_GRACE_SECONDS = 600.0


@dataclass(frozen=True)
class VerifiedFile:
    """One locked file as `verify` found it.

    Attributes:
        uri: the source.
        expected: the locked checksum.
        status: `ok`, `missing`, `corrupt`, `repaired` or `failed` (repair failed).
        actual: the checksum found on disk, for a corrupt file.
        path: the cached content, when present.
        error: why a repair failed.
    """

    uri: str
    expected: str
    status: str
    actual: str | None = None
    path: Path | None = None
    error: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify`, one record per lockfile entry, sorted by URI."""

    files: tuple[VerifiedFile, ...]
    lockfile: Path

    @property
    def ok(self) -> bool:
        """Whether every locked file is present and intact (after repair, if asked)."""
        return all(f.status in ("ok", "repaired") for f in self.files)

    def with_status(self, *statuses: str) -> list[VerifiedFile]:
        """The records in one of `statuses`."""
        return [f for f in self.files if f.status in statuses]


@dataclass(frozen=True)
class ListedEntry:
    """One cache entry as `cache ls` shows it.

    Attributes:
        uri: the source URI (None if the entry's record is unreadable).
        size: bytes of the current version (of every version when none is recorded as
            current): what using the file takes.
        last_used: seconds since the epoch.
        locked: whether a registered lockfile pins one of its versions.
        key: the entry key.
        path: the entry folder.
        versions: complete versions on disk.
        partial: bytes of unfinished downloads in it (listed under `Listing.staging`).
        total_size: bytes of every version on disk (older ones a prune may remove).
    """

    uri: str | None
    size: int
    last_used: float
    locked: bool
    key: str
    path: Path
    versions: int
    partial: int
    total_size: int = 0


@dataclass(frozen=True)
class Staging:
    """A download not finished, still running or left by a killed process (`cache ls`
    counts these apart from the entries): a first download (an entry with no version
    and no record yet, whose URI is unknown), or a partial inside a finished entry.

    Attributes:
        path: the entry folder (a first download) or the partial's folder.
        size: bytes written so far.
        in_progress: whether a process is downloading into its entry now.
        uri: the entry's URI, when it has a record.
    """

    path: Path
    size: int
    in_progress: bool
    uri: str | None = None


@dataclass(frozen=True)
class Listing:
    """The cache as `cache ls` shows it."""

    cache_dir: Path
    entries: tuple[ListedEntry, ...]
    staging: tuple[Staging, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        """Bytes used by every version and staging folder."""
        return sum(e.total_size for e in self.entries) + sum(s.size for s in self.staging)


@dataclass(frozen=True)
class CachePlan:
    """What a prune or clear would delete, decided from one scan.

    Attributes:
        cache_dir: the cache folder.
        entries: whole entries to delete.
        versions: single versions to delete from entries that stay.
        partials: leftover partial downloads to delete.
        kept_size: bytes that stay once the plan is applied.
        notes: remarks for the user (a size goal out of reach, downloads in progress).
        skipped: what the plan leaves in place although asked: versions in use by a
            live process, entries a download is writing to.
    """

    cache_dir: Path
    entries: tuple[layout.CacheEntry, ...] = ()
    versions: tuple[layout.Version, ...] = ()
    partials: tuple[layout.Partial, ...] = ()
    kept_size: int = 0
    notes: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def freed_size(self) -> int:
        """Bytes the plan frees."""
        return (
            sum(e.size for e in self.entries)
            + sum(v.size for v in self.versions)
            + sum(p.size for p in self.partials)
        )

    @property
    def empty(self) -> bool:
        """Whether the plan deletes nothing."""
        return not (self.entries or self.versions or self.partials)


@dataclass(frozen=True)
class Applied:
    """What `apply_plan` did.

    Attributes:
        freed: bytes deleted.
        skipped: what a live process started to use (or download into) since the plan.
    """

    freed: int
    skipped: tuple[Skipped, ...]


def verify(
    *,
    settings: Settings,
    repair: bool = False,
    jobs: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Re-hash every locked file in the cache; with `repair`, download bad ones again.

    Raises:
        LockfileError: the lockfile is missing or malformed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from daidai.files.lockfile import read_lockfile

    lock = read_lockfile(settings.lockfile, missing_ok=False)
    entries = sorted(lock.entries.values(), key=lambda e: e.uri)
    workers = max(1, min(jobs or settings.jobs, len(entries) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="daidai-verify") as pool:
        found = list(pool.map(lambda e: _check(e, settings), entries))
    found = _look_elsewhere(found, entries, settings)
    if repair:
        sizes = {e.uri: e.size for e in entries}
        found = _repair(found, sizes, settings, jobs, on_progress)
    return VerifyReport(tuple(found), lock.path)


def list_cache(*, settings: Settings) -> Listing:
    """List the cache's entries, sorted by URI, each marked locked (pinned by a registered
    lockfile) or not; first downloads not finished yet are counted apart.

    Raises:
        LockfileError: a lockfile is malformed.
    """
    pins = _sharing.pins(settings, strict=False, write=False)
    report = layout.scan(settings.cache_dir)
    listed = tuple(_listed(e, pins) for e in report.entries if not _only_staging(e))
    staging = tuple(s for e in report.entries for s in _staging_of(e))
    notes = tuple(f"skipped a malformed registered lockfile: {b}" for b in pins.broken)
    return Listing(settings.cache_dir, listed, staging, notes)


def plan_prune(
    *,
    settings: Settings,
    older_than: float | None = None,
    max_size: int | None = None,
    include_locked: bool = False,
    project_only: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> CachePlan:
    """Plan evictions, least recently used first; never a locked entry unless asked.

    With no criteria, everything no registered lockfile pins goes: unlocked entries and
    old versions of locked ones. Leftover partial downloads always go. Never a version a
    live process uses, nor an entry a download is writing to (`CachePlan.skipped`).

    Args:
        settings: the settings in force.
        older_than: evict entries unused for this many seconds.
        max_size: then evict least recently used entries until the cache fits in this
            many bytes.
        include_locked: locked entries may be evicted too.
        project_only: go by the current project's lockfile only (`--project`), not by
            every lockfile registered in the cache.
        dry_run: only report: the lockfile registry is read, never written.
        now: the current time (seconds since the epoch).

    Raises:
        LockfileError: a lockfile is malformed.
    """
    pins = _sharing.pins(settings, project_only=project_only, write=not dry_run)
    report = _scan_to_delete(settings)
    now = time.time() if now is None else now
    partials, notes = _leftover_partials(report, now)
    notes = _unpinned_note(pins, report, project_only) + notes
    pinned = [e for e in report.entries if pins.pins(e) and not include_locked]
    kept = {e.key for e in pinned}
    free = sorted(
        (e for e in report.entries if e.key not in kept), key=lambda e: (e.last_used, e.key)
    )
    if older_than is None and max_size is None:
        versions = [(e, v) for e in pinned for v in _unpinned_versions(e, pins)]
        return _plan(report, free, versions, partials, notes)
    doomed = [e for e in free if older_than is not None and e.last_used < now - older_than]
    if max_size is not None:
        doomed, note = _fit(report, free, doomed, partials, max_size)
        notes += note
    return _plan(report, tuple(doomed), (), partials, notes)


def plan_clear(*, settings: Settings) -> CachePlan:
    """Plan emptying the cache: every entry, but no version in use and no download in
    progress.

    Raises:
        ConfigError: the folder is not a daidai cache (nothing of it is deleted).
    """
    report = _scan_to_delete(settings)
    return _plan(report, report.entries, (), (), ())


def plan_rm(*, settings: Settings, patterns: Sequence[str]) -> CachePlan:
    """Plan removing the entries whose URI is one of `patterns` or matches one as a glob
    (`*`, `?`, `[...]`); locked entries too, never a version in use.

    A local path is also compared in its absolute forms: from the project folder, as the
    lockfile and `daidai graph` write it, and from the current folder. Patterns that
    match nothing are named in the plan's notes.
    """
    import fnmatch

    report = _scan_to_delete(settings)
    doomed, unmatched = [], []
    named: dict[str, str] = {}
    for pattern in patterns:
        forms = {pattern}
        if "://" not in pattern:
            forms |= {os.path.normpath(settings.root / pattern), os.path.abspath(pattern)}
        hits = [
            e
            for e in report.entries
            if e.uri is not None and any(fnmatch.fnmatchcase(e.uri, f) for f in forms)
        ]
        if not hits and (hits := _first_download(report, pattern, settings)):
            named[str(hits[0].path)] = pattern
        doomed += [e for e in hits if e not in doomed]
        if not hits:
            unmatched.append(pattern)
    notes = tuple(f"no cache entry matches {p!r}" for p in unmatched)
    plan = _plan(report, doomed, (), (), notes)
    # A first download has no record yet: name it by the URI asked for, not its folder.
    skipped = tuple(replace(s, what=named.get(s.what, s.what)) for s in plan.skipped)
    return replace(plan, skipped=skipped)


def _first_download(
    report: layout.CacheReport, uri: str, settings: Settings
) -> list[layout.CacheEntry]:
    """The entry a first download of `uri` writes to (it has no record to match yet)."""
    from daidai.files.fetch import options_for, source_uri

    if any(c in uri for c in "*?["):
        return []
    key = layout.entry_key(source_uri(uri, settings), options_for(uri, settings, None))
    return [e for e in report.entries if e.key == key and _only_staging(e)]


def apply_plan(plan: CachePlan) -> Applied:
    """Delete what `plan` lists, but no version a live process started to use since and no
    entry a download started in since. Safe while others read.

    Raises:
        DaidaiError: the cache folder is read-only (nothing is deleted).
    """
    if not plan.empty:
        _sharing.require_writable(plan.cache_dir)
    freed, skipped = _sharing.apply(plan.entries, plan.versions, plan.partials)
    freed += layout.sweep_removals(plan.cache_dir)  # entries a killed prune or clear left
    return Applied(freed, tuple(skipped))


# -- helpers ------------------------------------------------------------------------------


def _staging_of(entry: layout.CacheEntry) -> list[Staging]:
    if not entry.partials:
        return []
    running = in_use.download_running(entry.path)
    if _only_staging(entry):
        return [Staging(entry.path, entry.size, running)]
    return [Staging(p.path, p.size, running, entry.uri) for p in entry.partials]


def _only_staging(entry: layout.CacheEntry) -> bool:
    return entry.ref is None and not entry.versions and bool(entry.partials)


def _scan_to_delete(settings: Settings) -> layout.CacheReport:
    """The scan a destructive command plans from: only inside a folder daidai marked as
    its cache, only daidai's own entries (`layout.is_daidai_entry`)."""
    from daidai.errors import ConfigError

    reason = layout.not_a_cache_reason(settings.cache_dir)
    if reason is not None:
        raise ConfigError(f"refused: {reason}", path=str(settings.cache_dir))
    return layout.scan(settings.cache_dir)


def _unpinned_note(
    pins: _sharing.Pins, report: layout.CacheReport, project_only: bool
) -> tuple[str, ...]:
    if pins.lockfiles or not report.entries:
        return ()
    where = "" if project_only else "no lockfile is registered in this cache and "
    return (f"{where}no lockfile was found at {pins.looked_for}: every entry counts as unpinned",)


def _listed(entry: layout.CacheEntry, pins: _sharing.Pins) -> ListedEntry:
    total = sum(v.size for v in entry.versions)
    current = [v.size for v in entry.versions if v.current]
    return ListedEntry(
        uri=entry.uri,
        size=current[0] if current else total,
        last_used=entry.last_used,
        locked=pins.pins(entry),
        key=entry.key,
        path=entry.path,
        versions=len(entry.versions),
        partial=sum(p.size for p in entry.partials),
        total_size=total,
    )


def _unpinned_versions(entry: layout.CacheEntry, pins: _sharing.Pins) -> list[layout.Version]:
    return [v for v in entry.versions if not pins.pinned(entry, v)]


def _leftover_partials(
    report: layout.CacheReport, now: float
) -> tuple[tuple[layout.Partial, ...], tuple[str, ...]]:
    leftovers, live = [], 0
    for entry in report.entries:
        idle = bool(entry.partials) and not in_use.download_running(entry.path)
        for partial in entry.partials:
            if not idle and _newest_mtime(partial.path) > now - PARTIAL_GRACE_SECONDS:
                live += 1
            else:
                leftovers.append(partial)
    note = (f"{live} download(s) in progress or just finished left alone",) if live else ()
    return tuple(leftovers), note


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    for folder, _, names in os.walk(path):
        for name in [".", *names]:
            try:
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            except OSError:
                continue
    return newest


def _fit(
    report: layout.CacheReport,
    free: Sequence[layout.CacheEntry],
    doomed: list[layout.CacheEntry],
    partials: Sequence[layout.Partial],
    max_size: int,
) -> tuple[list[layout.CacheEntry], tuple[str, ...]]:
    size = report.total_size - sum(e.size for e in doomed) - sum(p.size for p in partials)
    for entry in free:
        if size <= max_size:
            break
        if entry not in doomed:
            doomed.append(entry)
            size -= entry.size
    if size > max_size:
        return doomed, (
            f"the cache stays at {size} bytes, over the {max_size}-byte limit: the rest is "
            "locked (pass --include-locked to evict locked files too)",
        )
    return doomed, ()


def _plan(
    report: layout.CacheReport,
    entries: Sequence[layout.CacheEntry],
    versions: Sequence[tuple[layout.CacheEntry, layout.Version]],
    partials: Sequence[layout.Partial],
    notes: tuple[str, ...],
) -> CachePlan:
    whole, single, leftovers, skipped = _sharing.guard(entries, versions)
    doomed_keys = {e.key for e in whole}
    stray = [p for p in [*partials, *leftovers] if p.path.parent.name not in doomed_keys]
    stray = list(dict.fromkeys(stray))
    plan = CachePlan(
        report.cache_dir, tuple(whole), tuple(single), tuple(stray), 0, notes, tuple(skipped)
    )
    kept = report.total_size - plan.freed_size
    return replace(plan, kept_size=kept)


def _check(entry: LockEntry, settings: Settings, path: Path | None = None) -> VerifiedFile:
    from daidai.files.fetch import options_for, source_uri
    from daidai.files.hashing import hash_directory, hash_file

    if path is None:
        options = options_for(entry.uri, settings, None)
        folder = layout.entry_dir(settings.cache_dir, source_uri(entry.uri, settings), options)
        path = layout.content_path(folder, entry.checksum, entry.uri)
    if path is None:
        return VerifiedFile(entry.uri, entry.checksum, "missing")
    try:
        actual = hash_directory(path).checksum if path.is_dir() else hash_file(path)
    except OSError as exc:
        return VerifiedFile(entry.uri, entry.checksum, "corrupt", None, path, exc.strerror)
    status = "ok" if actual == entry.checksum else "corrupt"
    return VerifiedFile(entry.uri, entry.checksum, status, actual, path)


def _look_elsewhere(
    found: list[VerifiedFile], entries: list[LockEntry], settings: Settings
) -> list[VerifiedFile]:
    """Check "missing" files again under any cache entry recorded for the same URI.

    A file whose annotation gives its own storage options (another `endpoint_url`) is
    cached under a key that daidai.toml's options alone do not give; its entry's ref.json
    still names the URI.
    """
    if all(f.status != "missing" for f in found):
        return found
    by_uri: dict[str, list[Path]] = {}
    for cached in layout.scan(settings.cache_dir).entries:
        if cached.uri is not None:
            by_uri.setdefault(cached.uri, []).append(cached.path)
    checked = []
    for result, entry in zip(found, entries, strict=True):
        paths = [
            layout.content_path(folder, entry.checksum, entry.uri)
            for folder in by_uri.get(entry.uri, [])
        ]
        path = next((p for p in paths if p is not None), None)
        missing = result.status == "missing" and path is not None
        checked.append(_check(entry, settings, path) if missing else result)
    return checked


def _repair(
    found: list[VerifiedFile],
    sizes: dict[str, int],
    settings: Settings,
    jobs: int | None,
    on_progress: ProgressCallback | None,
) -> list[VerifiedFile]:
    from daidai.files.fetch import FetchRequest, fetch_many

    bad = [f for f in found if f.status != "ok"]
    for file in bad:
        if file.status == "corrupt" and file.path is not None:
            _delete_version_of(file.path)
    requests = [FetchRequest(uri=f.uri, checksum=f.expected, size=sizes.get(f.uri)) for f in bad]
    results = fetch_many(
        requests, settings=settings, jobs=jobs, on_progress=on_progress, return_exceptions=True
    )
    fixed = {}
    for file, result in zip(bad, results, strict=True):
        if isinstance(result, Exception):
            fixed[file.uri] = VerifiedFile(
                file.uri, file.expected, "failed", file.actual, None, str(result)
            )
        else:
            fixed[file.uri] = VerifiedFile(file.uri, file.expected, "repaired", None, result.path)
    return [fixed.get(f.uri, f) for f in found]


def _delete_version_of(content: Path) -> None:
    folder = content.parent
    if folder.name.startswith(layout.VERSION_PREFIX) and layout.is_daidai_entry(folder.parent):
        layout.delete_version(layout.Version("sha256:", folder, 0, False))
