"""Components whose annotations name a component defined further down."""

from __future__ import annotations

from typing import Annotated

from daidai import artifact, predictor


@predictor
def uses_later(x: str, later: Annotated[str, later_artifact]) -> str:
    return f"{x}:{later}"


@artifact
def later_artifact() -> str:
    return "later"
