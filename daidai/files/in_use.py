"""Which cached versions live processes use, and when each entry was last used.

A process that hands out a cached version (a `Path`, an open handle) keeps a shared `flock`
on the version's marker, `<entry>/.in-use-<hex>`, until it exits. `daidai cache prune`,
`clear` and `rm` delete a version only while holding an exclusive lock on that marker, taken
without waiting: a version some live process holds is skipped.

Why `flock` on a kept-open descriptor: the kernel drops it when the process ends, however
it ends (SIGKILL, OOM killer, power loss on reboot), so nothing is left to reap and a
recycled pid can never look alive; many processes' shared locks coexist; a forked child
(gunicorn `--preload`, multiprocessing) inherits it with the descriptor. POSIX `fcntl`
record locks would not do: closing any descriptor of the file drops them, and forked
children do not inherit them. A pid file would need a liveness guess. The cost is one
`open` and one `flock` per version per process, at its first hand-out; a warm predictor
call, which reuses what was handed out, does nothing.

The protocol closes the race between a hand-out and a deletion: the runtime takes its
shared lock, then checks the version still exists (else fetches again); maintenance takes
its exclusive lock, removes the version (renamed away first), then removes the marker.

Last use: `touch` records an entry's use at most once per process and minute, and a
daemon thread (started at the first hand-out) records it each minute for every entry the
process holds, so `cache ls` and `prune --older-than` see a long-running server's use.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from daidai.files import layout

__all__ = [
    "LAST_USE_SECONDS",
    "MARKER_PREFIX",
    "download_running",
    "hold",
    "in_use",
    "marker_of",
    "release",
    "remove_entry",
    "remove_partial",
    "remove_version",
    "touch",
    "version_folder",
]

MARKER_PREFIX = ".in-use-"
LAST_USE_SECONDS = 60.0
# O_NONBLOCK: a FIFO planted as a marker must not hang the open (no effect on a file).
_READ_ONLY = os.O_RDONLY | os.O_NONBLOCK

_lock = threading.Lock()
_held: dict[str, int] = {}  # version folder -> descriptor holding the shared lock
_touched: dict[str, float] = {}  # entry folder -> monotonic time of the last recorded use
_beat: threading.Thread | None = None


def marker_of(version: Path) -> Path:
    """The marker of a version folder (`<entry>/sha256-<hex>` -> `<entry>/.in-use-<hex>`)."""
    return version.parent / (MARKER_PREFIX + version.name[len(layout.VERSION_PREFIX) :])


def hold(content: Path) -> bool:
    """Mark the version holding `content` as used by this process until it exits.

    Returns whether the content is still there once marked: False means a cleanup removed
    it in between, and the caller fetches again. Without `flock`, or where the marker
    cannot be opened (a read-only cache, which nothing can prune either), the content is
    handed out unmarked.
    """
    version = content.parent
    if not version.name.startswith(layout.VERSION_PREFIX):
        return True  # not a cache version (an `on_disk_temporary` copy)
    key = str(version)
    if key in _held:
        return True
    with _lock:
        if key not in _held:
            fd = _lock_shared(marker_of(version))
            if fd is not None and not os.path.lexists(content):
                os.close(fd)
                return False
            _held[key] = -1 if fd is None else fd
            _start_beat()
    touch(version.parent)
    return True


def release(content: Path) -> None:
    """Forget a hold taken by `hold` (a hand-out that did not happen)."""
    with _lock:
        fd = _held.pop(str(content.parent), -1)
    if fd >= 0:
        os.close(fd)


def touch(entry: Path) -> None:
    """Record a use of `entry`, at most once per process and `LAST_USE_SECONDS`."""
    last = _touched.get(str(entry))
    if last is None or time.monotonic() - last >= LAST_USE_SECONDS:
        _record(entry)


def _record(entry: Path) -> None:
    _touched[str(entry)] = time.monotonic()
    layout.mark_used(entry)


def _lock_shared(marker: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # Windows: no protection, as before
        return None
    # A read-only cache (which nothing can prune either) sees no write at all; a marker
    # already there is still locked, read-only descriptors take `flock` too.
    writable = os.access(marker.parent, os.W_OK)
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT if writable else _READ_ONLY, 0o644)
    except OSError:
        return None
    try:
        # Waits only while a cleanup deletes this very version (a few milliseconds).
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


# -- the cleanup side: `cache prune`, `clear` and `rm` -----------------------------------


def version_folder(version: layout.Version) -> Path:
    """The `sha256-<hex>` folder of a version (its `path` is the content inside)."""
    path = version.path
    return path if path.name.startswith(layout.VERSION_PREFIX) else path.parent


def in_use(version: layout.Version) -> bool:
    """Whether a live process (this one included) holds the version, right now."""
    with _exclusive(marker_of(version_folder(version)), create=False) as free:
        return not free


def download_running(entry: Path) -> bool:
    """Whether a process holds the entry's download lock (a download in progress)."""
    with _exclusive(entry / layout.LOCK_FILE, create=False) as free:
        return not free


def remove_version(version: layout.Version) -> bool:
    """Delete a version unless a live process holds it; whether it is gone."""
    marker = marker_of(version_folder(version))
    with _exclusive(marker, create=True) as free:
        if free:
            layout.delete_version(version)
            with contextlib.suppress(OSError):
                marker.unlink()  # after the version: a new holder then finds it gone
        return free


def remove_partial(partial: layout.Partial) -> bool:
    """Delete a staging folder unless a download runs in its entry; whether it is gone."""
    with _exclusive(partial.path.parent / layout.LOCK_FILE, create=False) as free:
        if free:
            layout.delete_partial(partial)
        return free


def remove_entry(entry: layout.CacheEntry) -> tuple[tuple[layout.Version, ...], int] | None:
    """Delete an entry, or as much of it as no live process uses.

    Returns None when a download runs in it (nothing deleted), else the versions kept
    because a live process holds them (the entry then stays, with its record) and the
    bytes freed.
    """
    with _exclusive(entry.path / layout.LOCK_FILE, create=False) as idle:
        if not idle:
            return None
        # Read again under the lock: a download that finished since the plan's scan may
        # have published a version a live process already holds, which the plan never saw.
        if not os.path.isdir(entry.path):
            return (), 0  # removed by someone else since the plan
        entry = layout.scan_entry(entry.path)
        kept = _remove_entry(entry)
        return kept, entry.size - sum(v.size for v in kept)


def _remove_entry(entry: layout.CacheEntry) -> tuple[layout.Version, ...]:
    with contextlib.ExitStack() as held:
        markers = [marker_of(version_folder(v)) for v in entry.versions]
        free = [held.enter_context(_exclusive(m, create=True)) for m in markers]
        if all(free):
            layout.delete_entry(entry)
            return ()
    kept = tuple(v for v in entry.versions if not remove_version(v))
    for partial in entry.partials:
        layout.delete_partial(partial)  # the entry's lock is ours: no download runs
    return kept


@contextlib.contextmanager
def _exclusive(path: Path, *, create: bool) -> Iterator[bool]:
    """Yield whether an exclusive `flock` on `path` was taken without waiting; held until
    the block ends. A missing file (with `create` False) is free: nobody holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: nothing to ask
        yield True
        return
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        yield True
        return
    except OSError:
        try:
            fd = os.open(path, _READ_ONLY)
        except OSError:  # cannot tell, so assume someone holds it
            yield False
            return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _start_beat() -> None:
    global _beat
    if _beat is None or not _beat.is_alive():
        _beat = threading.Thread(target=_beat_forever, name="daidai-last-use", daemon=True)
        _beat.start()


def _beat_forever() -> None:
    while True:
        time.sleep(LAST_USE_SECONDS)
        for entry in {Path(version).parent for version in list(_held)}:
            with contextlib.suppress(OSError):
                _record(entry)


def _after_fork_in_child() -> None:
    # The child keeps the descriptors (and so the locks) but not the thread.
    global _beat, _lock
    _lock = threading.Lock()
    _beat = None
    if _held:
        _start_beat()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
