"""Module-level components for tests that need importable, picklable ones."""

from __future__ import annotations

import os
from typing import Annotated

from daidai import artifact, predictor

OFFSET = 100


@artifact
def offset() -> int:
    """A constant artifact."""
    return OFFSET


@artifact
def counter() -> list[int]:
    """Records the PID of every process that built it."""
    return [os.getpid()]


@predictor
def square(x: int, offset: Annotated[int, offset]) -> int:
    """Square a number, plus the offset artifact."""
    return x * x + offset
