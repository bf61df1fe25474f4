"""Reading a source without the cache (`in_memory`, `in_memory_stream`, `no_cache`) and
turning bytes, files and streams into the seven types a parameter can ask for."""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

from daidai._settings import Settings
from daidai.errors import ChecksumMismatchError, OfflineError
from daidai.files._source import (
    LOCAL_PROTOCOLS,
    Origin,
    filesystem,
    open_source,
    protocol_of,
    source_errors,
    stat_source,
)
from daidai.files._transfer import MappedReader
from daidai.files.fetch import FetchRequest, options_for
from daidai.files.hashing import CHUNK_SIZE, format_checksum, new_hasher
from daidai.files.spec import FileType

__all__ = ["from_bytes", "from_path", "from_stream", "open_stream", "read_all", "text_options"]

_TEXT_KEYS = ("encoding", "errors", "newline")
_STREAM_BUFFER = 1024 * 1024
GENERATOR_CHUNK = 1024 * 1024  # what Generator[bytes] yields: small enough to stay flat


def text_options(open_options: dict[str, Any]) -> dict[str, Any]:
    """`open()` keyword arguments for text, UTF-8 unless `open_options` says otherwise."""
    options = {k: open_options[k] for k in _TEXT_KEYS if k in open_options}
    options.setdefault("encoding", "utf-8")
    return options


def chunk_size(open_options: dict[str, Any]) -> int:
    """The chunk size for `Generator[bytes]` (`open_options["chunk_size"]`, default 1 MiB)."""
    size = open_options.get("chunk_size", GENERATOR_CHUNK)
    return size if isinstance(size, int) and size > 0 else GENERATOR_CHUNK


def _origin(request: FetchRequest, options: dict[str, Any]) -> Origin:
    return Origin(request.uri, request.component, request.parameter, options)


def _check_online(request: FetchRequest, settings: Settings, origin: Origin) -> None:
    if settings.offline and protocol_of(request.uri) not in LOCAL_PROTOCOLS:
        raise origin.error(
            OfflineError,
            "offline mode is on (DAIDAI_OFFLINE) and this strategy reads the source itself; "
            "use cache_strategy='on_disk' and run `daidai fetch` first",
        )


def open_stream(request: FetchRequest, settings: Settings) -> io.BufferedReader:
    """A buffered binary stream straight from the source; errors come out as `DaidaiError`s."""
    options = options_for(request.uri, settings, request.storage_options)
    origin = _origin(request, options)
    _check_online(request, settings, origin)
    with source_errors(origin):
        fs, path = filesystem(request.uri, options)
        info = stat_source(fs, path)
        src = open_source(fs, path, info.size, CHUNK_SIZE)
    return io.BufferedReader(MappedReader(src, origin), buffer_size=_STREAM_BUFFER)


def read_all(request: FetchRequest, settings: Settings) -> bytes:
    """The whole content as one `bytes`, verified against `request.checksum` if set.

    Chunks go into a `BytesIO`, whose `getvalue()` hands over its buffer without a copy,
    so the peak is one copy of the file (joining a list of chunks needs two).
    """
    hasher = new_hasher()
    buffer = io.BytesIO()
    with open_stream(request, settings) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
            buffer.write(chunk)
    data = buffer.getvalue()
    del buffer
    actual = format_checksum(hasher)
    if request.checksum and actual != request.checksum:
        raise ChecksumMismatchError(
            uri=request.uri,
            expected=request.checksum,
            actual=actual,
            component=request.component,
            parameter=request.parameter,
        )
    return data


def from_path(path: Path, file_type: str, open_options: dict[str, Any]) -> Any:
    """The value of `file_type` for a file on disk (handles are the caller's to track)."""
    if file_type == FileType.PATH:
        return path
    if file_type == FileType.BYTES:
        return path.read_bytes()
    if file_type == FileType.STR:
        with path.open("r", **text_options(open_options)) as fh:
            return fh.read()
    if file_type == FileType.BINARY_IO:
        return path.open("rb")
    if file_type == FileType.TEXT_IO:
        return path.open("r", **text_options(open_options))
    if file_type == FileType.TEXT_LINES:
        return _file_lines(path, text_options(open_options))
    return _file_chunks(path, chunk_size(open_options))


def _file_lines(path: Path, options: dict[str, Any]) -> Generator[str, None, None]:
    with path.open("r", **options) as fh:
        yield from fh


def _file_chunks(path: Path, size: int) -> Generator[bytes, None, None]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def from_bytes(data: bytes, file_type: str, open_options: dict[str, Any]) -> Any:
    """The value of `file_type` for content held in memory (fresh buffers each call)."""
    if file_type == FileType.BYTES:
        return data
    if file_type == FileType.BINARY_IO:
        return io.BytesIO(data)
    if file_type == FileType.BYTE_CHUNKS:
        return _memory_chunks(data, chunk_size(open_options))
    options = text_options(open_options)
    text = data.decode(options["encoding"], options.get("errors", "strict"))
    if file_type == FileType.STR:
        return text
    stream = io.StringIO(text, newline=options.get("newline", "\n"))
    if file_type == FileType.TEXT_IO:
        return stream
    return _lines(stream)


def _memory_chunks(data: bytes, size: int) -> Generator[bytes, None, None]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def _lines(stream: Iterator[str]) -> Generator[str, None, None]:
    yield from stream


def from_stream(stream: io.BufferedReader, file_type: str, open_options: dict[str, Any]) -> Any:
    """The value of `file_type` for a source stream: the stream itself, text or a generator."""
    if file_type == FileType.BINARY_IO:
        return stream
    if file_type == FileType.BYTE_CHUNKS:
        return _stream_chunks(stream, chunk_size(open_options))
    text: IO[str] = io.TextIOWrapper(stream, **text_options(open_options))
    if file_type == FileType.TEXT_IO:
        return text
    return _stream_lines(text)


def _stream_chunks(stream: IO[bytes], size: int) -> Generator[bytes, None, None]:
    with stream:
        while chunk := stream.read(size):
            yield chunk


def _stream_lines(stream: IO[str]) -> Generator[str, None, None]:
    with stream:
        yield from stream
