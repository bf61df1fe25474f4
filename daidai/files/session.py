"""`FileSession`: what a `ModelManager` uses to hand file dependencies to components.

The session applies the strategy in force, the lockfile's pins, and owns everything it hands
out that needs cleanup: open handles, generators, and the `on_disk_temporary` folder. It is
created lazily by the manager, so fsspec loads only when a file is first used.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from daidai._settings import Settings
from daidai.errors import CacheError, DeclarationError, IntegrityError
from daidai.files import _readers, in_use, registry
from daidai.files._process import is_alive
from daidai.files.fetch import (
    FetchRequest,
    FetchResult,
    download,
    fetch,
    options_for,
    source_uri,
)
from daidai.files.layout import entry_key, strip_credentials
from daidai.files.lockfile import Lockfile, read_lockfile
from daidai.files.spec import FileSpec, FileType, check_strategy

__all__ = ["FileSession"]

logger = logging.getLogger(__name__)

_TEMP_PREFIX = "daidai-tmp-"
_HOLD_TRIES = 20
# (uri, checksum) pairs this process has handed out: each is logged once at INFO, so the
# logs of a fleet show which version every worker serves. A forked worker starts afresh.
_announced: set[tuple[str, str]] = set()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_announced.clear)


class FileSession:
    """Provides file dependencies under their cache strategies; thread-safe.

    Args:
        settings: cache folder, default strategy, offline mode, storage options.
        lockfile: the lockfile whose pins to apply; default `settings.lockfile`.
    """

    def __init__(self, settings: Settings, *, lockfile: Path | None = None) -> None:
        self.settings = settings
        self.lockfile_path = Path(lockfile) if lockfile is not None else settings.lockfile
        self._lock = threading.RLock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._pins: Lockfile | None = None
        self._memory: dict[str, bytes] = {}
        self._temporary: dict[str, FetchResult] = {}
        self._forced: set[str] = set()
        self._handles: list[Any] = []
        self._temp_dir: Path | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<FileSession cache_dir={str(self.settings.cache_dir)!r} "
            f"handles={len(self._handles)} closed={self._closed}>"
        )

    def provide(
        self, spec: FileSpec, *, component: str, parameter: str, owner: list[Any] | None = None
    ) -> object:
        """The value of `spec.type` for this file under the strategy in force.

        Args:
            spec: the declaration.
            component: who asks, for errors.
            parameter: which parameter, for errors.
            owner: where to put a handle or generator handed out, for the caller to close
                (a predictor call closes its own when it returns); without it, the
                session keeps it and closes it with `close()`.

        Raises:
            DeclarationError: the configured strategy cannot hand out this type.
            IntegrityError: an inline checksum disagrees with the lockfile pin.
            FileError: the file cannot be fetched or cached (subclasses say why).
        """
        strategy = spec.strategy_or(self.settings.default_cache_strategy)
        if why := check_strategy(strategy, spec.type):
            raise DeclarationError(why, component=component, parameter=parameter)
        checksum = self._required_checksum(spec, component, parameter)
        pin = self._lockfile().get(spec.uri)
        request = FetchRequest(
            uri=spec.uri,
            storage_options=spec.storage_options,
            checksum=checksum,
            component=component,
            parameter=parameter,
            size=pin.size if pin is not None and pin.checksum == checksum else None,
            transfer=spec.transfer,
        )
        value = getattr(self, "_" + strategy)(spec, request)
        if owner is None:
            return self._track(value)
        if _needs_closing(value):
            owner.append(value)
        return value

    def close(self) -> None:
        """Close handed-out handles and generators and remove the temporary folder.

        Idempotent; the session can still be used afterwards (it starts afresh).
        """
        with self._lock:
            handles, self._handles = self._handles, []
            temp_dir, self._temp_dir = self._temp_dir, None
            self._memory.clear()
            self._temporary.clear()
            self._closed = True
        for handle in reversed(handles):
            try:
                handle.close()
            except Exception:  # one bad handle must not keep the others open
                logger.warning("closing a file handle failed", exc_info=True)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)

    # -- strategies -------------------------------------------------------------------

    def _on_disk(self, spec: FileSpec, request: FetchRequest) -> Any:
        key = self._key(spec)
        with self._lock:
            force = spec.force_download and key not in self._forced
            self._forced.add(key)
        result = fetch(_with_force(request, force), settings=self.settings)
        result = self._hold(result, request)
        _announce(result, "cache" if not result.downloaded else "download", self.settings)
        return self._from_result(result, spec, request)

    def _on_disk_temporary(self, spec: FileSpec, request: FetchRequest) -> Any:
        key = self._key(spec)
        with self._key_lock("temporary", key):
            result = self._temporary.get(key)
            if result is None or not result.path.exists():
                result = download(request, self._temp_folder(), settings=self.settings)
                self._temporary[key] = result
                _announce(result, "temporary download", self.settings)
        return self._from_result(result, spec, request)

    def _in_memory(self, spec: FileSpec, request: FetchRequest) -> Any:
        key = self._key(spec)
        with self._key_lock("memory", key):
            data = self._memory.get(key)
            if data is None:
                data = _readers.read_all(request, self.settings)
                self._memory[key] = data
        return _readers.from_bytes(data, spec.type, spec.open_options, _readers.origin_of(request))

    def _in_memory_stream(self, spec: FileSpec, request: FetchRequest) -> Any:
        stream = _readers.open_stream(request, self.settings)
        return _readers.from_stream(
            stream, spec.type, spec.open_options, _readers.origin_of(request)
        )

    def _no_cache(self, spec: FileSpec, request: FetchRequest) -> Any:
        if spec.type in (FileType.STR, FileType.BYTES):
            data = _readers.read_all(request, self.settings)
            origin = _readers.origin_of(request)
            return _readers.from_bytes(data, spec.type, spec.open_options, origin)
        return self._in_memory_stream(spec, request)

    # -- helpers ----------------------------------------------------------------------

    def _from_result(self, result: FetchResult, spec: FileSpec, request: FetchRequest) -> Any:
        if result.kind == "directory" and spec.type != FileType.PATH:
            raise _readers.folder_error(spec.uri, request.component, request.parameter)
        origin = _readers.origin_of(request)
        return _readers.from_path(result.path, spec.type, spec.open_options, origin)

    def _hold(self, result: FetchResult, request: FetchRequest) -> FetchResult:
        """Mark the version handed out as in use until the process exits, so that no
        cleanup removes it (`daidai.files.in_use`); fetch again when one did in between."""
        for _ in range(_HOLD_TRIES):
            if in_use.hold(result.path):
                return result
            result = fetch(request, settings=self.settings)
        raise CacheError(
            f"a cache cleanup removed each copy as it was fetched ({_HOLD_TRIES} times); "
            "stop the `daidai cache` command that runs in a loop",
            uri=request.uri,
            component=request.component,
            parameter=request.parameter,
        )

    def _track(self, value: Any) -> Any:
        if _needs_closing(value):
            with self._lock:
                if len(self._handles) >= 64:  # forget handles the caller already closed
                    self._handles = [h for h in self._handles if not getattr(h, "closed", False)]
                self._handles.append(value)
                self._closed = False
        return value

    def _key(self, spec: FileSpec) -> str:
        options = options_for(spec.uri, self.settings, spec.storage_options)
        return entry_key(source_uri(spec.uri, self.settings), options)

    def _key_lock(self, kind: str, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault((kind, key), threading.Lock())

    def _required_checksum(self, spec: FileSpec, component: str, parameter: str) -> str | None:
        pin = self._lockfile().get(spec.uri)
        if pin is None or spec.checksum in (None, pin.checksum):
            return spec.checksum or (pin.checksum if pin else None)
        raise IntegrityError(
            f"{spec.uri}: the inline checksum {spec.checksum} differs from {pin.checksum} "
            f"pinned in {self.lockfile_path}; fix the annotation, or run `daidai fetch` to "
            "update the lockfile",
            component=component,
            parameter=parameter,
        )

    def _lockfile(self) -> Lockfile:
        with self._lock:
            if self._pins is None:
                self._pins = read_lockfile(self.lockfile_path)
                if self._pins.entries:
                    registry.register(
                        self.settings.cache_dir,
                        self.lockfile_path,
                        [(e.uri, e.checksum) for e in self._pins.entries.values()],
                    )
            return self._pins

    def _temp_folder(self) -> Path:
        with self._lock:
            if self._temp_dir is None:
                _reap_dead_temp_dirs()
                path = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-"))
                self._temp_dir = path
                _remove_at_exit(path)
            return self._temp_dir


def _announce(result: FetchResult, source: str, settings: Settings) -> None:
    if (result.uri, result.checksum) in _announced:
        return
    _announced.add((result.uri, result.checksum))
    # The absolute form, as `cache ls` shows it: two projects' `models/x` are two files.
    uri = strip_credentials(source_uri(result.uri, settings))
    logger.info("using %s %s (from %s, %d bytes)", uri, result.checksum, source, result.size)


def _needs_closing(value: object) -> bool:
    """Whether a value handed out is a handle or generator that holds a resource."""
    return hasattr(value, "close") and not isinstance(value, (bytes, str, Path))


def _with_force(request: FetchRequest, force: bool) -> FetchRequest:
    if not force:
        return request
    return replace(request, force=True)


def _remove_at_exit(path: Path) -> None:
    # A weak link would not help: the folder must go even if the session is leaked.
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def _reap_dead_temp_dirs() -> None:
    """Remove temporary folders of processes that no longer exist (killed with SIGKILL)."""
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for folder in root.glob(f"{_TEMP_PREFIX}*-*"):
            pid = folder.name[len(_TEMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not is_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
