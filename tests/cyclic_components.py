"""Two artifacts that depend on each other (forward references make the loop possible)."""

from __future__ import annotations

from typing import Annotated

from daidai import artifact


@artifact
def first(x: Annotated[int, second]) -> int:
    return x


@artifact
def second(x: Annotated[int, first]) -> int:
    return x
