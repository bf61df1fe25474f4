"""What a manager tears down: generator artifacts and the files handed to components.

Each entry of a manager's teardown list is one of these, run in reverse order of creation:
a sync generator artifact (cleanup after its `yield`), an async one (see `daidai._asyncio`),
or the files handed to one artifact, which live as long as it does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

from daidai.errors import DaidaiError

__all__ = ["Files", "close_all", "finish"]

logger = logging.getLogger(__name__)


class Files:
    """The handles and generators injected into one artifact."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def finish(self) -> BaseException | None:
        close_all(self.values)
        return None


def close_all(values: Iterable[Any]) -> None:
    """Close handed-out handles and generators, newest first; one failure stops none."""
    for value in reversed(list(values)):
        try:
            value.close()
        except Exception:
            logger.warning("closing %r failed", value, exc_info=True)


def finish(entry: Any) -> BaseException | None:
    """Run one teardown entry; return the error it raised, if any."""
    if not inspect.isgenerator(entry):
        return entry.finish()  # type: ignore[no-any-return]
    try:
        next(entry)
    except StopIteration:
        return None
    except Exception as exc:
        return exc
    entry.close()
    return DaidaiError("a generator artifact must yield exactly once; it yielded again")
