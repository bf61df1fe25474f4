"""Batch scoring over a Dask bag: each worker process loads the lexicon once.

    pip install 'daidai[dask]'
    python examples/batch_dask.py reviews.txt      # one review per line

`DaidaiWorkerPlugin` gives every worker process a `ModelManager` that preloads `sentiment`
(and its lexicon file, downloaded once into the cache that the workers share) when the worker
starts, and closes it when the worker stops. Tasks then call the predictor as usual.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor

LEXICON = Path(__file__).with_name("data") / "lexicon.tsv"


@artifact
def lexicon(source: Annotated[str, LEXICON.as_uri()]) -> dict[str, float]:
    """Word -> polarity, from a tab-separated file (any fsspec URI works: s3://, gs://...)."""
    pairs = (line.split("\t") for line in source.splitlines() if line.strip())
    return {word: float(score) for word, score in pairs}


@predictor
def sentiment(text: str, words: Annotated[dict[str, float], lexicon]) -> float:
    """Mean polarity of the known words in `text` (0.0 when none is known)."""
    scores = [words[w] for w in text.lower().replace(".", " ").split() if w in words]
    return sum(scores) / len(scores) if scores else 0.0


def score_reviews(reviews: list[str], *, workers: int = 2) -> list[tuple[str, float]]:
    """Score `reviews` on a local cluster of worker processes."""
    import dask.bag as db
    from distributed import Client, LocalCluster

    from daidai.integrations.dask import DaidaiWorkerPlugin

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(DaidaiWorkerPlugin([sentiment], namespace="batch"))
        bag = db.from_sequence(reviews, npartitions=workers * 2)
        scored: list[tuple[str, float]] = bag.map(lambda r: (r, sentiment(r))).compute()
    return scored


def main(argv: list[str]) -> None:
    """Score the reviews in the file named by `argv[0]` (or three samples) and print them."""
    reviews = Path(argv[0]).read_text().splitlines() if argv else [
        "Great food and friendly staff.",
        "Terrible service, cold soup.",
        "It was fine.",
    ]  # fmt: skip
    for review, score in score_reviews(reviews):
        print(f"{score:+.2f}  {review}")


if __name__ == "__main__":
    main(sys.argv[1:])
