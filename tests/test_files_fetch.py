"""Fetching into the cache: hits without network, atomic versions, errors that say what to do."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import fsspec
import pytest

from daidai._settings import Settings, load_settings
from daidai.errors import (
    ChecksumMismatchError,
    FileFetchError,
    OfflineError,
    SourceNotFoundError,
    SourcePermissionError,
)
from daidai.files import layout
from daidai.files.fetch import FetchRequest, cached, fetch, fetch_many
from tests.servers import NginxServer, S3Server, free_port

REPO = Path(__file__).resolve().parent.parent


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def settings_(**changes: object) -> Settings:
    base = load_settings()
    return Settings(**{**base.__dict__, **changes})  # type: ignore[arg-type]


@pytest.fixture
def memory_file() -> tuple[str, bytes]:
    fs = fsspec.filesystem("memory")
    uri = f"memory://bucket/{os.urandom(4).hex()}/model.bin"
    data = os.urandom(3000)
    fs.pipe(uri, data)
    return uri, data


def test_a_miss_downloads_and_a_hit_returns_the_same_path(memory_file: tuple[str, bytes]) -> None:
    uri, data = memory_file
    first = fetch(FetchRequest(uri), settings=load_settings())
    second = fetch(FetchRequest(uri), settings=load_settings())
    assert (first.downloaded, second.downloaded) == (True, False)
    assert second.path == first.path and first.path.read_bytes() == data
    assert first.path.name == "model.bin" and first.checksum == sha(data)


def test_a_directory_is_fetched_whole_with_its_file_names(tmp_path: Path) -> None:
    source = tmp_path / "tokenizer"
    (source / "sub").mkdir(parents=True)
    (source / "vocab.txt").write_text("a\nb\n")
    (source / "sub" / "config.json").write_text("{}")
    result = fetch(FetchRequest(source.as_uri()), settings=load_settings())
    assert (result.kind, result.nfiles, result.size) == ("directory", 2, 6)
    assert result.path.name == "tokenizer"
    assert (result.path / "sub" / "config.json").read_text() == "{}"
    from daidai.files.hashing import hash_directory

    assert hash_directory(result.path).checksum == result.checksum


def test_a_wrong_checksum_caches_nothing_and_names_the_file(memory_file: tuple[str, bytes]) -> None:
    uri, _ = memory_file
    request = FetchRequest(uri, checksum="sha256:" + "0" * 64, component="app.load", parameter="w")
    with pytest.raises(ChecksumMismatchError) as caught:
        fetch(request, settings=load_settings())
    assert (caught.value.uri, caught.value.component, caught.value.parameter) == (
        uri,
        "app.load",
        "w",
    )
    assert layout.scan(load_settings().cache_dir).entries == ()  # not even an empty folder


def test_a_pinned_checksum_is_served_only_from_that_version(memory_file: tuple[str, bytes]) -> None:
    uri, old = memory_file
    fetch(FetchRequest(uri), settings=load_settings())
    new = b"new weights"
    fsspec.filesystem("memory").pipe(uri, new)
    assert fetch(FetchRequest(uri), settings=load_settings()).path.read_bytes() == old
    pinned = fetch(FetchRequest(uri, checksum=sha(new)), settings=load_settings())
    assert pinned.downloaded and pinned.path.read_bytes() == new


def test_offline_mode_serves_hits_and_refuses_remote_misses(http_file) -> None:  # type: ignore[no-untyped-def]
    url, data = http_file(100)
    fetch(FetchRequest(url), settings=load_settings())
    offline = settings_(offline=True)
    assert fetch(FetchRequest(url), settings=offline).path.read_bytes() == data
    other, _ = http_file(100)
    with pytest.raises(OfflineError, match="daidai fetch"):
        fetch(FetchRequest(other, component="c", parameter="p"), settings=offline)


def test_force_download_replaces_the_version_and_keeps_the_old_one_until_done(
    memory_file: tuple[str, bytes],
) -> None:
    uri, old = memory_file
    first = fetch(FetchRequest(uri), settings=load_settings())
    fsspec.filesystem("memory").pipe(uri, b"v2")
    second = fetch(FetchRequest(uri, force=True), settings=load_settings())
    assert second.downloaded and second.path.read_bytes() == b"v2"
    assert first.path.read_bytes() == old  # a reader holding the old path is not disturbed


def test_cached_never_downloads(memory_file: tuple[str, bytes]) -> None:
    uri, _ = memory_file
    assert cached(FetchRequest(uri), settings=load_settings()) is None
    fetch(FetchRequest(uri), settings=load_settings())
    assert cached(FetchRequest(uri), settings=load_settings()) is not None


def test_http_records_the_etag_and_makes_one_get(http_server: NginxServer, http_file) -> None:  # type: ignore[no-untyped-def]
    url, data = http_file(5 * 1024 * 1024 + 1)
    http_server.clear_log()
    result = fetch(FetchRequest(url), settings=load_settings())
    assert result.path.read_bytes() == data and result.etag
    assert [m for m, _ in http_server.requests()].count("GET") == 1


def test_the_same_path_on_two_servers_stays_apart(http_server: NginxServer, tmp_path: Path) -> None:
    with NginxServer() as other:
        a = http_server.put("same/x.bin", b"from a")
        b = other.put("same/x.bin", b"from b")
        got = [fetch(FetchRequest(u), settings=load_settings()).path.read_bytes() for u in (a, b)]
    assert got == [b"from a", b"from b"]


def test_s3_objects_and_prefixes_are_fetched_with_their_identity(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/m/weights.bin", b"w" * 1000)
    s3_server.put(f"{bucket}/m/tok/vocab.txt", b"v")
    options = s3_server.storage_options
    file = fetch(FetchRequest(uri, options), settings=load_settings())
    assert file.path.read_bytes() == b"w" * 1000 and file.etag
    folder = fetch(FetchRequest(f"s3://{bucket}/m/tok", options), settings=load_settings())
    assert folder.kind == "directory" and (folder.path / "vocab.txt").read_bytes() == b"v"
    ref = (layout.entry_dir(load_settings().cache_dir, uri, options) / "ref.json").read_text()
    assert s3_server.secret not in ref


def test_wrong_s3_credentials_are_a_permission_error(s3_server: S3Server) -> None:
    bucket = s3_server.make_bucket()
    uri = s3_server.put(f"{bucket}/x.bin", b"x")
    options = {**s3_server.storage_options, "secret": "wrong-secret"}
    with pytest.raises(SourcePermissionError) as caught:
        fetch(FetchRequest(uri, options, component="c", parameter="p"), settings=load_settings())
    assert caught.value.uri == uri and "wrong-secret" not in str(caught.value)


def test_a_404_is_source_not_found_naming_uri_component_and_parameter(
    http_server: NginxServer,
) -> None:
    url = http_server.url_for("missing.bin")
    with pytest.raises(SourceNotFoundError) as caught:
        fetch(
            FetchRequest(url, component="app.load", parameter="weights"), settings=load_settings()
        )
    assert str(caught.value).startswith(f"app.load, parameter 'weights': {url}:")


def test_a_refused_connection_is_a_fetch_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/x.bin"
    with pytest.raises(FileFetchError, match="cannot reach") as caught:
        fetch(FetchRequest(url, component="c", parameter="p"), settings=load_settings())
    assert not isinstance(caught.value, SourceNotFoundError)


def test_fetch_many_reports_progress_and_keeps_order(http_file) -> None:  # type: ignore[no-untyped-def]
    files = [http_file(1000 * (i + 1)) for i in range(6)]
    seen: dict[str, int] = {}
    results = fetch_many(
        [FetchRequest(u) for u, _ in files],
        settings=load_settings(),
        jobs=3,
        on_progress=lambda uri, done, total: seen.__setitem__(uri, done),
    )
    assert [r.path.read_bytes() for r in results] == [d for _, d in files]
    assert seen == {u: len(d) for u, d in files}
    again = fetch_many([FetchRequest(u) for u, _ in files], settings=load_settings(), refresh=True)
    assert all(r.downloaded for r in again)


def test_fetch_many_finishes_every_file_before_raising(http_file, http_server: NginxServer) -> None:  # type: ignore[no-untyped-def]
    good, _ = http_file(10)
    bad = http_server.url_for("nope.bin")
    results = fetch_many(
        [FetchRequest(bad), FetchRequest(good)], settings=load_settings(), return_exceptions=True
    )
    assert isinstance(results[0], SourceNotFoundError) and results[1].downloaded
    with pytest.raises(SourceNotFoundError):
        fetch_many([FetchRequest(bad), FetchRequest(good)], settings=load_settings())


# -- other processes ---------------------------------------------------------------------------

CHILD = """
import hashlib, os, signal, sys
from daidai._settings import load_settings
from daidai.files import fetch as fetch_module, layout
from daidai.files.fetch import FetchRequest, fetch
url, kill_at, force = sys.argv[1], sys.argv[2], sys.argv[3] == "1"

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if kill_at.isdigit():
    def progress(uri, done, total):
        if done >= int(kill_at):
            die()
else:
    progress = None
if kill_at in ("rename", "ref"):
    target = {"rename": fetch_module, "ref": layout}[kill_at]
    name = {"rename": "_rename_dir", "ref": "write_ref"}[kill_at]
    setattr(target, name, die)
result = fetch(FetchRequest(url, force=force), settings=load_settings(), on_progress=progress)
print(result.downloaded, hashlib.sha256(result.path.read_bytes()).hexdigest())
"""


def run_child(
    url: str, kill_at: str = "none", *, force: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", CHILD, url, kill_at, "1" if force else "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_warm_cache_in_another_process_makes_no_request_even_with_the_server_down(
    http_server: NginxServer,
    http_file,  # type: ignore[no-untyped-def]
) -> None:
    url, data = http_file(200_000)
    fetch(FetchRequest(url), settings=load_settings())
    http_server.clear_log()
    warm = run_child(url)
    assert warm.stdout.split() == ["False", hashlib.sha256(data).hexdigest()], warm.stderr
    assert http_server.requests() == []
    http_server.stop()
    try:
        down = run_child(url)
    finally:
        http_server.start()
    assert down.stdout.split() == ["False", hashlib.sha256(data).hexdigest()], down.stderr


def test_a_download_killed_at_any_point_never_leaves_a_file_that_is_used(http_file) -> None:  # type: ignore[no-untyped-def]
    size = 16 * 1024 * 1024
    url, data = http_file(size)
    points = [str(n) for n in (1, 65536, 4 << 20, 5 << 20, 8 << 20, 12 << 20, size - 1, size)]
    for kill_at in [*points, "rename", "ref"]:
        child = run_child(url, kill_at)
        assert child.returncode == -9, (kill_at, child.stderr)
        result = fetch(FetchRequest(url), settings=load_settings())
        assert result.path.read_bytes() == data, kill_at
        layout.delete_entry(layout.scan(load_settings().cache_dir).entries[0])


def test_a_forced_download_killed_halfway_leaves_the_old_copy_in_use(http_file) -> None:  # type: ignore[no-untyped-def]
    url, data = http_file(8 * 1024 * 1024)
    fetch(FetchRequest(url), settings=load_settings())
    assert run_child(url, str(4 << 20), force=True).returncode == -9
    result = fetch(FetchRequest(url), settings=load_settings())
    assert not result.downloaded and result.path.read_bytes() == data


def test_eight_processes_loading_one_file_download_it_once(
    http_server: NginxServer,
    http_file,  # type: ignore[no-untyped-def]
) -> None:
    url, data = http_file(64 * 1024 * 1024)
    http_server.clear_log()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, "none", "0"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    digest = hashlib.sha256(data).hexdigest()
    assert sorted(o[0] for o in outputs) == ["False"] * 7 + ["True"]
    assert {o[1] for o in outputs} == {digest}
    gets = [p for m, p in http_server.requests() if m == "GET"]
    assert len(gets) == 1


_HOLD_FILELOCK = """
import sys, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_a_download_waits_for_another_process_holding_the_entry_lock_with_filelock(
    tmp_path: Path,
) -> None:
    # The uncontended lock is a bare `flock`; a holder using filelock (an older daidai, or
    # `cache prune` probing) must still exclude it, and the download must go on once free.
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 1000)
    settings = settings_(cache_dir=tmp_path / "cache")
    request = FetchRequest(source.as_uri())
    entry = layout.entry_dir(settings.cache_dir, request.uri, {})
    entry.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_FILELOCK, str(entry / layout.LOCK_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(fetch(request, settings=settings)))
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not results  # blocked behind the other process
    finally:
        assert holder.stdin is not None
        holder.stdin.write("go\n")
        holder.stdin.close()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
    worker.join(timeout=10)
    assert [r.path.read_bytes() for r in results] == [b"w" * 1000]  # type: ignore[attr-defined]


def test_a_held_download_lock_is_seen_as_busy_by_filelock_in_another_process(
    tmp_path: Path,
) -> None:
    from daidai.files._source import Origin
    from daidai.files.fetch import _lock_entry

    entry = tmp_path / "entry"
    entry.mkdir()
    probe = (
        "import sys, filelock\n"
        "try:\n    filelock.FileLock(sys.argv[1]).acquire(timeout=0)\n"
        "except filelock.Timeout:\n    print('busy')\nelse:\n    print('free')\n"
    )
    command = [sys.executable, "-c", probe, str(entry / layout.LOCK_FILE)]
    release = _lock_entry(entry, Origin("file:///x", None, None, {}))
    try:
        inside = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        release()
    after = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert (inside, after) == ("busy\n", "free\n")


def test_an_s3_object_is_one_get_and_records_the_identity_s3fs_reports(
    s3_server: S3Server,
) -> None:
    # `fetch --locked` compares what s3fs's `info` says with what the download recorded,
    # so the one-GET path must record the very same ETag and version id.
    from fsspec.asyn import sync

    bucket = s3_server.make_bucket(versioned=True)
    small = s3_server.put(f"{bucket}/small.bin", b"s" * 1000)
    big_data = os.urandom(9 * 1024 * 1024 + 7)  # more than one chunk: streamed
    big = s3_server.put(f"{bucket}/big.bin", big_data)
    options = s3_server.storage_options
    fs = fsspec.filesystem("s3", **options)
    sync(fs.loop, fs.set_session)
    sent: list[str] = []
    fs.s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))

    for uri, data in ((small, b"s" * 1000), (big, big_data)):
        sent.clear()
        result = fetch(FetchRequest(uri, options), settings=load_settings())
        assert sent == ["GET"]
        assert result.path.read_bytes() == data and result.checksum == sha(data)
        info = fs.info(uri)
        assert (result.etag, result.version_id) == (info["ETag"], info["VersionId"])
        assert result.version_id  # the bucket is versioned


def test_a_missing_s3_key_is_source_not_found_and_a_prefix_is_a_folder(
    s3_server: S3Server,
) -> None:
    bucket = s3_server.make_bucket()
    s3_server.put(f"{bucket}/tok/vocab.txt", b"v")
    options = s3_server.storage_options
    with pytest.raises(SourceNotFoundError) as caught:
        fetch(FetchRequest(f"s3://{bucket}/nope.bin", options), settings=load_settings())
    assert caught.value.uri == f"s3://{bucket}/nope.bin"
    folder = fetch(FetchRequest(f"s3://{bucket}/tok", options), settings=load_settings())
    assert folder.kind == "directory" and (folder.path / "vocab.txt").read_bytes() == b"v"


class _SlowCountingHandler(http.server.BaseHTTPRequestHandler):
    """Serves `b"x" * 100` for any path after 0.5 s, counting requests in flight.

    A request stops counting before its answer is sent: counted after, the client could get
    its body and send the next request before the count went down, and one request too many
    would seem in flight.
    """

    lock = threading.Lock()
    active = 0
    most = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            time.sleep(0.5)
        finally:
            with cls.lock:
                cls.active -= 1
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"x" * 100)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("jobs", [1, 3])
def test_fetch_many_never_has_more_downloads_in_flight_than_jobs(jobs: int) -> None:
    handler = type("Handler", (_SlowCountingHandler,), {"active": 0, "most": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        requests = [FetchRequest(f"{base}/f{i}.bin") for i in range(4 * jobs + 1)]
        results = fetch_many(requests, settings=load_settings(), jobs=jobs)
    finally:
        server.shutdown()
        server.server_close()
    assert [r.size for r in results] == [100] * len(requests)
    assert handler.most == jobs


_FETCH_MANY_CHILD = """
import json, sys
from daidai._settings import load_settings
from daidai.files.fetch import FetchRequest, fetch_many
urls = json.loads(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
results = fetch_many([FetchRequest(u) for u in urls], settings=load_settings(), jobs=1)
print(json.dumps([r.downloaded for r in results]), flush=True)
"""


def test_two_processes_fetching_the_same_files_in_opposite_orders_both_finish(
    tmp_path: Path,
) -> None:
    # Each process ends up holding locks the other wants. A worker thread that waited for
    # such a lock could not run the finish of its own process's downloads: both stalled.
    names = [f"f{i}.bin" for i in range(8)]
    with NginxServer(root=tmp_path / "root", latency_ms=100) as server:
        urls = [server.put(name, name.encode() * 1000) for name in names]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _FETCH_MANY_CHILD, json.dumps(order)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for order in (urls, urls[::-1])
        ]
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60) for child in children]
        assert [child.returncode for child in children] == [0, 0], outputs
        gets = [path for method, path in server.requests() if method == "GET"]
    downloaded = [json.loads(out) for out, _ in outputs]
    # Every file was downloaded by exactly one of the two; the other found it cached.
    by_url = [a + b for a, b in zip(downloaded[0], downloaded[1][::-1], strict=True)]
    assert by_url == [1] * len(names)
    assert sorted(gets) == sorted(f"/{name}" for name in names)
