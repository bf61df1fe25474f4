"""A FastAPI service whose models live as long as the app: built at startup, closed at shutdown.

    pip install 'daidai[examples]' uvicorn
    uvicorn fastapi_service:app --app-dir examples

The `lifespan` enters a `ModelManager` that preloads every predictor the routes use, so the
first request is as fast as the others and a missing model file fails the deploy, not a
request. Sync routes run in FastAPI's thread pool and async routes in the event loop; both see
the manager (it is the most recently entered one in the process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel

from daidai import ModelManager, artifact, predictor

LEXICON = Path(__file__).resolve().with_name("data") / "lexicon.tsv"
EVENTS: list[str] = []  # what happened to the models, for the curious (and the tests)


@artifact
def lexicon(table: Annotated[Path, str(LEXICON)]) -> dict[str, float]:
    """Word -> polarity, loaded once per manager."""
    EVENTS.append("lexicon loaded")
    rows = (line.split("\t") for line in table.read_text().splitlines() if line.strip())
    return {word: float(score) for word, score in rows}


class Limiter:
    """An async resource with a cleanup, as a connection pool or an HTTP client would be."""

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)


@artifact
async def limiter(concurrency: int = 4) -> AsyncIterator[Limiter]:
    """Created on first use in the event loop; closed when the app shuts down."""
    EVENTS.append("limiter opened")
    yield Limiter(concurrency)
    EVENTS.append("limiter closed")


@predictor
def sentiment(text: str, words: Annotated[dict[str, float], lexicon]) -> float:
    """Mean polarity of the known words (0.0 when none is known)."""
    scores = [words[w] for w in text.lower().replace(".", " ").split() if w in words]
    return sum(scores) / len(scores) if scores else 0.0


@predictor
async def sentiment_limited(text: str, gate: Annotated[Limiter, limiter]) -> float:
    """The same score, with at most `concurrency` requests computing at once."""
    async with gate.semaphore:
        return sentiment(text)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with ModelManager([sentiment], namespace="api") as manager:
        app.state.models = manager
        yield


app = FastAPI(lifespan=lifespan)


class Review(BaseModel):
    text: str


@app.post("/sentiment")
def score(review: Review) -> dict[str, float]:
    return {"score": sentiment(review.text)}


@app.post("/sentiment/limited")
async def score_limited(review: Review) -> dict[str, float]:
    return {"score": await sentiment_limited(review.text)}


@app.get("/health")
def health() -> dict[str, str]:
    return {"models": repr(app.state.models)}
