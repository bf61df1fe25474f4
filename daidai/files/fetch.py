"""Downloading sources into the cache (or a given folder), one at a time or in parallel.

A cache hit touches no network: with a pinned checksum it is a hit iff that exact version
folder exists; otherwise iff `ref.json` points to an existing version. A miss takes the
entry's file lock (to avoid duplicate downloads, not for correctness), looks again, then
streams the source into a unique staging folder while hashing it, checks the checksum, and
renames the staging folder to `sha256-<hex>` before `ref.json` is replaced: a killed
download leaves only a `.tmp-*` folder that nothing reads.

`fetch` is `begin` (lookup, lock, staging folder), then `complete`: open the source, and
`finish` (copy while hashing, verify, rename, record). `fetch_many` runs the same steps
with the requests as coroutines on fsspec's event loop (`daidai.files._batch`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daidai._settings import Settings
from daidai.errors import CacheError, ChecksumMismatchError, DaidaiError, OfflineError
from daidai.files import in_use, layout
from daidai.files._policy import last_link, scoped_table, split_chain
from daidai.files._source import (
    LOCAL_PROTOCOLS,
    Opened,
    Origin,
    SourceInfo,
    cache_errors,
    filesystem,
    list_directory,
    open_whole,
    protocol_of,
    source_errors,
    stat_source,
)
from daidai.files._transfer import Bound, Content, copy_directory, copy_file
from daidai.files.hashing import CHUNK_SIZE
from daidai.files.lockfile import LockEntry

__all__ = [
    "FetchRequest",
    "FetchResult",
    "Miss",
    "ProgressCallback",
    "adopt",
    "begin",
    "cached",
    "complete",
    "download",
    "fetch",
    "fetch_many",
    "finish",
    "local_source_changed",
    "options_for",
    "source_uri",
    "try_begin",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, "int | None"], None]
"""Called as `(uri, bytes done, total bytes or None)`, from worker threads."""

_LOCK_WAIT_LOG_SECONDS = 10.0
# For records without `mtime`: how far a filesystem's clock may run ahead of ours (an
# NFS server's) before content modified after its record was written is hashed again.
_CLOCK_SLACK_SECONDS = 2.0
_LOCAL_FILE_PROTOCOLS = ("file", "local")
# (uri, stamp) of local sources already warned about as differing from their pin: a server
# using a pinned file on every request logs the warning once, not once per request.
_warned: set[tuple[str, tuple[int, ...]]] = set()


@dataclass(frozen=True)
class FetchRequest:
    """One file to fetch.

    Attributes:
        uri: the source.
        storage_options: the file's own fsspec options (over the per-protocol settings).
        checksum: the content required (`sha256:<hex>`), from an inline option or the lockfile.
        force: download even when cached (the old copy stays valid until the new one lands).
        component: the component asking, for error messages.
        parameter: the parameter asking, for error messages.
        size: the size pinned with `checksum` (the lockfile's): a download stops with an
            error as soon as it receives more.
        transfer: the file's own `connections`, `retries` and `read_timeout` (SPEC §5),
            over the configured ones.
    """

    uri: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    checksum: str | None = None
    force: bool = False
    component: str | None = None
    parameter: str | None = None
    size: int | None = None
    transfer: Mapping[str, int | float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class FetchResult:
    """A file or folder available on disk.

    Attributes:
        uri: the source.
        checksum: `sha256:<hex>` of the content.
        size: bytes (all files of a directory).
        kind: `"file"` or `"directory"`.
        nfiles: files in a directory, else None.
        etag: the source's ETag, when known.
        version_id: the source's version id, when known.
        path: the content on disk (it keeps the source's file name).
        downloaded: True if it was downloaded now, False for a cache hit.
    """

    uri: str
    checksum: str
    size: int
    kind: str
    nfiles: int | None
    etag: str | None
    version_id: str | None
    path: Path
    downloaded: bool

    def __post_init__(self) -> None:
        # What `daidai fetch` reports and pins: credentials never reach the lockfile.
        object.__setattr__(self, "uri", layout.strip_credentials(self.uri))

    def lock_entry(self) -> LockEntry:
        """The lockfile entry pinning this content."""
        return LockEntry(
            uri=self.uri,
            checksum=self.checksum,
            size=self.size,
            etag=self.etag,
            version_id=self.version_id,
            kind=self.kind,
            nfiles=self.nfiles,
        )


def options_for(uri: str, settings: Settings, own: Mapping[str, Any] | None) -> dict[str, Any]:
    """Storage options for `uri`: the settings' table for its protocol, then the one of the
    longest URI prefix it starts with, then the file's own.

    An Azure URI naming its own account (`abfs://container@account.dfs...`) gets no
    per-protocol table: its credentials are for the account the configuration names.
    """
    tables = settings.storage_options
    protocol = protocol_of(uri)
    merged = {} if _names_account(uri, protocol) else dict(tables.get(protocol, {}))
    merged.update(scoped_table(uri, tables) or {})
    merged.update(own or {})
    return merged


def _names_account(uri: str, protocol: str) -> bool:
    if protocol not in ("az", "abfs", "abfss"):
        return False
    return "@" in last_link(uri).split("://", 1)[-1].split("/", 1)[0]


def source_uri(uri: str, settings: Settings) -> str:
    """`uri` with a relative local path made absolute against the project root.

    The root is the folder holding `daidai.toml` (or the `pyproject.toml` with
    `[tool.daidai]`), else the current folder, so a project finds its files from any of
    its subfolders (SPEC §1.4). Declarations and the lockfile keep the relative form.
    """
    *links, last = split_chain(uri)
    head, sep = "::".join(links), "::" if links else ""
    scheme, found, path = last.partition("://")
    if not found:
        scheme, path = "", last
    elif scheme.lower() not in _LOCAL_FILE_PROTOCOLS:
        return uri
    if not path or os.path.isabs(path) or path.startswith("~"):
        return uri
    absolute = os.path.join(settings.root, path)
    return f"{head}{sep}{scheme}{found}{absolute}"


def local_source_changed(request: FetchRequest, *, settings: Settings) -> bool:
    """Whether a local source differs from what its entry recorded for `request` (by size
    and modification time alone: nothing is read); False for other sources and for a
    local file that no longer exists (its cached copy is all there is)."""
    located = source_uri(request.uri, settings)
    stamp = _stamp(located)
    if stamp is None:
        return False
    options = options_for(request.uri, settings, request.storage_options)
    ref = layout.read_ref(layout.entry_dir(settings.cache_dir, located, options))
    return _differs(ref, request.checksum, stamp)


def adopt(request: FetchRequest, *, settings: Settings) -> FetchResult | None:
    """For a pinned local file that is absent: the same content, under the same name, from
    another entry of the cache, copied (and hashed) into this file's entry; else None.

    A Docker build runs `fetch --frozen` before the project's files are copied, with a
    cache filled where the project lived in another folder: its local files are cached
    under that folder's paths. Versions are named by their checksum, so a version folder
    with the pinned checksum and the file's name holds the pinned content.
    """
    located = source_uri(request.uri, settings)
    if request.checksum is None or protocol_of(located) not in _LOCAL_FILE_PROTOCOLS:
        return None
    if _stamp(located) is not None:
        return None  # the file is there: nothing to adopt
    name = layout.source_name(request.uri)
    folder = layout.VERSION_PREFIX + request.checksum.partition(":")[2]
    pattern = f"*/*/{glob.escape(folder)}/{glob.escape(name)}"
    for candidate in sorted((settings.cache_dir / layout.FILES_DIR).glob(pattern)):
        begun = begin(request, settings=settings)
        if isinstance(begun, FetchResult):
            return begun
        try:
            return finish(replace(begun, path=str(candidate)), None)
        except ChecksumMismatchError:
            continue  # a damaged copy: try the next
    return None


def cached(request: FetchRequest, *, settings: Settings) -> FetchResult | None:
    """The cached content satisfying `request`, or None; never touches the network or disk
    beyond reading the entry (a last-used mark aside)."""
    options = options_for(request.uri, settings, request.storage_options)
    located = source_uri(request.uri, settings)
    entry = layout.entry_dir(settings.cache_dir, located, options)
    hit = _lookup(entry, request, _stamp(located))
    if hit is not None:
        in_use.touch(entry)
    return hit


def fetch(
    request: FetchRequest, *, settings: Settings, on_progress: ProgressCallback | None = None
) -> FetchResult:
    """Return the cached content for `request`, downloading it first on a miss.

    Raises:
        OfflineError: not cached and offline mode is on.
        ChecksumMismatchError: the content does not match `request.checksum`; nothing cached.
        SourceNotFoundError, SourcePermissionError, FileFetchError: the source failed.
        CacheError: the cache folder cannot hold the file.
    """
    begun = begin(request, settings=settings)
    return begun if isinstance(begun, FetchResult) else complete(begun, on_progress)


@dataclass(frozen=True)
class Miss:
    """A download under way: the entry's lock is held and a staging folder exists.

    `finish`, `complete` or `abandon` ends it, from any thread.
    """

    request: FetchRequest
    origin: Origin
    options: Mapping[str, Any]
    entry: Path
    staging: Path
    release: Callable[[], None]
    fs: Any
    path: str
    located: str = ""

    def abandon(self) -> None:
        """Give up: remove the staging folder and release the lock."""
        try:
            shutil.rmtree(self.staging, ignore_errors=True)
            _drop_if_empty(self.entry)
        finally:
            self.release()


def begin(request: FetchRequest, *, settings: Settings) -> FetchResult | Miss:
    """A cache hit for `request`, or a `Miss` holding the entry's lock (waiting while
    another process downloads the same entry, then looking again)."""
    begun = _begin(request, settings, wait=True)
    assert begun is not None  # a waiting lock is always taken
    return begun


def try_begin(request: FetchRequest, *, settings: Settings) -> FetchResult | Miss | None:
    """`begin` without waiting: None while another process holds the entry's lock."""
    return _begin(request, settings, wait=False)


def _begin(request: FetchRequest, settings: Settings, *, wait: bool) -> FetchResult | Miss | None:
    options = options_for(request.uri, settings, request.storage_options)
    origin = Origin(request.uri, request.component, request.parameter, options)
    located = source_uri(request.uri, settings)
    entry = layout.entry_dir(settings.cache_dir, located, options)
    stamp = _stamp(located)
    if not request.force and (hit := _lookup(entry, request, stamp, warn=True)) is not None:
        in_use.touch(entry)
        return hit
    _require_online(request, settings, origin)
    with source_errors(origin):
        fs, path = filesystem(located, options)
    layout.cache_tag(settings.cache_dir)
    release = _enter(entry, origin, wait=wait)
    if release is None:
        return None
    try:
        # Another process may have finished the same download while we waited.
        if not request.force and (hit := _lookup(entry, request, stamp)) is not None:
            release()
            return hit
        with cache_errors(origin):
            staging = layout.new_staging_dir(entry)
    except BaseException:
        release()
        raise
    return Miss(request, origin, options, entry, staging, release, fs, path, located)


def complete(miss: Miss, on_progress: ProgressCallback | None = None) -> FetchResult:
    """Download a `Miss` from its source and make it the entry's current version."""
    try:
        with source_errors(miss.origin):
            opened = open_whole(miss.fs, miss.path, whole_below=CHUNK_SIZE)
    except BaseException:
        miss.abandon()
        raise
    return finish(miss, opened, on_progress)


def finish(
    miss: Miss, opened: Opened | None, on_progress: ProgressCallback | None = None
) -> FetchResult:
    """Copy the source (`opened`, or opened here after `stat_source`) into the staging
    folder, verify it, rename it to its version folder and record it; ends the `Miss`."""
    try:
        located = miss.located or miss.request.uri
        # Taken before the copy: an edit made while copying shows as a change next time.
        stamp = _stamp(located)
        content, name, info = _copy_source(
            miss.request, miss.fs, miss.path, opened, miss.staging, miss.origin, on_progress
        )
        target = layout.version_dir(miss.entry, content.checksum)
        with cache_errors(miss.origin, needed=content.size):
            _rename_dir(miss.staging, target, content, name)
            shape = _shape(target / name)
            ref = _ref(located, content, miss.options, shape.mtime, shape.listing)
            source = list(stamp) if stamp else None
            ref = replace(ref, source=source, last_modified=info.last_modified)
            # Under the entry's lock: the version this one replaces keeps its record.
            layout.write_ref(miss.entry, ref.succeeding(layout.read_ref(miss.entry)))
        return _result(miss.request.uri, content, target / name, downloaded=True)
    except BaseException:
        shutil.rmtree(miss.staging, ignore_errors=True)
        _drop_if_empty(miss.entry)
        raise
    finally:
        miss.release()


def _drop_if_empty(entry: Path) -> None:
    """Remove the folder a failed or stopped first download leaves with nothing in it but
    its lock, so that `cache ls` shows no entry without a URI; called holding that lock.

    A process that opens the lock file meanwhile locks a removed file: at worst two
    downloads of the same content, which land on the same version (`_begin` retries one
    that finds the folder gone).
    """
    try:
        names = set(os.listdir(entry))
    except OSError:
        return
    if names - {layout.LOCK_FILE, layout.LAST_USED_FILE}:
        return  # a version, its record, another download: a real entry
    with contextlib.suppress(OSError):
        for name in names:
            os.unlink(entry / name)
        os.rmdir(entry)


def download(
    request: FetchRequest,
    folder: Path,
    *,
    settings: Settings,
    on_progress: ProgressCallback | None = None,
) -> FetchResult:
    """Download `request` into `folder/<name>` without using the cache (`on_disk_temporary`).

    Raises:
        The same errors as `fetch`.
    """
    options = options_for(request.uri, settings, request.storage_options)
    origin = Origin(request.uri, request.component, request.parameter, options)
    _require_online(request, settings, origin, searched=False)
    with cache_errors(origin):
        staging = layout.new_staging_dir(folder)
    try:
        with source_errors(origin):
            fs, path = filesystem(source_uri(request.uri, settings), options)
            opened = open_whole(fs, path, whole_below=CHUNK_SIZE)
        content, name, _ = _copy_source(request, fs, path, opened, staging, origin, on_progress)
        target = folder / layout.version_dir(folder, content.checksum).name
        with cache_errors(origin):
            _rename_dir(staging, target, content, name)
        return _result(request.uri, content, target / name, downloaded=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_many(
    requests: Sequence[FetchRequest],
    *,
    settings: Settings,
    jobs: int | None = None,
    on_progress: ProgressCallback | None = None,
    refresh: bool = False,
    return_exceptions: bool = False,
) -> list[Any]:
    """Fetch many files at once, results in the order of `requests`.

    Args:
        requests: the files; duplicates are fetched once.
        settings: the settings in force (cache folder, storage options, offline).
        jobs: downloads in flight at once; default `settings.jobs`.
        on_progress: called as `(uri, done, total)` from worker threads.
        refresh: download every file again (`daidai fetch --refresh`).
        return_exceptions: put each `DaidaiError` in the result list instead of raising.

    Returns:
        One `FetchResult` per request (or a `DaidaiError` with `return_exceptions`).

    Raises:
        DaidaiError: the first failure, once every download has finished.
    """
    from daidai.files._batch import fetch_all

    wanted = [replace(r, force=r.force or refresh) for r in requests]
    unique = {_dedupe_key(r, settings): r for r in wanted}
    outcomes = fetch_all(
        list(unique.values()),
        settings=settings,
        jobs=max(1, jobs or settings.jobs),
        on_progress=on_progress,
    )
    done = dict(zip(unique, outcomes, strict=True))
    results = [done[_dedupe_key(r, settings)] for r in wanted]
    errors = [r for r in results if isinstance(r, DaidaiError)]
    if errors and not return_exceptions:
        for extra in errors[1:]:
            logger.error("%s", extra)
        raise errors[0]
    return results


def _dedupe_key(request: FetchRequest, settings: Settings) -> tuple[object, ...]:
    options = options_for(request.uri, settings, request.storage_options)
    key = layout.entry_key(source_uri(request.uri, settings), options)
    return (key, request.checksum, request.force, request.component, request.parameter)


def _lookup(
    entry: Path, request: FetchRequest, stamp: tuple[int, ...] | None, *, warn: bool = False
) -> FetchResult | None:
    """The cached content for `request`; `stamp` is a local source's size and mtime
    (None for other sources): an unpinned local file that changed is a miss, while a
    pinned one keeps its pinned copy (the pin wins), with a warning when `warn`."""
    ref = layout.read_ref(entry)
    if request.checksum is None:
        if ref is None or (stamp is not None and _differs(ref, None, stamp)):
            return None
        path = layout.content_path(entry, ref.checksum, request.uri)
        return _from_ref(ref, request.uri, path) if path and _trusted(path, ref) else None
    path = layout.content_path(entry, request.checksum, request.uri)
    if path is None:
        return None
    if (
        warn
        and stamp is not None
        and ref is not None
        and _pin_outdated(ref, request.checksum, stamp)
    ):
        _warn_outdated_pin(request, stamp)
    record = ref.record_of(request.checksum) if ref is not None else None
    if record is None:
        return _from_disk(request.uri, request.checksum, path)
    # The current version, or an older one whose record is kept.
    if not _trusted(path, record) or not _vouched(entry, path, request.checksum):
        return None
    return _from_ref(record, request.uri, path)


# Pinned content this process hashed itself because others could have written it.
_VOUCHED: set[tuple[str, str]] = set()


def _vouched(entry: Path, path: Path, checksum: str) -> bool:
    """Whether pinned content may be used as recorded: yes when only this user (or root)
    could have written it; else once this process has hashed it (SPEC §8: in a cache shared
    between users, another one can swap the bytes and put size and mtime back)."""
    if (str(path), checksum) in _VOUCHED or not _writable_by_others(entry, path):
        return True
    if _digest(path) != checksum:
        logger.warning("%s does not hold the pinned content; downloading it again", path)
        return False
    _VOUCHED.add((str(path), checksum))
    return True


def _writable_by_others(entry: Path, content: Path) -> bool:
    """Whether the entry, the version folder or anything in the content is owned by another
    user (root aside) or writable by group or others; a link counts as writable."""
    if not hasattr(os, "getuid"):
        return False  # Windows: no such ownership model to check
    me = os.getuid()
    paths = [str(entry), str(content.parent), str(content)]
    if content.is_dir() and not content.is_symlink():
        paths += [os.path.join(d, n) for d, ds, ns in os.walk(content) for n in ds + ns]
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            return True
        if st.st_uid not in (me, 0) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return True
    return False


def _stamp(located: str) -> tuple[int, ...] | None:
    """`(bytes, mtime in ns)` of a local source file (for a folder: totals over its files,
    and their count); None for other sources and for a local path that does not exist."""
    if protocol_of(located) not in _LOCAL_FILE_PROTOCOLS:
        return None
    last = last_link(located)
    path = last.split("://", 1)[1] if "://" in last else last
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            return (st.st_size, st.st_mtime_ns)
        size, newest, count = 0, st.st_mtime_ns, 0
        for folder, _, names in os.walk(path):
            for name in names:
                sub = os.stat(os.path.join(folder, name))
                size, newest, count = size + sub.st_size, max(newest, sub.st_mtime_ns), count + 1
        return (size, newest, count)
    except (OSError, ValueError):  # ValueError: a NUL in the path (a hostile lockfile)
        return None


def _differs(ref: layout.Ref | None, checksum: str | None, stamp: tuple[int, ...]) -> bool:
    """Whether a local source (as `stamp` says) may hold other content than the entry's
    record, or than `checksum` when one is pinned."""
    record = ref.record_of(checksum) if ref is not None and checksum else ref
    return record is None or record.source is None or tuple(record.source) != stamp


def _pin_outdated(ref: layout.Ref, checksum: str, stamp: tuple[int, ...]) -> bool:
    """Whether a local source surely differs from its pinned version: by the pinned
    version's own stamp, else because the newest copy, another version, matches it. A
    version cached without a stamp (before the file arrived, or by an older daidai) is
    not reported: nothing says the file differs."""
    record = ref.record_of(checksum)
    if record is not None and record.source is not None:
        return tuple(record.source) != stamp
    return ref.source is not None and tuple(ref.source) == stamp and ref.checksum != checksum


def _warn_outdated_pin(request: FetchRequest, stamp: tuple[int, ...]) -> None:
    if (request.uri, stamp) in _warned:
        return
    _warned.add((request.uri, stamp))
    logger.warning(
        "%s changed since the lockfile pinned %s; using the pinned copy from the cache: "
        "the lockfile is out of date, run `daidai fetch` to lock the new content",
        request.uri,
        request.checksum,
    )


def _trusted(path: Path, ref: layout.Ref) -> bool:
    """Whether the content is still what `ref` recorded when it was hashed.

    A hit trusts the record while the content looks untouched since (same kind and size,
    for a folder the same names and sizes, not modified after the record was written);
    content changed since (truncated, overwritten, renamed, replaced by a folder) is hashed
    again before it is used.
    """
    try:
        shape = _shape(path)
    except OSError:
        return False
    if shape.kind != ref.kind or shape.size != ref.size:
        return False
    if ref.listing is not None and shape.listing != ref.listing:
        return _digest(path) == ref.checksum
    if ref.mtime is not None and shape.mtime == ref.mtime:
        return True
    if ref.mtime is None and shape.mtime <= ref.fetched_at + _CLOCK_SLACK_SECONDS:
        return True  # a record written before `mtime` was kept
    return _digest(path) == ref.checksum


@dataclass(frozen=True)
class _Shape:
    """Cached content as `lstat` sees it: kind, bytes, newest mtime, and for a folder the
    sha256 of its sorted names (folders too), sizes and mtimes: renaming or swapping files
    changes it, where the total and the newest mtime stay."""

    kind: str
    size: int
    mtime: float
    listing: str | None = None


def _shape(path: Path) -> _Shape:
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        return _Shape("file", st.st_size, st.st_mtime)
    if not stat.S_ISDIR(st.st_mode):
        return _Shape("other", st.st_size, st.st_mtime)
    from daidai.files.hashing import new_hasher

    names, size, newest = [], 0, 0.0
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            names.append((os.path.relpath(os.path.join(folder, name), path) + "/", ""))
        for name in files:
            full = os.path.join(folder, name)
            sub = os.lstat(full)
            names.append((os.path.relpath(full, path), f"{sub.st_size}\0{sub.st_mtime_ns}"))
            size, newest = size + sub.st_size, max(newest, sub.st_mtime)
    hasher = new_hasher()
    for rel, shape in sorted(names):
        hasher.update(f"{rel}\0{shape}\n".encode("utf-8", "surrogatepass"))
    return _Shape("directory", size, newest, "sha256:" + hasher.hexdigest())


def _digest(path: Path) -> str | None:
    from daidai.files.hashing import hash_directory, hash_file

    try:
        return hash_directory(path).checksum if path.is_dir() else hash_file(path)
    except OSError:
        return None


def _from_ref(ref: layout.Ref, uri: str, path: Path) -> FetchResult:
    return FetchResult(
        uri, ref.checksum, ref.size, ref.kind, ref.nfiles, ref.etag, ref.version_id, path, False
    )


def _from_disk(uri: str, checksum: str, path: Path) -> FetchResult | None:
    # No record vouches for this copy (ref.json missing, garbled or naming another
    # version), so it is hashed before use.
    if _digest(path) != checksum:
        return None
    if not path.is_dir():
        size = path.stat().st_size
        return FetchResult(uri, checksum, size, "file", None, None, None, path, False)
    sizes = [os.lstat(os.path.join(d, n)).st_size for d, _, ns in os.walk(path) for n in ns]
    return FetchResult(uri, checksum, sum(sizes), "directory", len(sizes), None, None, path, False)


def _require_online(
    request: FetchRequest, settings: Settings, origin: Origin, *, searched: bool = True
) -> None:
    if settings.offline and protocol_of(request.uri) not in LOCAL_PROTOCOLS:
        if not searched:  # on_disk_temporary never looks in the cache
            raise origin.error(
                OfflineError,
                "offline mode is on (DAIDAI_OFFLINE) and on_disk_temporary downloads the "
                "file each time; use cache_strategy='on_disk' and run `daidai fetch` first",
            )
        wanted = f"version {request.checksum}" if request.checksum else "file"
        # Naming the folder tells a wrong HOME or DAIDAI_CACHE_DIR (an image built as root,
        # run as another user) from a missing `daidai fetch`.
        raise origin.error(
            OfflineError,
            f"the {wanted} is not in the cache at {settings.cache_dir} and offline mode is "
            "on (DAIDAI_OFFLINE); run `daidai fetch` with network access first, into that "
            "cache folder (DAIDAI_CACHE_DIR or cache_dir in daidai.toml)",
        )


def _refuse_links(entry: Path, origin: Origin) -> None:
    """Refuse to write through a symbolic link planted inside the cache folder (`files/`,
    a shard or the entry itself): every byte daidai writes stays inside the cache."""
    for folder in (entry.parent.parent, entry.parent, entry):
        if os.path.islink(folder):
            raise origin.error(
                CacheError,
                f"{folder} is a symbolic link; daidai writes only inside its cache folder, "
                "never through a link; remove the link or use another DAIDAI_CACHE_DIR",
            )


def _enter(entry: Path, origin: Origin, *, wait: bool) -> Callable[[], None] | None:
    """Create the entry folder and take its download lock (see `_lock_entry`)."""
    for attempt in range(3):
        _refuse_links(entry, origin)  # before creating anything through a link
        with cache_errors(origin):
            entry.mkdir(parents=True, exist_ok=True)
        _refuse_links(entry, origin)
        try:
            return _lock_entry(entry, origin, wait=wait)
        except CacheError:
            if entry.is_dir() or attempt == 2:
                raise
            # A failed first download removed the empty folder in between: make it again.
    return None  # pragma: no cover - the loop returns or raises


def _lock_entry(entry: Path, origin: Origin, *, wait: bool = True) -> Callable[[], None] | None:
    """Take the entry's download lock and return its release, callable from any thread;
    without `wait`, None while another process holds it.

    A free lock is taken with one `open` and one `flock` (filelock spends ~1 ms on the
    same, a third of a 1 MiB download from loopback); when another process holds it, or
    the platform has no `flock`, filelock waits (on the same `flock` of the same file) or
    falls back to its own mechanism.
    """
    with cache_errors(origin):
        fd = _try_flock(entry / layout.LOCK_FILE)
    if fd is not None:
        return lambda: os.close(fd)  # closing releases the lock
    import filelock

    lock = filelock.FileLock(str(entry / layout.LOCK_FILE), thread_local=False)
    with cache_errors(origin):
        while True:
            try:
                lock.acquire(timeout=_LOCK_WAIT_LOG_SECONDS if wait else 0)
                return lock.release
            except filelock.Timeout:
                if not wait:
                    return None
                logger.info(
                    "waiting for another process to finish downloading %s",
                    layout.strip_credentials(origin.uri),
                )


def _try_flock(path: Path) -> int | None:
    """A descriptor of `path` holding its `flock`, or None when that lock is taken or
    `flock` is unavailable (no `fcntl`, or a filesystem without it)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _rename_dir(staging: Path, target: Path, content: Content, name: str) -> None:
    try:
        os.rename(staging, target)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
            raise
        # Same name should mean same content: someone else (a lock that lied, or a race
        # with a temporary download) placed a complete copy. But a copy damaged since
        # (truncated, overwritten) must not win over the bytes just verified.
        if _digest(target / name) == content.checksum:
            shutil.rmtree(staging, ignore_errors=True)
            return
        logger.warning("replacing a damaged cached copy at %s", target)
        layout.delete_version(layout.Version(content.checksum, target, 0, False))
        try:
            os.rename(staging, target)
        except OSError as again:
            if again.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(staging, ignore_errors=True)  # a fresh, verified copy landed in between


def _copy_source(
    request: FetchRequest,
    fs: Any,
    path: str,
    opened: Opened | None,
    staging: Path,
    origin: Origin,
    on_progress: ProgressCallback | None,
) -> tuple[Content, str, SourceInfo]:
    name = layout.source_name(request.uri)
    progress = _bind_progress(request.uri, on_progress)
    if opened is None:
        with source_errors(origin):
            info = stat_source(fs, path)
        src = None
    else:
        info, src = opened.info, opened.src
    pinned = None
    if request.size is not None and request.checksum is not None:
        pinned = Bound(request.size, request.checksum)
    if info.kind == "directory":
        with source_errors(origin):
            files, folders = list_directory(fs, path, origin)
        content = copy_directory(fs, files, folders, staging / name, origin, progress, pinned)
    else:
        content = copy_file(
            fs, info, staging / name, origin, progress, CHUNK_SIZE, src, pinned=pinned
        )
    if request.checksum and content.checksum != request.checksum:
        raise ChecksumMismatchError(
            uri=layout.strip_credentials(request.uri),
            expected=request.checksum,
            actual=content.checksum,
            component=request.component,
            parameter=request.parameter,
        )
    return content, name, info


def _bind_progress(
    uri: str, callback: ProgressCallback | None
) -> Callable[[int, int | None], None]:
    if callback is None:
        return lambda done, total: None
    return lambda done, total: callback(uri, done, total)


def _ref(
    uri: str,
    content: Content,
    options: Mapping[str, Any],
    modified: float,
    listing: str | None,
) -> layout.Ref:
    return layout.Ref(
        uri=layout.strip_credentials(uri),
        checksum=content.checksum,
        size=content.size,
        kind=content.kind,
        nfiles=content.nfiles,
        etag=content.etag,
        version_id=content.version_id,
        fetched_at=layout.now(),
        endpoint=layout.endpoint_of(options),
        mtime=modified,
        listing=listing,
    )


def _result(uri: str, content: Content, path: Path, *, downloaded: bool) -> FetchResult:
    return FetchResult(
        uri,
        content.checksum,
        content.size,
        content.kind,
        content.nfiles,
        content.etag,
        content.version_id,
        path,
        downloaded,
    )
