"""Artifacts and predictors of the example project.

Files are local paths here so that the example runs anywhere; in production they would be
`s3://...` or `https://...` URIs, and nothing else would change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor


@artifact
def lexicon(table: Annotated[Path, "models/lexicon.tsv"]) -> dict[str, float]:
    """Word scores, loaded once from the cached file."""
    scores = {}
    for line in table.read_text().splitlines():
        word, score = line.split("\t")
        scores[word] = float(score)
    return scores


@artifact
def labels(
    lines: Annotated[Iterator[str], "models/labels.txt", {"strategy": "in_memory"}],
) -> list[str]:
    """Class names, read into memory."""
    return [line.strip() for line in lines if line.strip()]


@predictor
def classify(
    text: str,
    scores: Annotated[dict[str, float], lexicon],
    names: Annotated[list[str], labels],
    threshold: float = 0.5,
) -> dict[str, object]:
    """Label a text as negative, neutral or positive."""
    total = sum(scores.get(word.strip(".,!?").lower(), 0.0) for word in text.split())
    index = 0 if total <= -threshold else 2 if total >= threshold else 1
    return {"label": names[index], "score": total}


@predictor
def ask(message: str, scores: Annotated[dict[str, float], lexicon]) -> str:
    """Answer in words: how does the message sound?"""
    result = classify(message)
    return f"{message!r} sounds {result['label']} (score {result['score']:+.1f})"
