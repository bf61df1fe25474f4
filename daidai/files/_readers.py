"""Reading a source without the cache (`in_memory`, `in_memory_stream`, `no_cache`) and
turning bytes, files and streams into the seven types a parameter can ask for."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

from daidai._settings import Settings
from daidai.errors import ChecksumMismatchError, DeclarationError, FileError, OfflineError
from daidai.files._source import (
    LOCAL_PROTOCOLS,
    Origin,
    filesystem,
    open_source,
    protocol_of,
    source_errors,
    stat_source,
)
from daidai.files._text import decode, decoding, open_options_for
from daidai.files._transfer import Bound, MappedReader
from daidai.files.fetch import FetchRequest, options_for, source_uri
from daidai.files.hashing import CHUNK_SIZE, format_checksum, new_hasher
from daidai.files.layout import strip_credentials
from daidai.files.spec import FileType

__all__ = [
    "folder_error",
    "from_bytes",
    "from_path",
    "from_stream",
    "open_stream",
    "origin_of",
    "read_all",
]

_STREAM_BUFFER = 1024 * 1024
GENERATOR_CHUNK = 1024 * 1024  # what Generator[bytes] yields: small enough to stay flat


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


def folder_error(uri: str, component: str | None, parameter: str | None) -> DeclarationError:
    """The one error for a folder declared as anything but a `Path`, whatever the strategy
    (the strategy may come from `daidai.toml`, so it can only be told at first use)."""
    return DeclarationError(
        f"{strip_credentials(uri)} is a folder, which is handed out only as a Path (under "
        "on_disk or on_disk_temporary); declare the parameter as Path",
        component=component,
        parameter=parameter,
    )


def open_stream(request: FetchRequest, settings: Settings) -> io.BufferedReader:
    """A buffered binary stream straight from the source; errors come out as `DaidaiError`s.

    With `request.checksum`, the stream hashes what it hands out and raises
    `ChecksumMismatchError` in place of its end when the content differs.
    """
    options = options_for(request.uri, settings, request.storage_options)
    origin = _origin(request, options)
    _check_online(request, settings, origin)
    with source_errors(origin):
        fs, path = filesystem(source_uri(request.uri, settings), options)
        info = stat_source(fs, path)
        if info.kind == "directory":
            raise folder_error(request.uri, request.component, request.parameter)
        src = open_source(fs, path, info.size, CHUNK_SIZE)
    raw: io.RawIOBase = MappedReader(src, origin, fs)
    if request.checksum:
        raw = _Verified(raw, request)
    return io.BufferedReader(raw, buffer_size=_STREAM_BUFFER)


class _Verified(io.RawIOBase):
    """A stream that hashes what passes through it and refuses to end with wrong content,
    or to go on past the pinned size (an endless body, a gzip bomb: SPEC §8)."""

    def __init__(self, raw: io.RawIOBase, request: FetchRequest) -> None:
        super().__init__()
        self._raw = raw
        self._request = request
        self._hasher = new_hasher()
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view)
        if n:
            self._seen += n
            if self._request.size is not None and self._seen > self._request.size:
                pinned = Bound(self._request.size, self._request.checksum)
                raise pinned.exceeded(_origin(self._request, {}))
            self._hasher.update(view[:n])
        elif len(view):  # the end: only the pinned content may end normally
            self._check()
        return n or 0

    def check_rest(self) -> None:
        """Read what is left and raise `ChecksumMismatchError` if the content is not the
        pinned one: when another error stops the reader first (undecodable text), a wrong
        pin is the error to tell, since it says what to do."""
        buffer = bytearray(CHUNK_SIZE)
        while self.readinto(buffer):
            pass

    def readall(self) -> bytes:
        # RawIOBase.readall reads 8 KiB at a time: one ranged GET each from an object store.
        return _read_in_chunks(self)

    def _check(self) -> None:
        actual = format_checksum(self._hasher)
        if actual != self._request.checksum:
            raise ChecksumMismatchError(
                uri=strip_credentials(self._request.uri),
                expected=self._request.checksum or "",
                actual=actual,
                component=self._request.component,
                parameter=self._request.parameter,
                hint="the content read so far must not be used; if the source changed on "
                "purpose, run `daidai fetch` to update the lockfile or the inline checksum",
            )

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def _read_in_chunks(raw: io.RawIOBase) -> bytes:
    out = bytearray()
    while chunk := raw.read(CHUNK_SIZE):
        out += chunk
    return bytes(out)


def read_all(request: FetchRequest, settings: Settings) -> bytes:
    """The whole content as one `bytes`, verified against `request.checksum` if set.

    Chunks go into a `BytesIO`, whose `getvalue()` hands over its buffer without a copy,
    so the peak is one copy of the file (joining a list of chunks needs two).
    """
    buffer = io.BytesIO()
    with open_stream(request, settings) as stream:  # the stream checks the pin at its end
        while chunk := stream.read(CHUNK_SIZE):
            buffer.write(chunk)
    data = buffer.getvalue()
    del buffer
    return data


def origin_of(request: FetchRequest) -> Origin:
    """Who asks for `request`, for errors raised while its content is decoded."""
    return Origin(request.uri, request.component, request.parameter)


def _text(buffer: IO[bytes], options: dict[str, Any], origin: Origin) -> io.TextIOWrapper:
    try:
        with decoding(origin, options["encoding"]):
            return io.TextIOWrapper(buffer, **options)
    except BaseException:
        buffer.close()
        raise


def from_path(path: Path, file_type: str, open_options: dict[str, Any], origin: Origin) -> Any:
    """The value of `file_type` for a file on disk (handles are the caller's to track)."""
    if file_type == FileType.PATH:
        return path
    if file_type == FileType.BYTES:
        return path.read_bytes()
    if file_type == FileType.BINARY_IO:
        return path.open("rb")
    if file_type == FileType.BYTE_CHUNKS:
        return _file_chunks(path, chunk_size(open_options))
    options = open_options_for(open_options, origin)
    if file_type == FileType.TEXT_LINES:
        return _file_lines(path, options, origin)
    with decoding(origin, options["encoding"]):
        text = path.open("r", **options)
    if file_type == FileType.TEXT_IO:
        return text
    with text:
        return text.read()


def _file_lines(path: Path, options: dict[str, Any], origin: Origin) -> Generator[str, None, None]:
    with decoding(origin, options["encoding"]):
        fh = path.open("r", **options)  # opened when first read
    with fh:
        yield from fh


def _file_chunks(path: Path, size: int) -> Generator[bytes, None, None]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def from_bytes(data: bytes, file_type: str, open_options: dict[str, Any], origin: Origin) -> Any:
    """The value of `file_type` for content held in memory (fresh buffers each call)."""
    if file_type == FileType.BYTES:
        return data
    if file_type == FileType.BINARY_IO:
        return io.BytesIO(data)
    if file_type == FileType.BYTE_CHUNKS:
        return _memory_chunks(data, chunk_size(open_options))
    options = open_options_for(open_options, origin)
    if file_type == FileType.STR:
        return decode(data, options, origin)
    text = _text(io.BytesIO(data), options, origin)
    return text if file_type == FileType.TEXT_IO else _lines(text)


def _memory_chunks(data: bytes, size: int) -> Generator[bytes, None, None]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


def _lines(stream: IO[str], pinned: _Verified | None = None) -> Generator[str, None, None]:
    with stream:
        try:
            yield from stream
        except FileError as exc:
            # Undecodable bytes stop a pinned stream before its end, where the pin is
            # checked: a wrong pin wins, as it does where the whole file is read first.
            if pinned is not None and isinstance(exc.__cause__, UnicodeDecodeError):
                with contextlib.suppress(FileError):  # the source failing now: the first error
                    pinned.check_rest()
            raise


def from_stream(
    stream: io.BufferedReader, file_type: str, open_options: dict[str, Any], origin: Origin
) -> Any:
    """The value of `file_type` for a source stream: the stream itself, text or a generator."""
    if file_type == FileType.BINARY_IO:
        return stream
    if file_type == FileType.BYTE_CHUNKS:
        return _stream_chunks(stream, chunk_size(open_options))
    text = _text(stream, open_options_for(open_options, origin), origin)
    # TextIOWrapper asks its buffer for 8 KiB at a time, and an empty BufferedReader passes
    # that size to the source: one ranged GET per 8 KiB from an object store (3 s for
    # 3 MiB from SeaweedFS, against 0.05 s in 1 MiB reads).
    text._CHUNK_SIZE = _STREAM_BUFFER  # type: ignore[attr-defined]
    if file_type == FileType.TEXT_IO:
        return text
    pinned = stream.raw if isinstance(stream.raw, _Verified) else None
    return _lines(text, pinned)


def _stream_chunks(stream: IO[bytes], size: int) -> Generator[bytes, None, None]:
    with stream:
        while chunk := stream.read(size):
            yield chunk
