"""The one boundary where third-party exceptions become daidai errors."""

from __future__ import annotations

import errno

import pytest

from daidai.errors import (
    CacheError,
    DaidaiError,
    FileFetchError,
    SourceNotFoundError,
    SourcePermissionError,
)
from daidai.files._source import Origin, cache_errors, protocol_of, redact, source_errors

ORIGIN = Origin("s3://b/k", "app.load", "weights", {"secret": "hunter22"})


def aiohttp_status(status: int) -> Exception:
    aiohttp = pytest.importorskip("aiohttp")
    from yarl import URL

    url = URL("http://127.0.0.1/x")
    info = aiohttp.RequestInfo(url=url, method="GET", headers={}, real_url=url)  # type: ignore[arg-type]
    return aiohttp.ClientResponseError(request_info=info, history=(), status=status)  # type: ignore[no-any-return]


def botocore_code(code: str) -> Exception:
    exceptions = pytest.importorskip("botocore.exceptions")
    error = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {}}
    return exceptions.ClientError(error, "GetObject")  # type: ignore[no-any-return]


def wrapped(inner: Exception, outer: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as exc:
            raise outer from exc
    except Exception as exc:
        return exc


def refused() -> Exception:
    aiohttp = pytest.importorskip("aiohttp")
    return aiohttp.ClientConnectionError("refused")  # type: ignore[no-any-return]


CASES = [
    (lambda: FileNotFoundError("x"), SourceNotFoundError),
    (lambda: aiohttp_status(404), SourceNotFoundError),
    (lambda: botocore_code("NoSuchKey"), SourceNotFoundError),
    (lambda: PermissionError("x"), SourcePermissionError),
    (lambda: aiohttp_status(403), SourcePermissionError),
    (lambda: aiohttp_status(401), SourcePermissionError),
    (lambda: botocore_code("AccessDenied"), SourcePermissionError),
    (lambda: wrapped(aiohttp_status(403), FileNotFoundError("x")), SourcePermissionError),
    (lambda: wrapped(ConnectionRefusedError(111, "x"), FileNotFoundError("x")), FileFetchError),
    (lambda: wrapped(refused(), FileNotFoundError("x")), FileFetchError),
    (lambda: aiohttp_status(500), FileFetchError),
    # fsspec's HTTP `info` raises FileNotFoundError from a 500 as from a 404.
    (lambda: wrapped(aiohttp_status(500), FileNotFoundError("x")), FileFetchError),
    (lambda: wrapped(aiohttp_status(429), FileNotFoundError("x")), FileFetchError),
    (lambda: wrapped(botocore_code("SlowDown"), FileNotFoundError("x")), FileFetchError),
    (lambda: TimeoutError(), FileFetchError),
    (lambda: ImportError("Install s3fs to access S3"), FileFetchError),
    (lambda: ValueError("Protocol not known: zz"), FileFetchError),
    (lambda: RuntimeError("anything else"), FileFetchError),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_each_source_exception_is_mapped_and_chained(make, expected: type) -> None:  # type: ignore[no-untyped-def]
    original = make()
    with pytest.raises(expected) as caught, source_errors(ORIGIN):
        raise original
    error = caught.value
    assert type(error) is expected
    assert error.__cause__ is original
    assert (error.uri, error.component, error.parameter) == ("s3://b/k", "app.load", "weights")


def test_a_missing_implementation_says_which_extra_to_install() -> None:
    with pytest.raises(FileFetchError, match=r"daidai\[s3\]"), source_errors(ORIGIN):
        raise ImportError("Install s3fs")


def test_daidai_errors_pass_through_unchanged() -> None:
    error = DaidaiError("mine")
    with pytest.raises(DaidaiError) as caught, source_errors(ORIGIN):
        raise error
    assert caught.value is error


def test_a_full_disk_names_the_uri_and_the_bytes_needed() -> None:
    with pytest.raises(CacheError) as caught, cache_errors(ORIGIN, needed=12345):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert "12345 bytes" in str(caught.value) and "s3://b/k" in str(caught.value)


def test_a_read_only_cache_says_how_to_fix_it() -> None:
    with pytest.raises(CacheError, match="not writable"), cache_errors(ORIGIN):
        raise OSError(errno.EROFS, "Read-only file system", "/cache")


def test_secrets_never_appear_in_messages() -> None:
    with pytest.raises(FileFetchError) as caught, source_errors(ORIGIN):
        raise RuntimeError("signature for secret hunter22 failed")
    assert "hunter22" not in str(caught.value)
    assert redact("key=hunter22", {"password": "hunter22"}) == "key=***"


@pytest.mark.parametrize(
    ("uri", "protocol"),
    [("s3://b/k", "s3"), ("/tmp/x", "file"), ("simplecache::HTTP://h/x", "http")],
)
def test_the_protocol_is_read_from_the_uri(uri: str, protocol: str) -> None:
    assert protocol_of(uri) == protocol


def test_a_received_http_body_reads_back_in_pieces_of_the_asked_size() -> None:
    from daidai.files._source import _Chunks

    body = _Chunks([b"abcdef", b"gh", b"ijklm"])
    pieces = []
    while piece := body.read(4):
        pieces.append(piece)
    assert pieces == [b"abcd", b"ef", b"gh", b"ijkl", b"m"]
    assert _Chunks([b"ab", b"cd"]).read() == b"abcd"
