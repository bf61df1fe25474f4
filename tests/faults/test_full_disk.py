"""A full disk: the cache on a small tmpfs.

A download that does not fit fails with a `CacheError` naming the URI and the bytes needed,
leaves no partial file, and the cache and the lockfile keep working afterwards.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from daidai import ModelManager
from daidai._settings import load_settings
from daidai.errors import CacheError, LockfileError
from daidai.files import layout
from daidai.files.fetch import FetchRequest, cached, fetch
from daidai.files.lockfile import LockEntry, read_lockfile, write_lockfile
from tests.faults.conftest import sha256, write_project

MiB = 1024 * 1024
HttpFile = Callable[..., tuple[str, bytes]]


def used(folder: Path) -> int:
    """Bytes in use on the filesystem holding `folder`."""
    st = os.statvfs(folder)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def leftovers(cache: Path) -> list[str]:
    """Staging folders and temporary files anywhere in the cache."""
    return [
        str(p.relative_to(cache)) for p in cache.rglob("*") if p.name.startswith(layout.TMP_PREFIX)
    ]


@pytest.fixture
def disk_cache(small_disk: Callable[[int], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """An 8 MiB tmpfs holding the cache (`DAIDAI_CACHE_DIR`)."""
    cache = small_disk(8 * MiB) / "cache"
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(cache))
    return cache


def test_a_download_larger_than_the_disk_names_the_uri_and_the_bytes_needed(
    disk_cache: Path, http_file: HttpFile
) -> None:
    url, _ = http_file(12 * MiB)
    request = FetchRequest(url, component="app.load", parameter="weights")
    with pytest.raises(CacheError) as caught:
        fetch(request, settings=load_settings())
    message = str(caught.value)
    assert caught.value.uri == url
    assert url in message and f"{12 * MiB} bytes are needed" in message
    assert message.startswith("app.load, parameter 'weights': ")
    assert leftovers(disk_cache) == []
    assert used(disk_cache) < 256 * 1024  # the 8 MiB written before the failure are gone


def test_after_a_full_disk_a_smaller_file_still_loads_through_a_predictor(
    disk_cache: Path, http_file: HttpFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big_url, _ = http_file(12 * MiB)
    small_url, small = http_file(3 * MiB)
    write_project(tmp_path / "proj", {"big": big_url, "small": small_url})
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    import app  # type: ignore[import-not-found]

    with pytest.raises(CacheError, match=f"{12 * MiB} bytes are needed"), ModelManager():
        app.big()
    with ModelManager():
        assert app.small() == sha256(small).partition(":")[2]
    assert leftovers(disk_cache) == []


def test_a_full_disk_keeps_the_old_lockfile_and_names_the_lockfile(
    small_disk: Callable[[int], Path],
) -> None:
    project = small_disk(1 * MiB)
    lock = project / "daidai.lock"
    entry = LockEntry(uri="http://h/a.bin", checksum=sha256(b"a"), size=1)
    write_lockfile(lock, [entry])
    before = lock.read_bytes()
    fill_to(project, 0)
    many = [
        LockEntry(uri=f"http://h/{i}.bin", checksum=sha256(b"%d" % i), size=i) for i in range(50)
    ]
    with pytest.raises(LockfileError) as caught:
        write_lockfile(lock, many)
    assert str(lock) in str(caught.value)
    assert lock.read_bytes() == before and read_lockfile(lock).get("http://h/a.bin") == entry
    assert sorted(p.name for p in project.iterdir()) == ["daidai.lock", "filler"]


def fill_to(folder: Path, free_bytes: int) -> None:
    """Write a filler file so that about `free_bytes` stay free on `folder`'s filesystem."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    size = max(0, free - free_bytes)
    (folder / "filler").write_bytes(b"\0" * size)


def check_trials(cache: Path, http_file: HttpFile, sizes: list[int], seed: int) -> dict[str, int]:
    """Fetch files of `sizes` on a disk filled at random; each must either load exactly or
    fail with a `CacheError`, leaving nothing behind, and the entry kept from an earlier
    trial must still load with the same bytes."""
    rng = random.Random(seed)
    outcome = {"ok": 0, "full": 0}
    kept: tuple[str, bytes] | None = None
    for size in sizes:
        fill_to(cache.parent, rng.randrange(0, 8 * MiB))
        url, data = http_file(size)
        try:
            result = fetch(FetchRequest(url), settings=load_settings())
        except CacheError as exc:
            assert url in str(exc) and f"{size} bytes are needed" in str(exc), str(exc)
            outcome["full"] += 1
        else:
            assert result.path.read_bytes() == data
            outcome["ok"] += 1
            kept = (url, data)
        assert leftovers(cache) == []
        (cache.parent / "filler").unlink()
        for entry in layout.scan(cache).entries:  # keep one good entry, room for the next
            if kept is None or entry.uri != kept[0]:
                layout.delete_entry(entry)
        if kept is not None:  # a good entry survives the full disks that follow it
            hit = cached(FetchRequest(kept[0]), settings=load_settings())
            assert hit is not None and hit.path.read_bytes() == kept[1]
    return outcome


def test_downloads_on_a_randomly_filled_disk_load_exactly_or_fail_cleanly(
    disk_cache: Path, http_file: HttpFile
) -> None:
    seed = 7
    print(f"seed={seed}")
    sizes = [100, 700 * 1024, 2 * MiB + 1, 5 * MiB, 6 * MiB]
    outcome = check_trials(disk_cache, http_file, sizes, seed)
    assert outcome["ok"] and outcome["full"], outcome  # both paths were exercised


@pytest.mark.slow
def test_many_downloads_on_a_randomly_filled_disk_load_exactly_or_fail_cleanly(
    disk_cache: Path, http_file: HttpFile
) -> None:
    seed = int(os.environ.get("FAULTS_SEED", "0")) or random.randrange(1 << 30)
    print(f"seed={seed} (FAULTS_SEED={seed} reruns this)")
    rng = random.Random(seed)
    sizes = [rng.choice([rng.randrange(1, 65536), rng.randrange(1, 9 * MiB)]) for _ in range(60)]
    outcome = check_trials(disk_cache, http_file, sizes, seed)
    print(f"full-disk trials: {outcome}")
    assert outcome["ok"] and outcome["full"], outcome


@pytest.mark.parametrize("extra", [0, 1, 4095, 123_457])
def test_a_disk_filling_up_mid_chunk_is_a_cache_error_never_a_bare_oserror(
    small_disk: Callable[[int], Path], extra: int
) -> None:
    # Whatever the last write leaves buffered is flushed when the file closes: the disk
    # filling up there must come out as the same `CacheError`.
    from io import BytesIO

    from daidai.files._source import Origin
    from daidai.files._transfer import pump

    folder = small_disk(1 * MiB)
    size = 1 * MiB + 4096 + extra  # more than the disk holds
    origin = Origin("http://h/weights.bin", "app.load", "weights", {})
    with pytest.raises(CacheError, match=f"{size} bytes are needed"):
        pump(BytesIO(os.urandom(size)), folder / "weights.bin", origin, size, lambda d, t: None)
