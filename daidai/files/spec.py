"""File declarations: what a parameter annotated with a URI asks for.

`FileSpec` is the frozen record built when a decorator reads `Annotated[T, "uri", {...}]`.
It imports nothing heavy: fsspec loads only when a file is fetched.
"""

from __future__ import annotations

import codecs
import collections.abc
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from daidai._settings import STRATEGIES
from daidai.errors import DeclarationError

__all__ = [
    "FILE_TYPES",
    "TRANSFER_OPTIONS",
    "FileSpec",
    "FileType",
    "check_strategy",
    "file_type_of",
    "make_spec",
]


class FileType:
    """The seven types a file dependency can be handed out as."""

    PATH = "Path"
    STR = "str"
    BYTES = "bytes"
    TEXT_IO = "TextIO"
    BINARY_IO = "BinaryIO"
    TEXT_LINES = "Generator[str]"
    BYTE_CHUNKS = "Generator[bytes]"


FILE_TYPES = (
    FileType.PATH,
    FileType.STR,
    FileType.BYTES,
    FileType.TEXT_IO,
    FileType.BINARY_IO,
    FileType.TEXT_LINES,
    FileType.BYTE_CHUNKS,
)

# Which types each strategy can hand out (SPEC §1.3).
_ALLOWED: dict[str, frozenset[str]] = {
    "on_disk": frozenset(FILE_TYPES),
    "on_disk_temporary": frozenset(FILE_TYPES),
    "in_memory": frozenset(FILE_TYPES) - {FileType.PATH},
    "in_memory_stream": frozenset(
        {FileType.TEXT_IO, FileType.BINARY_IO, FileType.TEXT_LINES, FileType.BYTE_CHUNKS}
    ),
    "no_cache": frozenset(FILE_TYPES) - {FileType.PATH},
}

_OPTION_KEYS = (
    "cache_strategy",
    "strategy",
    "storage_options",
    "open_options",
    "force_download",
    "checksum",
    "connections",
    "retries",
    "read_timeout",
)
# The transfer settings of SPEC §5 that a file may set for itself, over daidai.toml's.
TRANSFER_OPTIONS = ("connections", "retries", "read_timeout")

_GENERATOR_ORIGINS = (
    collections.abc.Generator,
    collections.abc.Iterator,
    collections.abc.Iterable,
)


@dataclass(frozen=True)
class FileSpec:
    """A file dependency as declared.

    Attributes:
        uri: the source, any fsspec URI or a local path.
        type: one of `FILE_TYPES`.
        strategy: the cache strategy named in the annotation, or None to use the
            configured default (`default_cache_strategy`).
        storage_options: fsspec options for this file, over the per-protocol ones.
        open_options: options for opening the file (`encoding`, `errors`, `newline`).
        force_download: fetch again even when cached (once per manager).
        checksum: an inline pin, `sha256:<hex>`.
        transfer: this file's own transfer settings (`connections`, `retries`,
            `read_timeout` in seconds), validated; those not given are absent.
    """

    uri: str
    type: str
    strategy: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    open_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    force_download: bool = False
    checksum: str | None = None
    transfer: dict[str, int | float] = field(default_factory=dict, hash=False, compare=False)

    def strategy_or(self, default: str) -> str:
        """The strategy in force, given the configured default."""
        return self.strategy or default


def file_type_of(annotation: Any) -> str | None:
    """Map a parameter's base type to one of `FILE_TYPES`, or None if it is not one."""
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, Path)):
        return FileType.PATH
    if annotation is str:
        return FileType.STR
    if annotation is bytes:
        return FileType.BYTES
    if annotation in (TextIO, typing.IO[str]):
        return FileType.TEXT_IO
    if annotation in (BinaryIO, typing.IO[bytes], IO):
        return FileType.BINARY_IO
    origin = typing.get_origin(annotation)
    if origin in _GENERATOR_ORIGINS:
        args = typing.get_args(annotation)
        if args and args[0] is str:
            return FileType.TEXT_LINES
        if args and args[0] is bytes:
            return FileType.BYTE_CHUNKS
    return None


def check_strategy(strategy: str, file_type: str) -> str | None:
    """Return why `strategy` cannot hand out `file_type`, or None if it can."""
    if strategy not in STRATEGIES:
        return f"unknown cache strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
    if file_type not in _ALLOWED[strategy]:
        possible = [s for s in STRATEGIES if file_type in _ALLOWED[s]]
        return (
            f"strategy {strategy!r} cannot hand out {file_type}; "
            f"use one of {', '.join(possible)} or another type"
        )
    return None


def make_spec(
    uri: str, annotation: Any, options: dict[str, Any] | None, *, component: str, parameter: str
) -> FileSpec:
    """Build a `FileSpec` from an annotation, validating it.

    Raises:
        DeclarationError: the type, an option or the strategy/type pair is invalid.
    """

    def fail(message: str) -> DeclarationError:
        return DeclarationError(message, component=component, parameter=parameter)

    file_type = file_type_of(annotation)
    if file_type is None:
        raise fail(
            f"a file dependency ({uri!r}) must be typed as one of {', '.join(FILE_TYPES)}, "
            f"not {getattr(annotation, '__name__', annotation)!r}"
        )
    if not uri:
        raise fail("the file URI is empty")
    if "\x00" in uri:
        raise fail("the file URI contains a NUL byte")
    options = dict(options or {})
    unknown = sorted(set(options) - set(_OPTION_KEYS))
    if unknown:
        raise fail(f"unknown file option(s) {', '.join(unknown)}; valid: {', '.join(_OPTION_KEYS)}")
    if "strategy" in options and "cache_strategy" in options:
        raise fail("give either 'cache_strategy' or its alias 'strategy', not both")
    strategy = options.get("cache_strategy", options.get("strategy"))
    if strategy is not None and not isinstance(strategy, str):
        raise fail(f"cache strategy must be a string, got {strategy!r}")
    if strategy is not None and (why := check_strategy(strategy, file_type)):
        raise fail(why)
    for key in ("storage_options", "open_options"):
        if not isinstance(options.get(key, {}), dict):
            raise fail(f"{key!r} must be a dict, got {options[key]!r}")
    _check_open_options(options.get("open_options", {}), fail)
    force = options.get("force_download", False)
    if not isinstance(force, bool):
        raise fail(f"'force_download' must be true or false, got {force!r}")
    checksum = options.get("checksum")
    if checksum is not None:
        checksum = _check_checksum(checksum, fail)
    return FileSpec(
        uri=uri,
        type=file_type,
        strategy=strategy,
        storage_options=dict(options.get("storage_options", {})),
        open_options=dict(options.get("open_options", {})),
        force_download=force,
        checksum=checksum,
        transfer=_transfer_options(options, fail),
    )


def _transfer_options(options: dict[str, Any], fail: Any) -> dict[str, int | float]:
    """`connections` and `retries` as ints (at least 1, at least 0), `read_timeout` as
    positive seconds (a number, or a duration such as `"30s"`, as in daidai.toml)."""
    found: dict[str, int | float] = {}
    for key, least in (("connections", 1), ("retries", 0)):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise fail(f"{key!r} must be a whole number of at least {least}, got {value!r}")
            found[key] = value
    if "read_timeout" in options:
        found["read_timeout"] = _seconds(options["read_timeout"], fail)
    return found


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def _seconds(value: Any, fail: Any) -> float:
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds is None or not 0 < seconds < float("inf"):
        raise fail(
            f"'read_timeout' must be a positive number of seconds or a duration such as "
            f"'30s', got {value!r}"
        )
    return seconds


_NEWLINES = (None, "", "\n", "\r", "\r\n")


def _check_open_options(open_options: dict[str, Any], fail: Any) -> None:
    """Reject what `open()` would reject, now rather than at the first read."""
    size = open_options.get("chunk_size", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise fail(f"'chunk_size' in open_options must be a positive number of bytes, got {size!r}")
    encoding = open_options.get("encoding", "utf-8")
    if not _is_text_encoding(encoding):
        raise fail(f"unknown text encoding {encoding!r} in open_options; use one such as 'utf-8'")
    errors = open_options.get("errors", "strict")
    if not _is_error_handler(errors):
        raise fail(
            f"unknown error handler {errors!r} in open_options; "
            "use 'strict', 'replace', 'ignore' or another registered handler"
        )
    if open_options.get("newline") not in _NEWLINES:
        raise fail(
            f"'newline' in open_options must be one of {', '.join(map(repr, _NEWLINES))}, "
            f"got {open_options['newline']!r}"
        )


def _is_text_encoding(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        # What `open()` itself checks: rot13 and zlib are codecs, but not text encodings.
        return bool(codecs.lookup(name)._is_text_encoding)
    except LookupError:
        return False


def _is_error_handler(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        codecs.lookup_error(name)
    except LookupError:
        return False
    return True


def _check_checksum(value: Any, fail: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:"):
        digest = value[len("sha256:") :].lower()
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            return "sha256:" + digest
    raise fail(f"'checksum' must be 'sha256:<64 hex digits>', got {value!r}")
