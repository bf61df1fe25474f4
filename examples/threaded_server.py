"""Serving from many threads: one shared, preloaded manager, or one manager per thread.

    python examples/threaded_server.py

Shared (the default choice for large models): preload everything, then start the threads
inside the `with` block; they find the manager and its objects and build nothing. Per-thread
managers isolate objects (each thread builds its own) while sharing the disk cache, for
objects that are not thread-safe.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

from daidai import ModelManager, artifact, predictor

LEXICON = Path(__file__).resolve().with_name("data") / "lexicon.tsv"
BUILDS: list[int] = []  # thread id of every build of `lexicon`


@artifact
def lexicon(table: Annotated[Path, str(LEXICON)]) -> dict[str, float]:
    """Word -> polarity."""
    BUILDS.append(threading.get_ident())
    rows = (line.split("\t") for line in table.read_text().splitlines() if line.strip())
    return {word: float(score) for word, score in rows}


@predictor
def sentiment(text: str, words: Annotated[dict[str, float], lexicon]) -> float:
    """Mean polarity of the known words (0.0 when none is known)."""
    scores = [words[w] for w in text.lower().replace(".", " ").split() if w in words]
    return sum(scores) / len(scores) if scores else 0.0


def serve_shared(requests: list[str], *, workers: int = 8) -> list[float]:
    """Answer `requests` on a thread pool sharing one preloaded manager."""
    with ModelManager([sentiment], namespace="shared"), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(sentiment, requests))


def serve_per_thread(requests: list[str], *, workers: int = 4) -> list[float]:
    """Answer `requests` in `workers` chunks, each thread with its own manager for its chunk."""
    chunks = [requests[i::workers] for i in range(workers)]

    def handle(chunk: list[str]) -> list[float]:
        # A thread that entered a manager uses it, whatever other threads do.
        with ModelManager(namespace=f"thread-{threading.get_ident()}"):
            return [sentiment(text) for text in chunk]

    with ThreadPoolExecutor(workers) as pool:
        answered = list(pool.map(handle, chunks))
    results = [0.0] * len(requests)
    for i, chunk_results in enumerate(answered):
        results[i::workers] = chunk_results
    return results


if __name__ == "__main__":
    texts = ["great food", "terrible service", "fine"] * 100
    print(f"shared: {sum(serve_shared(texts)):+.1f}, builds: {len(BUILDS)}")
    BUILDS.clear()
    print(f"per thread: {sum(serve_per_thread(texts)):+.1f}, builds: {len(BUILDS)}")
