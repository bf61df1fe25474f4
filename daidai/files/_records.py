"""Reading daidai's small records in a cache others may write (`ref.json`, `lockfiles/*.json`,
`CACHEDIR.TAG`): a planted FIFO, device, link or megabytes of nesting must never hang or
crash a command, only make the record unreadable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

__all__ = ["MAX_RECORD_BYTES", "read_json", "read_record"]

MAX_RECORD_BYTES = 1 << 20  # a ref.json with 16 older records is a few KiB
# O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting forever;
# O_NOFOLLOW: a planted link is refused, never read through.
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def read_record(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> bytes | None:
    """The bytes of a regular file (not a link, FIFO or device) of at most `max_bytes`, or
    None for anything else, missing or unreadable."""
    try:
        fd = os.open(path, _FLAGS)
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        data = os.read(fd, max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= max_bytes else None


def read_json(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """The JSON value of a record, or None when it is not a readable, well-formed record
    (deep nesting included: `json` raises RecursionError for it)."""
    data = read_record(path, max_bytes)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
