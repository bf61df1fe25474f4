"""The fsspec boundary: opening sources, and turning every third-party error into ours.

Everything that talks to fsspec (and through it aiohttp, botocore, ...) goes through here,
so the mapping of exceptions lives in one place (`source_errors`, `cache_errors`) and the
rest of `daidai.files` only sees `DaidaiError` subclasses.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, NoReturn, cast

from daidai.errors import (
    CacheError,
    ConfigError,
    DaidaiError,
    FileError,
    FileFetchError,
    SourceNotFoundError,
    SourcePermissionError,
)
from daidai.files._policy import last_link, split_chain
from daidai.files.layout import strip_credentials

__all__ = [
    "LOCAL_PROTOCOLS",
    "DirectoryListing",
    "Origin",
    "SourceInfo",
    "cache_errors",
    "cut",
    "list_directory",
    "Opened",
    "open_whole",
    "open_whole_async",
    "opens_whole",
    "open_source",
    "protocol_of",
    "source_errors",
    "stat_source",
]

LOCAL_PROTOCOLS = frozenset({"file", "local", "memory"})
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "ResourceNotFound"}
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401"}
_DENIED_NAMES = {"NoCredentialsError", "PartialCredentialsError", "ClientAuthenticationError"}
_CONNECTION_NAMES = {
    "ClientConnectionError",  # aiohttp: refused, reset, server disconnected
    "ServerTimeoutError",
    "EndpointConnectionError",  # botocore
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "TimeoutError",
}
# Answers that say "try again later": never "not found", whatever error fsspec wraps them
# in (its HTTP `info` raises FileNotFoundError from a 500 as from a 404).
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "TooManyRequests",
}
_SECRET_KEY = re.compile(r"key|secret|token|password|credential|connection_string|sas", re.I)
_FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# Where fsspec's `info` says when a file last changed: HTTP, S3, Azure, GCS, local files.
_MODIFIED_KEYS = ("Last-Modified", "LastModified", "last_modified", "updated", "mtime")
_EXTRAS = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "hf": "hf"}


@dataclass(frozen=True)
class Origin:
    """Who asks for a file: carried into every error so it names URI, component, parameter.

    Attributes:
        uri: the file's URI.
        component: the component that declared it, if known.
        parameter: the parameter it is injected into, if known.
        storage_options: used only to redact secrets from messages.
    """

    uri: str
    component: str | None = None
    parameter: str | None = None
    storage_options: Mapping[str, Any] | None = None

    def error(self, cls: type[FileError], message: str) -> FileError:
        """Build a `FileError` subclass located at this origin, secrets redacted (those in
        storage options, and the `user:password@` of the URI: the error names it without)."""
        text = redact(message, self.storage_options)
        uri = strip_credentials(self.uri)
        if uri != self.uri:
            text = _redact_userinfo(text, self.uri)
        return cls(text, uri=uri, component=self.component, parameter=self.parameter)


def _redact_userinfo(text: str, uri: str) -> str:
    for link in uri.split("::"):
        userinfo = link.partition("://")[2].partition("/")[0].rpartition("@")[0]
        secret = userinfo.partition(":")[2]
        for value in (userinfo, secret):
            if len(value) >= 4:
                text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class SourceInfo:
    """What the source says about a path before reading it.

    Attributes:
        path: the path inside the filesystem.
        kind: `"file"` or `"directory"`.
        size: bytes, if known.
        etag: the ETag, if given.
        version_id: the version id, if given.
        last_modified: when the source says it last changed (HTTP Last-Modified, an
            object store's LastModified), as it gave it, if it did.
    """

    path: str
    kind: str
    size: int | None
    etag: str | None
    version_id: str | None
    last_modified: str | None = None


class DirectoryListing(IsADirectoryError):
    """An HTTP URI answered with a directory listing (an HTML page for a folder)."""


def refuse_listing(url: str, content_type: str | None) -> None:
    """Raise `DirectoryListing` when an HTTP answer is a listing rather than a file.

    A listing is HTML served for a URL ending in `/` (nginx and Apache redirect `/dir` to
    `/dir/`): cached as a file, a loader would get the HTML page instead of the folder.
    """
    html = (content_type or "").partition(";")[0].strip().lower() == "text/html"
    if html and url.partition("?")[0].endswith("/"):
        raise DirectoryListing(f"{url} is an HTML index page")


def protocol_of(uri: str) -> str:
    """The fsspec protocol of a URI (`file` for plain paths, the last one for chains)."""
    head = last_link(uri)
    return head.split("://", 1)[0].lower() if "://" in head else "file"


def _protocols(fs: Any) -> set[str]:
    """The names a filesystem answers to (fsspec gives one string or a tuple)."""
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)


def redact(text: str, storage_options: Mapping[str, Any] | None) -> str:
    """Replace secret-looking storage option values in `text` with `***`."""
    for key, value in (storage_options or {}).items():
        if isinstance(value, str) and len(value) >= 4 and _SECRET_KEY.search(key):
            text = text.replace(value, "***")
    return text


def filesystem(uri: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    """The fsspec filesystem and the path inside it for `uri`.

    Raises:
        ConfigError: the URI or an option is not allowed (`daidai.files._policy`).
    """
    from fsspec.core import url_to_fs

    from daidai.files._policy import check_options, check_uri, normal_schemes

    uri = normal_schemes(uri)
    check_uri(uri)
    check_options(storage_options)
    links = split_chain(uri)
    if "::" in uri and len(links) == 1:
        return _ipv6_filesystem(uri, storage_options)
    if any("::" in link for link in links):
        raise ConfigError(
            "an archive inside a source with an IPv6 host cannot be opened; name the host "
            "by a host name, or fetch the archive itself",
            path=uri,
        )
    fs, path = url_to_fs(uri, **dict(storage_options))
    return fs, str(path)


def _ipv6_filesystem(uri: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    # fsspec's own parser would split `http://[::1]/x` at `::` as a chain.
    import fsspec

    cls = fsspec.get_filesystem_class(protocol_of(uri))
    return fsspec.filesystem(protocol_of(uri), **dict(storage_options)), cls._strip_protocol(uri)


def stat_source(fs: Any, path: str) -> SourceInfo:
    """Ask the source for size, kind and identity (one request for remote sources)."""
    info = fs.info(path)
    if "url" in info and _protocols(fs) & {"http", "https"}:
        refuse_listing(str(info["url"]), info.get("mimetype"))
    kind = "directory" if info.get("type") == "directory" else "file"
    size = info.get("size")
    etag = info.get("ETag") or info.get("etag") or info.get("Etag")
    version = info.get("VersionId") or info.get("version_id") or info.get("generation")
    modified = next((info[k] for k in _MODIFIED_KEYS if info.get(k)), None)
    return SourceInfo(
        path=path,
        kind=kind,
        size=int(size) if isinstance(size, int) and kind == "file" else None,
        etag=str(etag) if etag else None,
        version_id=str(version) if version else None,
        last_modified=str(modified) if modified else None,
    )


def open_source(fs: Any, path: str, size: int | None, chunk_size: int) -> IO[bytes]:
    """Open a source for one sequential read, the cheapest way the protocol allows."""
    protocols = _protocols(fs)
    if protocols & {"http", "https"}:
        # A plain stream: one GET. Ranged reads cost one request per block (48 s for
        # 512 MiB on loopback, against 2 s), and fs.get buffers the whole body in memory.
        # Passing the size we already know avoids a second HEAD.
        return fs.open(path, "rb", block_size=0, size=size)  # type: ignore[no-any-return]
    if protocols & LOCAL_PROTOCOLS:
        return fs.open(path, "rb")  # type: ignore[no-any-return]
    # Object stores: no read-ahead cache, so each read is one ranged GET of exactly the
    # chunk and memory stays at one chunk (s3fs defaults to 50 MiB blocks). The size we
    # already know spares a second HEAD where the filesystem takes it (s3fs does): with
    # 50 small files from SeaweedFS, one of three requests per file was that HEAD.
    known = {"size": size} if size is not None and _takes_size(fs) else {}
    return fs.open(path, "rb", block_size=chunk_size, cache_type="none", **known)  # type: ignore[no-any-return]


def _takes_size(fs: Any) -> bool:
    import inspect

    try:
        return "size" in inspect.signature(fs._open).parameters
    except (TypeError, ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class Opened:
    """A source file opened by the request that also told its size and identity.

    Attributes:
        src: the body (close it when done).
        info: size, ETag and version id from the response.
        received: whether the whole body is already in memory (no more network).
    """

    src: IO[bytes]
    info: SourceInfo
    received: bool


def cut(opened: Opened) -> None:
    """Interrupt a body still arriving (from any thread): reading it fails from now on."""
    if isinstance(opened.src, _LoopStream):
        opened.src.cut()


def opens_whole(fs: Any) -> bool:
    """Whether `open_whole` can open files of `fs` (HTTP, S3) rather than returning None."""
    protocols = _protocols(fs)
    if protocols & {"s3", "s3a"}:
        return hasattr(fs, "_call_s3")
    return bool(protocols & {"http", "https"})


def open_whole(fs: Any, path: str, whole_below: int) -> Opened | None:
    """Open a file with the one request that also tells its size and identity (HTTP, S3);
    None where that takes `stat_source` first (or the path is a folder).

    A body of at most `whole_below` bytes is received in the same call.
    """
    if not opens_whole(fs):
        return None
    from fsspec.asyn import sync

    return sync(fs.loop, open_whole_async, fs, path, whole_below)  # type: ignore[no-any-return]


async def open_whole_async(fs: Any, path: str, whole_below: int) -> Opened | None:
    """`open_whole` as a coroutine on `fs.loop` (the caller checked `opens_whole`)."""
    protocols = _protocols(fs)
    if protocols & {"http", "https"}:
        return await _open_http(fs, path, whole_below)
    return await _open_s3(fs, path, whole_below)


async def _open_http(fs: Any, path: str, whole_below: int) -> Opened:
    """One GET; size and ETag come from that response's headers.

    A small body is kept as the chunks the socket gave: every hand-off to fsspec's event
    loop costs a thread switch fighting for the GIL (fsspec's own stream took four per
    file: GET, read, empty read, close), and joining the chunks into one buffer cost more
    than the download itself on a VM where fresh memory faults in slowly (1 MiB from
    loopback: 3 ms joined, 1 ms not).

    Asking with HEAD first (`stat_source`) costs one more round trip per file: 50 files of
    1 MiB behind 20 ms of latency spent ~40% of `fetch_many`'s time waiting for HEADs.
    fsspec's HTTP `info` always says "file", so nothing is lost by skipping it.
    """
    session = await fs.set_session()
    response = await session.get(fs.encode_url(path), **fs.kwargs).__aenter__()
    try:
        fs._raise_not_found_for_status(response, path)
        refuse_listing(str(response.url), response.headers.get("Content-Type"))
        info = _http_info(response.headers, path)
    except BaseException:
        response.close()
        raise
    body, close, done = response.content, response.close, response.release
    return await _take(fs, info, whole_below, body.read, body.readany, close, done)


def _http_info(headers: Mapping[str, str], path: str) -> SourceInfo:
    length = headers.get("Content-Length")
    # A content-encoded body is decoded on the way: its Content-Length is not the size.
    encoded = bool(headers.get("Content-Encoding"))
    size = int(length) if length and length.isdigit() and not encoded else None
    etag = headers.get("ETag")
    modified = headers.get("Last-Modified")
    return SourceInfo(path, "file", size, str(etag) if etag else None, None, modified or None)


async def _open_s3(fs: Any, path: str, whole_below: int) -> Opened | None:
    """One GET, whose response gives size, ETag and version id.

    s3fs's own way costs a HEAD and then one ranged GET per block, each signed and parsed
    by botocore: 50 objects of 1 MiB from SeaweedFS took twice as long in 8 threads as a
    sequential `get_file` loop. None when the key names no object (a prefix, or a missing
    key): the caller asks `stat_source`, which tells a folder from a missing file.
    """
    bucket, key, version = fs.split_path(path)
    if not key:
        return None
    pinned = {"VersionId": version} if version else {}
    try:
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **pinned, **fs.req_kw)
    except FileNotFoundError:
        return None
    body = response["Body"]
    size, etag = response.get("ContentLength"), response.get("ETag")
    version_id = response.get("VersionId")
    modified = response.get("LastModified")
    info = SourceInfo(
        path,
        "file",
        size if isinstance(size, int) else None,
        str(etag) if etag else None,
        str(version_id) if version_id else None,
        str(modified) if modified else None,
    )
    some = functools.partial(body.read, whole_below)
    return await _take(fs, info, whole_below, body.read, some, body.close, body.close)


async def _take(
    fs: Any,
    info: SourceInfo,
    whole_below: int,
    read: Callable[[int], Awaitable[bytes]],
    read_some: Callable[[], Awaitable[bytes]],
    close: Callable[[], object],
    done: Callable[[], object],
) -> Opened:
    """A body of at most `whole_below` bytes as the chunks received (then `done` gives the
    connection back); a bigger one, or one of unknown size, as a stream still arriving
    (`read(n)`, `close()`)."""
    if info.size is None or info.size > whole_below:
        return Opened(cast(IO[bytes], _LoopStream(fs.loop, read, close)), info, received=False)
    chunks = []
    try:
        while chunk := await read_some():
            chunks.append(chunk)
    except BaseException:
        close()
        raise
    done()
    return Opened(cast(IO[bytes], _Chunks(chunks)), info, received=True)


class _LoopStream(io.RawIOBase):
    """A body still arriving on fsspec's event loop, read from another thread: one
    hand-off per read. `read` is the body's own `async read(n)`, `close` its close."""

    def __init__(self, loop: Any, read: Any, close: Any) -> None:
        super().__init__()
        self._loop = loop
        self._read = read
        self._close = close

    def readable(self) -> bool:
        return True

    _cut = False

    def read(self, size: int = -1) -> bytes:
        from fsspec.asyn import sync

        data: bytes = sync(self._loop, self._read, size)
        if self._cut:  # whatever a closed connection returned, the body is not complete
            raise ConnectionAbortedError("the download was interrupted")
        return data

    def cut(self) -> None:
        """Stop the download: the reading thread's next (or current) read fails."""
        self._cut = True
        self.close()

    def close(self) -> None:
        if not self.closed:
            self._loop.call_soon_threadsafe(self._close)
        super().close()


class _Chunks(io.RawIOBase):
    """A body already received, read back chunk by chunk without joining it."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._chunks = chunks[::-1]

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self.readall()
        if not self._chunks or size == 0:
            return b""
        chunk = self._chunks.pop()
        if len(chunk) > size:
            chunk, rest = chunk[:size], chunk[size:]
            self._chunks.append(rest)
        return chunk

    def readall(self) -> bytes:
        data = b"".join(reversed(self._chunks))
        self._chunks.clear()
        return data


def list_directory(
    fs: Any, path: str, origin: Origin
) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Every file under a directory or prefix, `(relative posix path, full path, size)`,
    and every folder under it (relative posix paths), empty ones included.

    Raises:
        FileError: a local folder holds an entry that is neither a file nor a folder (a
            broken or looping link, a link to a folder, a FIFO), naming it.
    """
    root = path.rstrip("/")
    found = fs.find(root, detail=True, withdirs=True)
    local = bool(_protocols(fs) & {"file", "local"})
    files, folders = [], []
    for full, info in sorted(found.items()):
        rel = full[len(root) :].lstrip("/") if full.startswith(root) else full.rsplit("/", 1)[-1]
        if info.get("type") == "directory":
            if rel:
                folders.append(rel)
            continue
        if local and info.get("type") == "other":
            raise origin.error(FileError, f"the folder holds {_odd_entry(rel, full, root)}")
        files.append((rel, full, int(info.get("size") or 0)))
    return files, folders


def _odd_entry(rel: str, full: str, root: str) -> str:
    """What is wrong with a local entry fsspec lists as neither file nor folder, and what
    to do (reading it would fail with an error that names neither the entry nor a fix)."""
    import os

    if not os.path.islink(full):
        return f"{rel!r}, which is not a regular file (a FIFO, socket or device); remove it"
    target = os.readlink(full)
    if not os.path.exists(full):
        return f"a broken symbolic link {rel!r} (to {target!r}); remove it or restore its target"
    real, top = os.path.realpath(full), os.path.realpath(root)
    if top == real or top.startswith(real.rstrip("/") + "/"):
        return f"a symbolic link {rel!r} that loops back to {target!r}; remove it"
    return (
        f"a symbolic link {rel!r} to another folder ({target!r}), which is not followed; "
        "put the folder itself there"
    )


@contextlib.contextmanager
def source_errors(origin: Origin) -> Iterator[None]:
    """Map any exception raised while reading a source to a `FileFetchError` subclass."""
    try:
        yield
    except ConfigError as exc:
        if exc.component is not None or origin.component is None:
            raise
        # A refused URI or option is told at first use: name who declared it.
        located = ConfigError(
            exc.message,
            path=exc.path,
            key=exc.key,
            component=origin.component,
            parameter=origin.parameter,
        )
        raise located from exc.__cause__
    except DaidaiError:
        raise
    except Exception as exc:
        raise map_source_error(exc, origin) from exc


def map_source_error(exc: BaseException, origin: Origin) -> FileError:
    """The `DaidaiError` for an exception raised by fsspec or the library under it.

    fsspec often re-raises a transport error as a bare `FileNotFoundError` (its HTTP `info`
    does, for a 403 or a refused connection alike), so the whole cause chain is read.
    """
    kind = _classify(exc)
    detail = _detail(exc)
    if kind == "denied":
        message = f"access denied ({detail}); check the credentials in storage_options"
        return origin.error(SourcePermissionError, message)
    if kind == "connection":
        message = f"cannot reach the source ({detail}); check the address and the network"
        return origin.error(FileFetchError, message)
    if kind == "server":
        message = f"the server failed or is throttling ({detail}); retry later"
        return origin.error(FileFetchError, message)
    if kind == "listing":
        message = (
            f"the server answers with a directory listing, not a file ({detail}); daidai "
            "does not fetch HTTP folders: declare each file's URI"
        )
        return origin.error(FileFetchError, message)
    if kind == "missing":
        return origin.error(
            SourceNotFoundError, f"not found at the source ({detail}); check the URI"
        )
    if isinstance(exc, ImportError):
        extra = _EXTRAS.get(protocol_of(origin.uri), "all")
        message = f"no filesystem for this protocol ({detail}); install daidai[{extra}]"
        return origin.error(FileFetchError, message)
    message = f"reading the source failed ({detail}); check the server and retry"
    return origin.error(FileFetchError, message)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify(exc: BaseException) -> str | None:
    chain = _chain(exc)
    for err in chain:  # the most specific signal anywhere in the chain wins
        status, code = _status_of(err)
        names = {cls.__name__ for cls in type(err).__mro__}
        if status in (401, 403) or code in _DENIED_CODES or names & _DENIED_NAMES:
            return "denied"
        if isinstance(err, PermissionError) and err is not exc:
            return "denied"
        if isinstance(err, ConnectionError) or names & _CONNECTION_NAMES:
            return "connection"
        if (status is not None and status >= 500) or status in _RETRY_STATUSES:
            return "server"
        if code in _RETRY_CODES:
            return "server"
    for err in chain:
        status, code = _status_of(err)
        if isinstance(err, DirectoryListing):
            return "listing"
        if isinstance(err, FileNotFoundError) or status in (404, 410) or code in _NOT_FOUND_CODES:
            return "missing"
        if isinstance(err, PermissionError):
            return "denied"
    return None


def _detail(exc: BaseException) -> str:
    root = _chain(exc)[-1]
    text = _describe(exc)
    if root is not exc:
        text += f", caused by {_describe(root)}"
    return text


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # some third-party __str__ fail on half-built instances
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _status_of(exc: BaseException) -> tuple[int | None, str | None]:
    status = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return status, None
    response = getattr(exc, "response", None)  # botocore.exceptions.ClientError
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        http = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return (http if isinstance(http, int) else None), (str(code) if code else None)
    return None, None


@contextlib.contextmanager
def cache_errors(origin: Origin, *, needed: int | None = None) -> Iterator[None]:
    """Map an `OSError` raised while writing the cache to a `CacheError`."""
    try:
        yield
    except DaidaiError:
        raise
    except OSError as exc:
        raise_cache_error(exc, origin, needed)


def raise_cache_error(exc: OSError, origin: Origin, needed: int | None) -> NoReturn:
    """Raise the `CacheError` for an `OSError` on the cache side."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in _FULL_DISK:
        amount = f"{needed} bytes are needed" if needed is not None else "more space is needed"
        message = (
            f"no space left in the cache folder ({amount}); nothing was cached; free space or "
            "point DAIDAI_CACHE_DIR at a larger disk"
        )
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        message = (
            f"the cache folder is not writable ({exc.strerror}:{where}); run `daidai fetch` "
            "where it is, or set DAIDAI_CACHE_DIR"
        )
    else:
        message = f"writing the cache failed ({exc.strerror or exc}:{where})"
    raise origin.error(CacheError, message) from exc
