"""A child process for the fault suite: loads files, runs the CLI, writes lockfiles.

Run as `python tests/faults/child.py MODE ARGS...` with the repository on `PYTHONPATH`:

- `load URL [GO]`: fetch URL through the cache and print `<downloaded> <sha256>` of the
  bytes read from the cached path. With GO, print `ready` once imported and wait for the
  file GO to exist first, so that many children miss the cache at the same instant.
- `cli ARGS...`: run `daidai ARGS...` (as `python -m daidai` would).
- `lockwrite PATH N`: rewrite the lockfile PATH N times with entries of varying length.

With `FAULTS_LYING_LOCKS=1` in the environment, `flock` and filelock's acquire and release
do nothing and report success, as `flock` does on some NFS and Lustre mounts: every
process "holds" every lock at once. This is a test-side patch; daidai has no switch for it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time


def lie_about_locks() -> None:
    """Make every lock succeed at once without excluding anyone: `flock` itself (which
    daidai takes directly when a lock is free) and filelock's acquire and release."""
    import fcntl

    import filelock

    fcntl.flock = lambda fd, operation: None

    def acquire(self: filelock.BaseFileLock, *args: object, **kwargs: object) -> object:
        return self

    def release(self: filelock.BaseFileLock, *args: object, **kwargs: object) -> None:
        return None

    for cls in {filelock.BaseFileLock, filelock.FileLock}:
        cls.acquire = acquire  # type: ignore[assignment,method-assign]
        cls.release = release  # type: ignore[assignment,method-assign]


def load(url: str, go: str | None) -> None:
    from daidai._settings import load_settings
    from daidai.files.fetch import FetchRequest, fetch

    settings = load_settings()
    if go is not None:
        # Import the filesystem layer (fsspec, aiohttp: ~1 s under load) before saying ready,
        # so that every child starts its download at the go; left to after the go, the
        # first child through its imports could finish before the others begin.
        from daidai.files._source import filesystem

        filesystem(url, {})
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.001)
    result = fetch(FetchRequest(url), settings=settings)
    digest = hashlib.sha256(result.path.read_bytes()).hexdigest()
    print(result.downloaded, digest, flush=True)


def lockwrite(path: str, count: int) -> None:
    from daidai.files.lockfile import LockEntry, write_lockfile

    for i in range(count):
        entries = [
            LockEntry(
                uri=f"http://h/{j}-{'x' * (i % 50)}.bin", checksum="sha256:" + "a" * 64, size=j
            )
            for j in range(1 + i % 40)
        ]
        write_lockfile(path, entries)


def main(argv: list[str]) -> int:
    if os.environ.get("FAULTS_LYING_LOCKS") == "1":
        lie_about_locks()
    mode, args = argv[0], argv[1:]
    if mode == "load":
        load(args[0], args[1] if len(args) > 1 else None)
        return 0
    if mode == "lockwrite":
        lockwrite(args[0], int(args[1]))
        return 0
    if mode == "cli":
        from daidai.cli import main as cli_main

        sys.argv = ["daidai", *args]
        return int(cli_main() or 0)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
