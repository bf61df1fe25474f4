"""Project-level operations behind `daidai graph`, `daidai fetch` and `daidai run`.

A project is a set of imported components plus its settings (`daidai.toml`) and its
lockfile. This module sits above the graph and the files layer: it collects the files the
components declare, fetches the `on_disk` ones in parallel and keeps `daidai.lock` in step
(SPEC §3-4). It never imports typer or rich; the CLI renders what it returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daidai._component import Component
from daidai._graph import ComponentInfo, describe
from daidai._injection import parameters_of
from daidai.errors import (
    ChecksumMismatchError,
    DaidaiError,
    IntegrityError,
    LockfileError,
    StaleLockfileError,
    TargetError,
)
from daidai.files import registry

if TYPE_CHECKING:
    from daidai._settings import Settings
    from daidai.files.fetch import FetchRequest, FetchResult, ProgressCallback
    from daidai.files.lockfile import LockEntry, Lockfile
    from daidai.files.spec import FileSpec

__all__ = [
    "DeclaredFile",
    "FetchReport",
    "FileState",
    "GraphNode",
    "declared_files",
    "fetch_frozen",
    "fetch_project",
    "graph",
    "run_predictor",
]

_FIX_LOCK = "run `daidai fetch` to update the lockfile"


@dataclass(frozen=True)
class DeclaredFile:
    """A file parameter of a component, with the strategy in force.

    Attributes:
        component: the component's qualified name.
        parameter: the parameter the file is injected into.
        spec: the declaration.
        strategy: the annotation's strategy, else the configured default.
    """

    component: str
    parameter: str
    spec: FileSpec
    strategy: str


@dataclass(frozen=True)
class FileState:
    """A declared file and where it stands on this machine.

    Attributes:
        parameter: the parameter it is injected into.
        uri: the source.
        type: the type handed out (`Path`, `bytes`, ...).
        strategy: the strategy in force.
        cached: whether the content is in the cache; None for strategies that never persist.
        locked: whether the lockfile pins it.
        checksum: the pinned checksum (inline option, else lockfile), if any.
    """

    parameter: str
    uri: str
    type: str
    strategy: str
    cached: bool | None
    locked: bool
    checksum: str | None

    @property
    def state(self) -> str:
        """`cached`, `missing`, or `-` when the strategy keeps nothing on disk."""
        if self.cached is None:
            return "-"
        return "cached" if self.cached else "missing"


@dataclass(frozen=True)
class GraphNode:
    """A component as `daidai graph` shows it: its description and its files' states."""

    info: ComponentInfo
    files: tuple[FileState, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (configs that are not JSON become their `repr`)."""
        return {
            "name": self.info.name,
            "kind": self.info.kind,
            "async": self.info.is_async,
            "generator": self.info.is_generator,
            "dependencies": [
                {"parameter": e.parameter, "component": e.target, "config": _jsonable(e.config)}
                for e in self.info.dependencies
            ],
            "files": [
                {
                    "parameter": f.parameter,
                    "uri": f.uri,
                    "type": f.type,
                    "strategy": f.strategy,
                    "state": f.state,
                    "locked": f.locked,
                    "checksum": f.checksum,
                }
                for f in self.files
            ],
        }


@dataclass(frozen=True)
class FetchReport:
    """What a fetch did.

    Attributes:
        results: one result per file fetched, sorted by URI.
        lockfile: the lockfile path.
        lock_written: whether the lockfile's bytes changed.
        added: URIs newly pinned.
        changed: URIs whose pinned content changed.
        dropped: URIs no longer declared, removed from the lockfile.
        unused: locked URIs no longer declared, left in place (`--locked`).
    """

    results: tuple[FetchResult, ...]
    lockfile: Path
    lock_written: bool = False
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()

    @property
    def downloaded(self) -> int:
        """How many files were downloaded (the rest were cache hits)."""
        return sum(r.downloaded for r in self.results)

    @property
    def total_size(self) -> int:
        """Bytes of every file fetched."""
        return sum(r.size for r in self.results)


def declared_files(components: Iterable[Component], *, settings: Settings) -> list[DeclaredFile]:
    """Every file declared by `components` and what they depend on, sorted by URI.

    Raises:
        CycleError, DeclarationError: the graph is invalid.
    """
    found: list[DeclaredFile] = []
    for info in describe(components):
        for file in _files_of(info.name):
            strategy = file.spec.strategy_or(settings.default_cache_strategy)
            found.append(DeclaredFile(info.name, file.name, file.spec, strategy))
    return sorted(found, key=lambda f: (f.spec.uri, f.component, f.parameter))


def graph(components: Iterable[Component], *, settings: Settings) -> list[GraphNode]:
    """Describe `components` with the cache and lock state of every file, sorted by name.

    Reads the cache without touching it: no network, no last-used mark.

    Raises:
        CycleError, DeclarationError: the graph is invalid.
        LockfileError: the lockfile is malformed.
    """
    lock = _read_lock(settings)
    nodes = []
    for info in describe(components):
        states = tuple(_state(f.name, f.spec, settings, lock) for f in _files_of(info.name))
        nodes.append(GraphNode(info, states))
    return nodes


def fetch_project(
    components: Sequence[Component],
    *,
    settings: Settings,
    mirror: bool,
    locked: bool = False,
    refresh: bool = False,
    jobs: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> FetchReport:
    """Fetch every `on_disk` file the components declare and update the lockfile.

    Args:
        components: the components (and, through them, their dependencies).
        settings: the settings in force.
        mirror: the components are the whole project: the lockfile drops what they no longer
            declare. Otherwise entries for other files stay.
        locked: check instead of update: fail if the lockfile lacks a declared file or a
            source's content differs from it; the lockfile is never written.
        refresh: download every file again.
        jobs: parallel downloads (default: `settings.jobs`).
        on_progress: called as `(uri, done, total)` from worker threads.

    Raises:
        StaleLockfileError: with `locked`, the lockfile is out of date.
        ChecksumMismatchError: content differs from an inline or locked checksum.
        FileError: a source or the cache failed.
        LockfileError: the lockfile is malformed.
    """
    lock = _read_lock(settings)
    wanted = _unique_by_uri(f for f in declared_files(components, settings=settings))
    if locked:
        return _fetch_locked(wanted, lock, settings, refresh, jobs, on_progress, mirror)
    requests = [_prefer_locked(f, lock, settings, refresh) for f in wanted]
    results = _fetch_all(requests, settings, jobs, on_progress)
    declared = {f.spec.uri for f in wanted} if mirror else None
    return _update_lock(lock, results, settings, mirror=declared)


def fetch_frozen(
    *,
    settings: Settings,
    refresh: bool = False,
    jobs: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> FetchReport:
    """Fetch exactly the lockfile's files, importing no code (a Docker layer before `COPY`).

    Storage options come from the settings (`[storage_options.<protocol>]`); the lockfile is
    never written.

    Raises:
        LockfileError: the lockfile is missing or malformed.
        ChecksumMismatchError: a source no longer serves the pinned content.
        FileError: a source or the cache failed.
    """
    from daidai.files.fetch import FetchRequest
    from daidai.files.lockfile import read_lockfile

    lock = read_lockfile(settings.lockfile, missing_ok=False)
    registry.register(
        settings.cache_dir, settings.lockfile, [(e.uri, e.checksum) for e in lock.entries.values()]
    )
    requests = [
        FetchRequest(uri=e.uri, checksum=e.checksum, force=refresh, size=e.size)
        for e in sorted(lock.entries.values(), key=lambda e: e.uri)
    ]
    outcomes = _fetch_outcomes(requests, settings, jobs, on_progress)
    outcomes = [_adopted(o, r, settings) for o, r in zip(outcomes, requests, strict=True)]
    if failed := [o for o in outcomes if isinstance(o, DaidaiError)]:
        raise _frozen_failure(failed, lock.path)
    return FetchReport(results=tuple(outcomes), lockfile=lock.path)


def run_predictor(fn: Any, kwargs: Mapping[str, Any]) -> Any:
    """Call a predictor in a fresh manager closed before returning (async ones awaited).

    Raises:
        TargetError: `fn` is not a predictor.
    """
    from daidai._component import component_of
    from daidai._manager import ModelManager

    component = component_of(fn)
    if component is None or component.is_artifact:
        what = "an artifact" if component else f"not a daidai component ({type(fn).__name__})"
        raise TargetError(f"is {what}, not a predictor", target=getattr(fn, "__qualname__", "?"))
    with ModelManager():
        if component.is_async:
            import asyncio

            return asyncio.run(fn(**kwargs))
        return fn(**kwargs)


# -- helpers ------------------------------------------------------------------------------


def _files_of(name: str) -> Sequence[Any]:
    from daidai._component import registry

    component = registry.get(name)
    return parameters_of(component).files if component is not None else ()


def _read_lock(settings: Settings) -> Lockfile:
    from daidai.files.lockfile import read_lockfile

    return read_lockfile(settings.lockfile, missing_ok=True)


def _unique_by_uri(files: Iterable[DeclaredFile]) -> list[DeclaredFile]:
    unique: dict[str, DeclaredFile] = {}
    for file in files:
        if file.strategy == "on_disk":
            unique.setdefault(file.spec.uri, file)
    return list(unique.values())


def _pinned(file: DeclaredFile, lock: Lockfile) -> str | None:
    entry = lock.get(file.spec.uri)
    return file.spec.checksum or (entry.checksum if entry else None)


def _request(
    file: DeclaredFile, checksum: str | None, *, force: bool, lock: Lockfile | None = None
) -> FetchRequest:
    from daidai.files.fetch import FetchRequest

    wanted = file.spec.checksum or checksum
    entry = lock.get(file.spec.uri) if lock is not None else None
    return FetchRequest(
        uri=file.spec.uri,
        storage_options=file.spec.storage_options,
        checksum=wanted,
        force=force,
        component=file.component,
        parameter=file.parameter,
        size=entry.size if entry is not None and entry.checksum == wanted else None,
        transfer=file.spec.transfer,
    )


def _prefer_locked(
    file: DeclaredFile, lock: Lockfile, settings: Settings, refresh: bool
) -> FetchRequest:
    """Keep a locked version that is cached; otherwise take what the source serves now."""
    from daidai.files.fetch import cached, local_source_changed

    if refresh:
        return _request(file, None, force=True)
    locked = _request(file, _pinned(file, lock), force=False, lock=lock)
    if file.spec.checksum is not None or locked.checksum is None:
        return locked
    if local_source_changed(locked, settings=settings):
        return _request(file, None, force=False)  # an edited local file: lock the new content
    if cached(locked, settings=settings) is not None:
        return locked
    return _request(file, None, force=False)


def _fetch_all(
    requests: Sequence[FetchRequest],
    settings: Settings,
    jobs: int | None,
    on_progress: ProgressCallback | None,
) -> list[FetchResult]:
    from daidai.files.fetch import fetch_many

    if not requests:
        return []
    results = fetch_many(requests, settings=settings, jobs=jobs, on_progress=on_progress)
    return sorted(results, key=lambda r: r.uri)


def _fetch_outcomes(
    requests: Sequence[FetchRequest],
    settings: Settings,
    jobs: int | None,
    on_progress: ProgressCallback | None,
) -> list[Any]:
    """Like `_fetch_all`, with a `DaidaiError` in place of each file that failed."""
    from daidai.files.fetch import fetch_many

    if not requests:
        return []
    return fetch_many(
        requests, settings=settings, jobs=jobs, on_progress=on_progress, return_exceptions=True
    )


def _update_lock(
    lock: Lockfile, results: Sequence[FetchResult], settings: Settings, *, mirror: set[str] | None
) -> FetchReport:
    from daidai.files.lockfile import write_lockfile

    old = dict(lock.entries)
    new = {uri: e for uri, e in old.items() if mirror is None or uri in mirror}
    for result in results:
        previous = old.get(result.uri)
        # A cache hit knows less about the source (no fresh ETag) than the lockfile does.
        if previous is None or previous.checksum != result.checksum or result.downloaded:
            previous = result.lock_entry()
        new[result.uri] = previous
    written = write_lockfile(settings.lockfile, new.values())
    # So a prune anywhere keeps what it pins, even while it is missing for a moment.
    pinned = [(e.uri, e.checksum) for e in new.values()]
    registry.register(settings.cache_dir, settings.lockfile, pinned)
    return FetchReport(
        results=tuple(results),
        lockfile=settings.lockfile,
        lock_written=written,
        added=tuple(sorted(set(new) - set(old))),
        changed=tuple(sorted(u for u in set(new) & set(old) if new[u] != old[u])),
        dropped=tuple(sorted(set(old) - set(new))),
    )


def _fetch_locked(
    wanted: Sequence[DeclaredFile],
    lock: Lockfile,
    settings: Settings,
    refresh: bool,
    jobs: int | None,
    on_progress: ProgressCallback | None,
    mirror: bool,
) -> FetchReport:
    missing = [f.spec.uri for f in wanted if f.spec.uri not in lock]
    if missing:
        raise StaleLockfileError(
            f"out of date: {len(missing)} declared file(s) not locked: "
            f"{', '.join(missing)}; {_FIX_LOCK}",
            path=str(lock.path),
        )
    for file in wanted:
        entry = lock.entries[file.spec.uri]
        if file.spec.checksum is not None and file.spec.checksum != entry.checksum:
            raise StaleLockfileError(
                f"out of date: {file.spec.uri} is pinned in code to {file.spec.checksum} "
                f"but locked to {entry.checksum}; {_FIX_LOCK}",
                path=str(lock.path),
            )
    requests = [
        _request(f, lock.entries[f.spec.uri].checksum, force=refresh, lock=lock) for f in wanted
    ]
    if not refresh:
        requests = _recheck_sources(requests, lock, settings, jobs)
    outcomes = _fetch_outcomes(requests, settings, jobs, on_progress)
    changed = [o for o in outcomes if isinstance(o, ChecksumMismatchError)]
    if changed:
        raise StaleLockfileError(
            f"out of date: {len(changed)} file(s) changed at their source: "
            f"{', '.join(sorted(e.uri for e in changed))}; {_refresh_fix(changed)}",
            path=str(lock.path),
        )
    if failed := [o for o in outcomes if isinstance(o, DaidaiError)]:
        raise failed[0]
    results = sorted(outcomes, key=lambda r: r.uri)
    from daidai.files.layout import strip_credentials

    # The lockfile names each URI without its `user:token@` (SPEC §2): compare it so.
    declared = {strip_credentials(f.spec.uri) for f in wanted}
    unused = tuple(sorted(set(lock.entries) - declared)) if mirror else ()
    return FetchReport(results=tuple(results), lockfile=lock.path, unused=unused)


def _recheck_sources(
    requests: Sequence[FetchRequest], lock: Lockfile, settings: Settings, jobs: int | None
) -> list[FetchRequest]:
    """Ask each remote source whether it still serves the locked content (one metadata
    request each); a source whose identity changed is downloaded again to compare."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from daidai.files._source import LOCAL_PROTOCOLS, protocol_of
    from daidai.files.fetch import cached

    def check(request: FetchRequest) -> FetchRequest:
        entry = lock.entries[request.uri]
        if settings.offline and protocol_of(request.uri) not in LOCAL_PROTOCOLS:
            return request  # offline: the cache is all there is to compare against
        if cached(request, settings=settings) is None:
            return request  # a download will compare checksums anyway
        return replace(request, force=_source_changed(request, entry, settings))

    workers = max(1, min(jobs or settings.jobs, len(requests) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="daidai-check") as pool:
        return list(pool.map(check, requests))


def _require_local(request: FetchRequest, settings: Settings) -> None:
    """A locked local file that is gone makes the lockfile out of date: the cached copy
    would serve a file the project no longer has (`fetch --frozen` is the command that
    goes by the cache alone)."""
    import os

    from daidai.files.fetch import source_uri

    located = source_uri(request.uri, settings)
    path = located.split("://", 1)[1] if "://" in located else located
    if not os.path.lexists(path):
        raise StaleLockfileError(
            f"out of date: {request.uri} is locked but {path} no longer exists; restore "
            "it, or drop its declaration and run `daidai fetch` (`daidai fetch --frozen` "
            "goes by the cached copy alone)",
            path=None,
        )


def _source_changed(request: FetchRequest, entry: LockEntry, settings: Settings) -> bool:
    """Whether the source may no longer serve the locked content, so that it must be
    downloaded and hashed to compare: by ETag or version id, else by Last-Modified and
    size, else always (a source that tells none of them); a local file by its size and
    modification time."""
    from daidai.files import layout
    from daidai.files._source import (
        Origin,
        filesystem,
        protocol_of,
        source_errors,
        stat_source,
    )
    from daidai.files.fetch import local_source_changed, options_for, source_uri

    if protocol_of(request.uri) in ("file", "local"):
        _require_local(request, settings)
        return local_source_changed(request, settings=settings)
    if protocol_of(request.uri) == "memory":
        return True  # reading memory costs what asking it does
    options = options_for(request.uri, settings, request.storage_options)
    origin = Origin(request.uri, request.component, request.parameter, options)
    with source_errors(origin):
        fs, path = filesystem(request.uri, options)
        info = stat_source(fs, path)
    if info.kind == "file" and info.size is not None and info.size != entry.size:
        raise StaleLockfileError(
            f"out of date: {request.uri} now has {info.size} bytes, the lockfile pins "
            f"{entry.size}; {_refresh_fix([request])}",
            path=None,
        )
    if entry.version_id and info.version_id:
        return info.version_id != entry.version_id
    if entry.etag and info.etag:
        return info.etag != entry.etag
    ref = layout.read_ref(
        layout.entry_dir(settings.cache_dir, source_uri(request.uri, settings), options)
    )
    record = ref.record_of(entry.checksum) if ref is not None else None
    recorded = record.last_modified if record is not None else None
    if recorded and info.last_modified:
        return info.last_modified != recorded
    return True  # nothing tells whether it changed: hash the content


def _state(parameter: str, spec: FileSpec, settings: Settings, lock: Lockfile) -> FileState:
    strategy = spec.strategy_or(settings.default_cache_strategy)
    entry = lock.get(spec.uri)
    checksum = spec.checksum or (entry.checksum if entry else None)
    cached = _is_cached(spec, checksum, settings) if strategy == "on_disk" else None
    return FileState(parameter, spec.uri, spec.type, strategy, cached, entry is not None, checksum)


def _is_cached(spec: FileSpec, checksum: str | None, settings: Settings) -> bool:
    from daidai.files import layout
    from daidai.files.fetch import options_for, source_uri

    options = options_for(spec.uri, settings, spec.storage_options)
    entry = layout.entry_dir(settings.cache_dir, source_uri(spec.uri, settings), options)
    if checksum is None:
        ref = layout.read_ref(entry)
        checksum = ref.checksum if ref else None
    return checksum is not None and layout.content_path(entry, checksum, spec.uri) is not None


def _adopted(outcome: Any, request: FetchRequest, settings: Settings) -> Any:
    """A local file absent at its source but cached from another folder, else `outcome`."""
    from daidai.errors import SourceNotFoundError
    from daidai.files.fetch import adopt

    if not isinstance(outcome, SourceNotFoundError):
        return outcome
    try:
        return adopt(request, settings=settings) or outcome
    except DaidaiError:
        return outcome


def _frozen_failure(failed: Sequence[DaidaiError], lockfile: Path) -> LockfileError:
    """One error naming every locked file that is neither fetchable nor in the cache with
    its locked checksum (exit 3 when content differs, else 1)."""
    cls = (
        StaleLockfileError if any(isinstance(e, IntegrityError) for e in failed) else LockfileError
    )
    return cls(
        f"{len(failed)} locked file(s) neither fetchable nor in the cache with the locked "
        f"checksum: {'; '.join(str(e) for e in failed)}",
        path=str(lockfile),
    )


def _refresh_fix(changed: Sequence[Any]) -> str:
    """`run daidai fetch --refresh TARGET...` for the components declaring these files."""
    from daidai._component import registry

    targets = set()
    for item in changed:
        component = registry.get(item.component) if item.component else None
        if component is not None:
            targets.add(f"{component.fn.__module__}:{component.fn.__qualname__}")
    named = " ".join(sorted(targets))
    return f"run `daidai fetch --refresh{' ' + named if named else ''}` to lock the new content"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=repr))
    return value
