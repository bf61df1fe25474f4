"""What a component gets when the server answers with something other than the file.

A server error or throttling is a `FileFetchError` that says to retry, never "not found", under
every strategy (SPEC §1.5); an HTTP URI answered with a directory listing is never handed out
or cached as a file (SPEC §1.3).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from daidai import ModelManager
from daidai.errors import FileFetchError, SourceNotFoundError
from tests.servers import NginxServer
from tests.test_files_differential import PAIRS, Source, make_predictor


class _Failing(BaseHTTPRequestHandler):
    """Answers `/<status>/anything` with that status, as an overloaded server does."""

    def _answer(self, body: bool) -> None:
        status = int(self.path.strip("/").split("/")[0])
        self.send_response(status)
        if status in (429, 503):
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "5")
        self.end_headers()
        if body:
            self.wfile.write(b"oops\n")

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_says_to_retry_under_every_type_and_strategy(
    failing_server: str, status: int
) -> None:
    source = Source("http", f"{failing_server}/{status}/weights.bin", {})
    with ModelManager():
        for strategy, file_type in PAIRS:
            with pytest.raises(FileFetchError) as caught:
                make_predictor(source, strategy, file_type)()
            error = caught.value
            assert not isinstance(error, SourceNotFoundError), (strategy, file_type)
            assert "retry" in str(error) and "not found" not in str(error), (strategy, file_type)
            assert (error.uri, error.parameter) == (source.uri, "f")


@pytest.mark.parametrize("slash", ["/", ""])
def test_a_directory_listing_is_never_handed_out_as_a_file(
    http_server: NginxServer, cache_dir: Any, slash: str
) -> None:
    http_server.put("listed/a.bin", b"a")
    http_server.put("listed/b.bin", b"b")
    source = Source("http", f"{http_server.url}/listed{slash}", {})
    with ModelManager():
        for strategy, file_type in PAIRS:
            with pytest.raises(FileFetchError, match="directory listing") as caught:
                make_predictor(source, strategy, file_type)()
            assert caught.value.uri == source.uri, (strategy, file_type)
    cached = [p for p in cache_dir.rglob("*") if p.is_file() and p.parent.name.startswith("sha")]
    assert cached == []


def test_errors_name_a_uri_with_credentials_without_them(failing_server: str) -> None:
    secret = failing_server.replace("http://", "http://alice:s3cr3t-t0ken@", 1)
    source = Source("http", f"{secret}/500/weights.bin", {})
    with ModelManager():
        for strategy, file_type in PAIRS:
            with pytest.raises(FileFetchError) as caught:
                make_predictor(source, strategy, file_type)()
            assert "s3cr3t" not in str(caught.value), (strategy, file_type)
            assert caught.value.uri == f"{failing_server}/500/weights.bin"
