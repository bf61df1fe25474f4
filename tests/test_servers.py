"""The test servers really serve what was put in them, through the fsspec backends daidai uses."""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest

from tests import servers
from tests.servers import AzuriteServer, GcsServer, NginxServer, S3Server


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: bytes = response.read()
        return data


def test_nginx_serves_files_with_etag_size_and_ranges(
    http_file: Callable[..., tuple[str, bytes]],
) -> None:
    url, data = http_file(100_000)
    fs = fsspec.filesystem("http", skip_instance_cache=True)

    info = fs.info(url)
    with fs.open(url, "rb", block_size=1024) as f:
        f.seek(50_000)
        middle = f.read(10)

    assert fs.cat_file(url) == data
    assert info["size"] == len(data)
    assert info["ETag"].startswith('"')
    assert middle == data[50_000:50_010]


def test_nginx_lists_folders(http_server: NginxServer) -> None:
    http_server.put("listing/a.bin", b"a")
    http_server.put("listing/b.bin", b"b")
    fs = fsspec.filesystem("http", skip_instance_cache=True)

    listing = fs.ls(http_server.url_for("listing/"), detail=False)
    names = sorted(path.rsplit("/", 1)[-1] for path in listing)

    assert names == ["a.bin", "b.bin"]


def test_nginx_log_starts_empty(tmp_path: Path) -> None:
    with NginxServer(tmp_path / "root") as server:
        assert server.requests() == []


def test_nginx_log_counts_each_request(http_server: NginxServer) -> None:
    url = http_server.put("counted.bin", b"x" * 10)
    http_server.clear_log()

    _get(url)
    _get(url + "?again=1")

    assert http_server.requests() == [("GET", "/counted.bin"), ("GET", "/counted.bin?again=1")]


def test_nginx_restarts_on_the_same_url(http_server: NginxServer) -> None:
    url = http_server.put("kept.bin", b"kept")

    http_server.stop()
    try:
        with pytest.raises(urllib.error.URLError):
            _get(url)
    finally:
        http_server.start()

    assert _get(url) == b"kept"


def test_nginx_latency_delays_every_request(tmp_path: Path) -> None:
    with NginxServer(tmp_path / "root", latency_ms=20) as slow:
        slow.put("slow.bin", b"s")
        connection = http.client.HTTPConnection("127.0.0.1", slow.port, timeout=5)
        durations = []
        for _ in range(5):
            began = time.perf_counter()
            connection.request("GET", "/slow.bin")
            body = connection.getresponse().read()
            durations.append(time.perf_counter() - began)
        connection.close()

    assert body == b"s"
    assert min(durations) >= 0.020


def test_nginx_latency_overlaps_concurrent_requests(tmp_path: Path) -> None:
    fs = fsspec.filesystem("http", skip_instance_cache=True)
    with NginxServer(tmp_path / "root", latency_ms=100) as slow:
        urls = [slow.put(f"f{i}.bin", bytes([i])) for i in range(20)]
        began = time.perf_counter()
        contents = fs.cat(urls)
        elapsed = time.perf_counter() - began

    assert [contents[u] for u in urls] == [bytes([i]) for i in range(20)]
    assert elapsed < 1.0  # 20 x 100 ms if each request waited for the one before


def test_s3_server_serves_objects_through_s3fs(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/models/w.bin", b"weights")
    fs = fsspec.filesystem("s3", skip_instance_cache=True, **s3_server.storage_options)

    assert fs.cat_file(uri) == b"weights"
    assert fs.info(uri)["ETag"] == f'"{hashlib.md5(b"weights").hexdigest()}"'
    assert fs.ls(f"{bucket}/models", detail=False) == [f"{bucket}/models/w.bin"]


def test_s3_versioned_bucket_keeps_each_version(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket(versioned=True)
    uri = s3_server.put(f"{bucket}/v.bin", b"one")
    fs = fsspec.filesystem(
        "s3", skip_instance_cache=True, version_aware=True, **s3_server.storage_options
    )
    first = fs.info(uri)["VersionId"]
    s3_server.put(f"{bucket}/v.bin", b"two")

    assert fs.cat_file(uri) == b"two"
    assert fs.cat_file(uri, version_id=first) == b"one"


def test_gcs_server_serves_objects_through_gcsfs(gcs_server: GcsServer) -> None:
    bucket = gcs_server.make_bucket()
    uri = gcs_server.put(f"{bucket}/models/w.bin", b"weights")
    fs = fsspec.filesystem("gs", skip_instance_cache=True, **gcs_server.storage_options)

    assert fs.cat_file(uri) == b"weights"
    assert fs.info(uri)["size"] == len(b"weights")
    assert fs.ls(f"{bucket}/models", detail=False) == [f"{bucket}/models/w.bin"]


def test_azurite_serves_blobs_through_adlfs(azure_server: AzuriteServer) -> None:
    container = azure_server.make_container()
    uri = azure_server.put(f"{container}/models/w.bin", b"weights")
    fs = fsspec.filesystem("az", skip_instance_cache=True, **azure_server.storage_options)

    assert fs.cat_file(uri) == b"weights"
    assert fs.info(uri)["size"] == len(b"weights")
    assert fs.ls(f"{container}/models", detail=False) == [f"{container}/models/w.bin"]


def test_a_missing_server_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servers, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(servers, "_which", lambda name: None)

    with pytest.raises(servers.ServerError, match=r"npm install --prefix \.ci/node azurite@"):
        AzuriteServer(workdir=tmp_path / "azurite").start()


def test_each_test_gets_its_own_cache_and_folder(cache_dir: Path, tmp_path: Path) -> None:
    daidai_vars = sorted(name for name in os.environ if name.startswith("DAIDAI_"))

    assert daidai_vars == ["DAIDAI_CACHE_DIR"]
    assert os.environ["DAIDAI_CACHE_DIR"] == str(cache_dir)
    assert Path.cwd() == tmp_path
