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

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from daidai._decorators import Artifact, Predictor, artifact, predictor
    from daidai._manager import ModelManager

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


# The decorators and the manager load on first use (PEP 562): `daidai --help` and
# `python -m daidai` pay only for what they touch (inspect, dataclasses, concurrent.futures
# cost ~40 ms together).
_LAZY = {
    "Artifact": "daidai._decorators",
    "Predictor": "daidai._decorators",
    "artifact": "daidai._decorators",
    "predictor": "daidai._decorators",
    "ModelManager": "daidai._manager",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'daidai' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
