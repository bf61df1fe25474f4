"""Soak: SIGKILL at random moments across `daidai fetch`, runtime loads, `verify --repair`,
`cache prune` and lockfile writes, in real subprocesses.

Afterwards: `daidai verify` is clean, the lockfile parses, a predictor reads the exact bytes,
the next `cache prune` removes every leftover of the killed runs (staging folders and
temporary files in the cache), and the next lockfile write removes the temporary files of
killed lockfile writers. The RNG is seeded; the seed is printed (`FAULTS_SEED` reruns it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from daidai.files import layout
from daidai.files.lockfile import LockEntry, read_lockfile, write_lockfile
from tests.faults.conftest import child_command, child_env, run_cli, sha256, write_project

MiB = 1024 * 1024
HttpFile = Callable[..., tuple[str, bytes]]
LOAD = "import app; print(app.digests())"


def operations(project: Path) -> dict[str, list[str]]:
    daidai = [sys.executable, "-m", "daidai"]
    return {
        "fetch": [*daidai, "fetch"],
        "fetch-refresh": [*daidai, "fetch", "--refresh"],
        "load": [sys.executable, "-c", LOAD],
        "verify-repair": [*daidai, "verify", "--repair"],
        "prune": [*daidai, "cache", "prune", "--yes"],
        "clear": [*daidai, "cache", "clear", "--yes"],
        "lockfile-write": child_command("lockwrite", str(project / "side.lock"), "100000"),
    }


def leftovers(cache: Path) -> list[Path]:
    """Staging folders and temporary files anywhere in the cache."""
    return [p for p in cache.rglob("*") if p.name.startswith(layout.TMP_PREFIX)]


def soak(
    project: Path, cache: Path, files: dict[str, bytes], kills: int, seed: int
) -> Counter[str]:
    rng = random.Random(seed)
    ops = operations(project)
    env = child_env(PYTHONDONTWRITEBYTECODE="1")
    tally: Counter[str] = Counter()
    while tally["kills"] < kills:
        name = rng.choice(sorted(ops))
        child = subprocess.Popen(
            ops[name], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.05, 1.5))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            tally["kills"] += 1
            tally[f"killed {name}"] += 1
        _, err = child.communicate(timeout=120)
        if child.returncode == 0:
            tally[f"finished {name}"] += 1
        elif child.returncode != -signal.SIGKILL:
            # A run that finished on its own may fail only with a clean, one-line error.
            lines = err.decode().strip().splitlines()
            assert child.returncode in (1, 3) and len(lines) == 1, (name, err.decode())
            assert lines[0].startswith("error: ") and "Traceback" not in lines[0], lines
            tally[f"failed {name}"] += 1
    return tally


def check_after(project: Path, cache: Path, files: dict[str, bytes]) -> None:
    fetched = run_cli("fetch", cwd=project)
    assert fetched.returncode == 0, fetched.stderr
    lock = read_lockfile(project / "daidai.lock", missing_ok=False)
    assert {e.checksum for e in lock.entries.values()} == {sha256(d) for d in files.values()}
    read_lockfile(project / "side.lock")  # the other lockfile, killed mid-write, parses too
    verified = run_cli("verify", cwd=project)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    load = subprocess.run(
        [sys.executable, "-c", LOAD], cwd=project, env=child_env(), capture_output=True, text=True
    )
    expected = " ".join(f"{n}={sha256(d).partition(':')[2]}" for n, d in sorted(files.items()))
    assert load.stdout.strip() == expected, load.stderr
    pruned = run_cli("cache", "prune", "--yes", cwd=project)
    assert pruned.returncode == 0, pruned.stderr
    assert leftovers(cache) == [], "the next prune leaves no staging folder or temporary file"
    write_lockfile(project / "side.lock", [LockEntry("http://h/x", sha256(b"x"), 1)])
    stray = sorted(p.name for p in project.iterdir() if p.name.endswith(".tmp"))
    assert stray == [], "the next lockfile write removes temporary files of killed writers"
    assert run_cli("verify", cwd=project).returncode == 0


def run_soak(
    tmp_path: Path, cache_dir: Path, http_file: HttpFile, kills: int
) -> tuple[int, Counter[str]]:
    seed = int(os.environ.get("FAULTS_SEED", "0")) or random.randrange(1 << 30)
    print(f"soak seed={seed} (FAULTS_SEED={seed} reruns it), kills={kills}")
    sizes = {"big": 24 * MiB, "mid": 4 * MiB, "small": 300 * 1024}
    served = {name: http_file(size) for name, size in sizes.items()}
    project = tmp_path / "proj"
    write_project(project, {name: url for name, (url, _) in served.items()})
    files = {name: data for name, (_, data) in served.items()}
    tally = soak(project, cache_dir, files, kills, seed)
    print(dict(sorted(tally.items())))
    check_after(project, cache_dir, files)
    return seed, tally


def test_ten_sigkills_at_random_moments_leave_a_clean_cache(
    tmp_path: Path, cache_dir: Path, http_file: HttpFile
) -> None:
    run_soak(tmp_path, cache_dir, http_file, kills=10)


@pytest.mark.slow
def test_a_hundred_sigkills_at_random_moments_leave_a_clean_cache(
    tmp_path: Path, cache_dir: Path, http_file: HttpFile
) -> None:
    run_soak(tmp_path, cache_dir, http_file, kills=int(os.environ.get("FAULTS_KILLS", "100")))
