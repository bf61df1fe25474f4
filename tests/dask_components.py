"""Components shipped to Dask workers: importable by module name, so they pickle by reference."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor

BUCKET = "daidai-dask"
WEIGHTS = f"s3://{BUCKET}/model/weights.bin"


def _record(log: str, event: str) -> None:
    with open(log, "a", encoding="utf-8") as fh:  # one short write: atomic with O_APPEND
        fh.write(f"{event} {os.getpid()}\n")


@artifact
def model(weights: Annotated[Path, WEIGHTS], log: str) -> Iterator[tuple[Path, int]]:
    """Reads the weights once per process; records its build and teardown in `log`."""
    _record(log, "build")
    yield weights, len(weights.read_bytes())
    _record(log, "close")


@predictor
def score(x: int, m: Annotated[tuple[Path, int], model]) -> tuple[int, int, str]:
    """Returns the worker's PID, a result using the model, and where its file was cached."""
    path, size = m
    return os.getpid(), x + size, str(path)
