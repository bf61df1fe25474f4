"""Fixtures shared by the whole suite: real servers on loopback and an isolated environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import AzuriteServer, GcsServer, NginxServer, S3Server

# gcsfs reads this once, at import: left unset, every call waits ~60 s for a metadata server.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
# s3fs against a local endpoint needs a region; `client_kwargs={"region_name": ...}` breaks mkdir.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# Session-scoped and so started lazily, once, by the first test that asks; stopped when the
# session ends, Ctrl-C included (servers.py also kills them if the test process dies).
@pytest.fixture(scope="session")
def http_server() -> Iterator[NginxServer]:
    """nginx serving `http_server.root` at `http_server.url` (ETag, Range, autoindex)."""
    with NginxServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS's S3 gateway at `s3_server.endpoint_url`."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """fake-gcs-server at `gcs_server.endpoint_url`."""
    with GcsServer() as server:
        yield server


@pytest.fixture(scope="session")
def azure_server() -> Iterator[AzuriteServer]:
    """Azurite's blob service, reached with `azure_server.connection_string`."""
    with AzuriteServer() as server:
        yield server


@pytest.fixture
def http_file(http_server: NginxServer) -> Callable[..., tuple[str, bytes]]:
    """Return `make(size=1024, name=None) -> (url, data)`: random bytes served by nginx.

    Names are unique by default, since the server and its folder last the whole session.
    """

    def make(size: int = 1024, name: str | None = None) -> tuple[str, bytes]:
        data = os.urandom(size)
        return http_server.put(name or f"{uuid.uuid4().hex}.bin", data), data

    return make


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The test's cache folder (`DAIDAI_CACHE_DIR`); not created until something writes to it."""
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's cache, settings and current folder.

    Each test runs in its own `tmp_path` (so no stray `daidai.toml` is found) with no `DAIDAI_*`
    variable but `DAIDAI_CACHE_DIR=tmp_path/cache`.
    """
    for name in list(os.environ):
        if name.startswith("DAIDAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(tmp_path)
