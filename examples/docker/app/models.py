"""A sentiment model whose lexicon is served over HTTP (or S3, GCS...).

`MODELS_URL` exists so that the recipe's test can point it at a local server; a real project
writes its URIs out in full.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor

MODELS_URL = os.environ.get("MODELS_URL", "https://models.example.com/sentiment")


@artifact
def lexicon(table: Annotated[Path, f"{MODELS_URL}/lexicon.tsv"]) -> dict[str, float]:
    """Word -> polarity, from the cached file."""
    rows = (line.split("\t") for line in table.read_text().splitlines() if line.strip())
    return {word: float(score) for word, score in rows}


@predictor
def sentiment(text: str, words: Annotated[dict[str, float], lexicon]) -> float:
    """Mean polarity of the known words (0.0 when none is known)."""
    tokens = text.lower().replace(",", " ").replace(".", " ").split()
    scores = [words[w] for w in tokens if w in words]
    return round(sum(scores) / len(scores), 3) if scores else 0.0
