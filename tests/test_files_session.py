"""FileSession: every strategy and type, lockfile pins, handles and temporary folders."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from daidai._settings import STRATEGIES, Settings, load_settings
from daidai.errors import ChecksumMismatchError, DeclarationError, IntegrityError, OfflineError
from daidai.files.lockfile import LockEntry, write_lockfile
from daidai.files.session import FileSession
from daidai.files.spec import FILE_TYPES, FileSpec, check_strategy
from tests.servers import NginxServer

TEXT = "héllo\nwörld\n"
DATA = TEXT.encode()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expected(file_type: str) -> Any:
    return {
        "str": TEXT,
        "bytes": DATA,
        "TextIO": TEXT,
        "BinaryIO": DATA,
        "Generator[str]": ["héllo\n", "wörld\n"],
        "Generator[bytes]": [DATA],
        "Path": DATA,
    }[file_type]


def unwrap(value: Any, file_type: str) -> Any:
    if file_type == "Path":
        assert isinstance(value, Path)
        return value.read_bytes()
    if file_type in ("TextIO", "BinaryIO"):
        return value.read()
    if file_type.startswith("Generator"):
        return list(value)
    return value


PAIRS = [(s, t) for s in STRATEGIES for t in FILE_TYPES if check_strategy(s, t) is None]


@pytest.fixture
def session() -> Any:
    files = FileSession(load_settings())
    yield files
    files.close()


@pytest.mark.parametrize(("strategy", "file_type"), PAIRS)
def test_every_strategy_hands_out_every_type_it_allows(
    session: FileSession, http_server: NginxServer, strategy: str, file_type: str
) -> None:
    url = http_server.put(f"session/{os.urandom(4).hex()}.txt", DATA)
    value = session.provide(FileSpec(url, file_type, strategy), component="c", parameter="p")
    assert unwrap(value, file_type) == expected(file_type)


@pytest.mark.parametrize(("strategy", "file_type"), PAIRS)
def test_local_files_work_with_every_pair(
    session: FileSession, tmp_path: Path, strategy: str, file_type: str
) -> None:
    (tmp_path / "t.txt").write_bytes(DATA)
    spec = FileSpec(str(tmp_path / "t.txt"), file_type, strategy)
    assert unwrap(session.provide(spec, component="c", parameter="p"), file_type) == expected(
        file_type
    )


def test_an_impossible_configured_strategy_fails_at_first_use_naming_the_parameter(
    tmp_path: Path,
) -> None:
    settings = Settings(**{**load_settings().__dict__, "default_cache_strategy": "in_memory"})
    with pytest.raises(DeclarationError) as caught:
        FileSession(settings).provide(FileSpec("x", "Path"), component="app.f", parameter="p")
    assert (caught.value.component, caught.value.parameter) == ("app.f", "p")


def test_text_uses_the_encoding_from_open_options(session: FileSession, tmp_path: Path) -> None:
    (tmp_path / "l1.txt").write_bytes(TEXT.encode("latin-1"))
    spec = FileSpec(
        str(tmp_path / "l1.txt"), "str", "on_disk", open_options={"encoding": "latin-1"}
    )
    assert session.provide(spec, component="c", parameter="p") == TEXT


def test_close_closes_handles_and_generators(session: FileSession, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(DATA)
    handle = session.provide(
        FileSpec(str(tmp_path / "t.txt"), "BinaryIO"), component="c", parameter="p"
    )
    stream = session.provide(
        FileSpec(str(tmp_path / "t.txt"), "TextIO", "in_memory_stream"),
        component="c",
        parameter="p",
    )
    session.close()
    session.close()
    assert handle.closed and stream.closed


def test_temporary_folders_appear_on_first_use_and_go_on_close(tmp_path: Path) -> None:
    (tmp_path / "t.bin").write_bytes(DATA)
    before = set(Path(tempfile.gettempdir()).glob("daidai-tmp-*"))
    files = FileSession(load_settings())
    assert set(Path(tempfile.gettempdir()).glob("daidai-tmp-*")) == before
    path = files.provide(
        FileSpec(str(tmp_path / "t.bin"), "Path", "on_disk_temporary"), component="c", parameter="p"
    )
    assert path.read_bytes() == DATA and not path.is_relative_to(load_settings().cache_dir)
    files.close()
    assert not path.exists()
    assert set(Path(tempfile.gettempdir()).glob("daidai-tmp-*")) == before


def test_temporary_folders_of_killed_processes_are_reaped(tmp_path: Path) -> None:
    (tmp_path / "t.bin").write_bytes(DATA)
    dead = Path(tempfile.mkdtemp(prefix="daidai-tmp-999999999-"))
    files = FileSession(load_settings())
    files.provide(
        FileSpec(str(tmp_path / "t.bin"), "Path", "on_disk_temporary"), component="c", parameter="p"
    )
    files.close()
    assert not dead.exists()


def test_memory_strategies_write_nothing_to_the_cache(session: FileSession, tmp_path: Path) -> None:
    (tmp_path / "t.bin").write_bytes(DATA)
    for strategy in ("in_memory", "in_memory_stream", "no_cache"):
        spec = FileSpec(str(tmp_path / "t.bin"), "BinaryIO", strategy)
        assert session.provide(spec, component="c", parameter="p").read() == DATA
    assert not load_settings().cache_dir.exists()


def test_in_memory_reads_the_source_once_per_session(
    session: FileSession, http_server: NginxServer
) -> None:
    url = http_server.put(f"once/{os.urandom(4).hex()}.txt", DATA)
    http_server.clear_log()
    for _ in range(3):
        assert (
            session.provide(FileSpec(url, "bytes", "in_memory"), component="c", parameter="p")
            == DATA
        )
    assert [m for m, _ in http_server.requests()].count("GET") == 1


def test_no_cache_reads_the_source_every_time(
    session: FileSession, http_server: NginxServer
) -> None:
    url = http_server.put(f"each/{os.urandom(4).hex()}.txt", DATA)
    http_server.clear_log()
    for _ in range(2):
        assert (
            session.provide(FileSpec(url, "bytes", "no_cache"), component="c", parameter="p")
            == DATA
        )
    assert [m for m, _ in http_server.requests()].count("GET") == 2


def test_a_lockfile_pin_wins_over_the_cached_version(
    http_server: NginxServer, tmp_path: Path
) -> None:
    url = http_server.put(f"pin/{os.urandom(4).hex()}.bin", b"old")
    lock = tmp_path / "daidai.lock"
    files = FileSession(load_settings(), lockfile=lock)
    assert files.provide(FileSpec(url, "bytes"), component="c", parameter="p") == b"old"
    http_server.put(url.rsplit("/", 2)[-2] + "/" + url.rsplit("/", 1)[-1], b"new")
    write_lockfile(lock, [LockEntry(url, sha(b"new"), 3)])
    fresh = FileSession(load_settings(), lockfile=lock)
    assert fresh.provide(FileSpec(url, "bytes"), component="c", parameter="p") == b"new"


def test_a_source_that_no_longer_matches_the_pin_is_an_integrity_error(
    http_server: NginxServer, tmp_path: Path
) -> None:
    url = http_server.put(f"drift/{os.urandom(4).hex()}.bin", b"changed")
    write_lockfile(tmp_path / "daidai.lock", [LockEntry(url, sha(b"pinned"), 6)])
    files = FileSession(load_settings(), lockfile=tmp_path / "daidai.lock")
    with pytest.raises(ChecksumMismatchError, match="daidai fetch"):
        files.provide(FileSpec(url, "bytes"), component="c", parameter="p")


def test_an_inline_checksum_that_contradicts_the_lockfile_is_an_error(tmp_path: Path) -> None:
    write_lockfile(tmp_path / "daidai.lock", [LockEntry("memory://x/y", sha(b"a"), 1)])
    files = FileSession(load_settings(), lockfile=tmp_path / "daidai.lock")
    spec = FileSpec("memory://x/y", "bytes", checksum=sha(b"b"))
    with pytest.raises(IntegrityError, match="daidai fetch") as caught:
        files.provide(spec, component="app.f", parameter="p")
    assert caught.value.parameter == "p"


def test_offline_mode_refuses_to_read_a_remote_source_for_memory_strategies(
    http_server: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.put("offline.txt", DATA)
    monkeypatch.setenv("DAIDAI_OFFLINE", "1")
    files = FileSession(load_settings())
    for strategy in ("on_disk", "in_memory", "no_cache"):
        with pytest.raises(OfflineError, match="daidai fetch"):
            files.provide(FileSpec(url, "bytes", strategy), component="c", parameter="p")


def test_many_threads_get_the_same_cached_path(
    session: FileSession, http_server: NginxServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = http_server.put(f"threads/{os.urandom(4).hex()}.bin", os.urandom(1 << 20))
    http_server.clear_log()
    with ThreadPoolExecutor(8) as pool:
        paths = set(
            pool.map(
                lambda _: session.provide(FileSpec(url, "Path"), component="c", parameter="p"),
                range(16),
            )
        )
    assert len(paths) == 1
    assert [m for m, _ in http_server.requests()].count("GET") == 1


def test_no_cache_bytes_do_not_double_memory() -> None:
    buffer = io.BytesIO()
    buffer.write(b"x" * (8 << 20))
    value = buffer.getvalue()
    # The assumption read_all() rests on: getvalue() hands over the buffer without a copy.
    assert buffer.getbuffer().nbytes == len(value)
