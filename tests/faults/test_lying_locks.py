"""Locks that lie: the 8-process race with file locking made a no-op, as on NFS or Lustre.

Duplicate downloads are allowed; wrong bytes are not. Correctness must come from the unique
staging folder and the atomic rename, never from the lock (huggingface_hub issue 4228).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daidai._maintenance import verify
from daidai._settings import load_settings
from daidai.files import layout
from daidai.files.lockfile import LockEntry, write_lockfile
from tests.faults.conftest import child_command, child_env, sha256
from tests.servers import NginxServer

MiB = 1024 * 1024
PROCESSES = 8
# Each response waits this long before its first byte, so every child that looks the file up
# while the first download is still in flight misses too. Without it the race hinged on the
# scheduler: on a loaded machine one child could finish before the others looked, and the
# lie went unseen.
LATENCY_MS = 1500


@pytest.fixture(scope="module")
def slow_server() -> Iterator[NginxServer]:
    with NginxServer(latency_ms=LATENCY_MS) as server:
        yield server


@pytest.fixture
def slow_file(slow_server: NginxServer) -> Callable[[int], tuple[str, bytes]]:
    def make(size: int) -> tuple[str, bytes]:
        data = os.urandom(size)
        return slow_server.put(f"{uuid.uuid4().hex}.bin", data), data

    return make


def race(url: str, *, lying: bool) -> list[tuple[str, str]]:
    """Start 8 processes that all look the file up at the same instant; return each one's
    `(downloaded, sha256 of the bytes it read)`."""
    env = child_env(FAULTS_LYING_LOCKS="1" if lying else "0")
    with tempfile.TemporaryDirectory() as folder:
        go = Path(folder) / "go"
        children = [
            subprocess.Popen(
                child_command("load", url, str(go)),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for child in children:  # every child has imported daidai: a slow start loses no race
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        go.touch()
        return [_outcome(child) for child in children]


def _outcome(child: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    downloaded, digest = out.split()
    return downloaded, digest


def run_rounds(
    http_server: NginxServer, make: Callable[[int], tuple[str, bytes]], size: int, rounds: int
) -> dict[str, int]:
    settings = load_settings()
    totals = {"reads": 0, "wrong": 0, "downloads": 0, "gets": 0}
    pins = []
    for _ in range(rounds):
        url, data = make(size)
        http_server.clear_log()
        outputs = race(url, lying=True)
        digest = hashlib.sha256(data).hexdigest()
        totals["reads"] += len(outputs)
        totals["wrong"] += sum(d != digest for _, d in outputs)
        totals["downloads"] += sum(flag == "True" for flag, _ in outputs)
        gets = [p for m, p in http_server.requests() if m == "GET"]
        totals["gets"] += len(gets)
        assert [d for _, d in outputs] == [digest] * PROCESSES
        pins.append(LockEntry(uri=url, checksum=sha256(data), size=size))
    write_lockfile(settings.lockfile, pins)
    report = verify(settings=settings)
    assert report.ok and len(report.files) == rounds, report
    assert [p for e in layout.scan(settings.cache_dir).entries for p in e.partials] == []
    return totals


def test_eight_processes_with_lying_locks_all_read_the_exact_bytes(
    slow_server: NginxServer, slow_file: Callable[[int], tuple[str, bytes]]
) -> None:
    totals = run_rounds(slow_server, slow_file, 16 * MiB, rounds=1)
    # The locks really lied: more than one process downloaded (else this proves nothing).
    assert totals["downloads"] >= 2 and totals["gets"] >= 2, totals
    assert totals["wrong"] == 0


def test_honest_locks_still_download_once_under_the_same_race(
    http_server: NginxServer, http_file: Callable[[int], tuple[str, bytes]]
) -> None:
    url, data = http_file(16 * MiB)
    http_server.clear_log()
    outputs = race(url, lying=False)
    assert [d for _, d in outputs] == [hashlib.sha256(data).hexdigest()] * PROCESSES
    assert sorted(flag for flag, _ in outputs) == ["False"] * 7 + ["True"]
    assert [m for m, _ in http_server.requests()].count("GET") == 1


@pytest.mark.slow
def test_ten_races_of_eight_processes_on_64_mib_with_lying_locks(
    slow_server: NginxServer, slow_file: Callable[[int], tuple[str, bytes]]
) -> None:
    rounds = int(os.environ.get("FAULTS_LOCK_ROUNDS", "10"))
    totals = run_rounds(slow_server, slow_file, 64 * MiB, rounds=rounds)
    print(f"lying locks: {totals}")
    assert totals["wrong"] == 0 and totals["downloads"] >= rounds


def test_the_lie_is_real_two_holders_at_once(tmp_path: Path) -> None:
    """The patch the children use makes a held lock acquirable by a second process."""
    lock = tmp_path / "x.lock"
    code = (
        "import sys, filelock; sys.path.insert(0, {root!r}); from tests.faults import child;"
        "child.lie_about_locks() if {lie} else None;"
        "l = filelock.FileLock({lock!r}); l.acquire(timeout=0.5); print('held')"
    )
    import filelock

    held = filelock.FileLock(str(lock))
    held.acquire()
    try:
        for lie, expected in ((True, "held"), (False, "Timeout")):
            root = str(Path(__file__).resolve().parents[2])
            done = subprocess.run(
                [sys.executable, "-c", code.format(root=root, lie=lie, lock=str(lock))],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert expected in done.stdout + done.stderr
    finally:
        held.release()
