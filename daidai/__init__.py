"""daidai: declare what a model needs in decorated Python; daidai builds, fetches and caches it.

Example:
    >>> from typing import Annotated
    >>> from daidai import artifact, predictor
    >>> @artifact
    ... def vocabulary() -> set[str]:
    ...     return {"orange", "lemon"}
    >>> @predictor
    ... def is_citrus(word: str, vocab: Annotated[set[str], vocabulary]) -> bool:
    ...     return word in vocab
    >>> is_citrus("orange")
    True
"""

from __future__ import annotations

from daidai._decorators import Artifact, Predictor, artifact, predictor
from daidai._manager import ModelManager
from daidai.errors import (
    CacheError,
    ChecksumMismatchError,
    ConfigError,
    CycleError,
    DaidaiError,
    DeclarationError,
    FileError,
    FileFetchError,
    IntegrityError,
    LockfileError,
    OfflineError,
    SourceNotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "CacheError",
    "ChecksumMismatchError",
    "ConfigError",
    "CycleError",
    "DaidaiError",
    "DeclarationError",
    "FileError",
    "FileFetchError",
    "IntegrityError",
    "LockfileError",
    "ModelManager",
    "OfflineError",
    "Predictor",
    "SourceNotFoundError",
    "__version__",
    "artifact",
    "predictor",
]
