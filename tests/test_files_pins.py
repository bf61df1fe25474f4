"""Pinned versions in a shared cache, and what an offline miss says (SPEC §1.4, §1.5)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any

import pytest

from daidai import ModelManager, predictor
from daidai.errors import ChecksumMismatchError, OfflineError
from tests.servers import NginxServer


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read(uri: str, **options: Any) -> bytes:
    def use(f: Any) -> bytes:
        return f.read_bytes()  # type: ignore[no-any-return]

    use.__annotations__ = {"f": Annotated[Path, uri, options], "return": bytes}
    with ModelManager():
        return predictor(use)()  # type: ignore[no-any-return]


def cached_path(uri: str, checksum: str) -> Path:
    def use(f: Any) -> Path:
        return f  # type: ignore[no-any-return]

    use.__annotations__ = {"f": Annotated[Path, uri, {"checksum": checksum}], "return": Path}
    with ModelManager():
        return predictor(use)()  # type: ignore[no-any-return]


def test_a_pinned_version_that_is_not_the_newest_is_trusted_by_its_record(
    http_server: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = b"version one " * 1000, b"version two " * 1000
    url = http_server.put("pinned/model.bin", old)
    assert read(url, checksum=sha(old)) == old  # this project pins the first version
    http_server.put("pinned/model.bin", new)
    assert read(url, force_download=True) == new  # another project fetched a newer one
    # Overwrite the pinned copy in place, keeping its size and times: a hit that trusts its
    # record hands it out as is, where hashing it again on each use would refuse it.
    path = cached_path(url, sha(old))
    stat = path.stat()
    os.chmod(path, 0o644)
    path.write_bytes(b"X" * len(old))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    assert read(url, checksum=sha(old)) == b"X" * len(old)
    # Touched after it was recorded, it is hashed again and not used.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(OfflineError):
        read(url, checksum=sha(old))


def test_an_offline_miss_names_the_cache_folder_it_searched(
    http_server: NginxServer, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    url = http_server.put("offline/never-fetched.bin", b"x")
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    with pytest.raises(OfflineError) as caught:
        read(url)
    assert str(cache_dir) in str(caught.value)
    assert "daidai fetch" in str(caught.value) and caught.value.uri == url


def test_a_pinned_miss_offline_names_the_version_and_the_cache_folder(
    http_server: NginxServer, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    url = http_server.put("offline/other-version.bin", b"current")
    assert read(url) == b"current"
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    with pytest.raises((OfflineError, ChecksumMismatchError)) as caught:
        read(url, checksum=sha(b"another"))
    assert str(cache_dir) in str(caught.value) and sha(b"another") in str(caught.value)
