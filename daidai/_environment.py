"""Following the environment: the default manager re-reads settings when they change (SPEC §2).

A change of a `DAIDAI_*` variable or of the current folder (where `daidai.toml` is found)
bumps `changes`, seen through Python's audit events (`os.putenv`, `os.unsetenv`,
`os.chdir`: what `os.environ[...] = ...`, `monkeypatch.setenv` and `os.chdir` raise). The
warm call path therefore checks nothing: a change clears what was cached from the old
settings, and the next file resolved compares one integer. An audit hook costs about
0.1 µs per audited event (an `open()`, an import) and cannot be removed, so it is
installed only once the default manager is in use.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["changes", "watch"]

# Bumped on each change; a manager compares it with the value its settings were read at.
changes = 0
_callbacks: list[Callable[[], None]] = []
_lock = threading.Lock()
_PREFIX = "DAIDAI_"


def watch(callback: Callable[[], None]) -> None:
    """Call `callback` (cheap, never raising) after each change; installs the hook once."""
    with _lock:
        if not _callbacks:
            sys.addaudithook(_hook)
        _callbacks.append(callback)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited event in the process: keep the common case one comparison.
    if event not in ("os.putenv", "os.unsetenv", "os.chdir"):
        return
    if event != "os.chdir":
        name = args[0].decode(errors="replace") if isinstance(args[0], bytes) else str(args[0])
        if not name.startswith(_PREFIX):
            return
    global changes
    changes += 1
    for callback in list(_callbacks):
        callback()
