"""Records planted in a shared cache (`lockfiles/`, `ref.json`, `.last-used`, `CACHEDIR.TAG`)
as links, FIFOs or deep nesting: never written through, never a hang, never a bare crash
(SPEC §8)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli_project import DAIDAI, daidai, one_error_line
from tests.security.conftest import files_under
from tests.security.test_cache_commands import cached_project

DEEP = "[" * 200_000 + "]" * 200_000


def only_entry(cache: Path) -> Path:
    (entry,) = (cache / "files").glob("*/*")
    return entry


@pytest.mark.parametrize(
    "command", [("cache", "ls"), ("fetch", "--frozen"), ("cache", "prune", "--yes")]
)
def test_a_planted_lockfiles_link_is_refused_and_never_written_through(
    tmp_path: Path, cache_dir: Path, command: tuple[str, ...]
) -> None:
    project = cached_project(tmp_path / "proj", count=1)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.json").write_text('{"mine": 1}')
    for record in (cache_dir / "lockfiles").iterdir():
        record.unlink()
    (cache_dir / "lockfiles").rmdir()
    (cache_dir / "lockfiles").symlink_to(victim)

    line = one_error_line(daidai(*command, cwd=project))

    assert f"{cache_dir / 'lockfiles'}: it is a symbolic link" in line, line
    assert files_under(victim) == {victim / "keep.json"}
    assert (victim / "keep.json").read_text() == '{"mine": 1}'


def run_bounded(args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI; a hang is killed (and reported as one) rather than left behind."""
    child = subprocess.Popen(
        [DAIDAI, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"`daidai {' '.join(args)}` hung")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return subprocess.CompletedProcess(args, child.returncode, out, err)


@pytest.mark.parametrize("record", ["ref.json", ".last-used", "lockfile", "CACHEDIR.TAG"])
def test_a_fifo_planted_as_a_record_never_hangs_a_command(
    tmp_path: Path, cache_dir: Path, record: str
) -> None:
    project = cached_project(tmp_path / "proj", count=1)
    if record == "lockfile":
        (planted,) = (cache_dir / "lockfiles").iterdir()
    elif record == "CACHEDIR.TAG":
        planted = cache_dir / record
    else:
        planted = only_entry(cache_dir) / record
    planted.unlink(missing_ok=True)
    os.mkfifo(planted)

    for args in (("cache", "ls"), ("fetch", "--frozen"), ("verify",), ("cache", "prune", "--yes")):
        done = run_bounded(args, project)
        assert "Traceback" not in done.stderr, done
        assert done.returncode in (0, 1), done


def test_a_second_sigterm_ends_a_command_whose_cleanup_is_stuck(tmp_path: Path) -> None:
    # The main thread waits on a FIFO no one writes to after the first SIGTERM (a cleanup
    # stuck in I/O): the second SIGTERM must still end the process.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = (
        "import os, sys\n"
        "from daidai.cli._errors import stop_on_sigterm\n"
        "stop_on_sigterm()\n"
        "try:\n"  # 'ready' inside the try: the signal may land while it is being printed
        "    print('ready', flush=True)\n"
        "    sys.stdin.readline()\n"
        "finally:\n"
        f"    print('stuck', flush=True); open({str(fifo)!r}).read()\n"
    )
    child = subprocess.Popen(
        [str(Path(DAIDAI).parent / "python"), "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline() == "stuck\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 143
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


@pytest.mark.parametrize("where", ["ref.json", "lockfile"])
def test_deeply_nested_records_are_no_crash_and_clear_still_clears(
    tmp_path: Path, cache_dir: Path, where: str
) -> None:
    project = cached_project(tmp_path / "proj", count=1)
    entry = only_entry(cache_dir)
    if where == "lockfile":
        (planted,) = (cache_dir / "lockfiles").iterdir()
    else:
        planted = entry / "ref.json"
    planted.write_text(DEEP)

    for args in (("cache", "ls"), ("fetch", "--frozen"), ("cache", "prune", "--yes")):
        done = daidai(*args, cwd=project)
        assert "RecursionError" not in done.stderr, done
        assert done.code == 0, done
    assert daidai("fetch", "--frozen", cwd=project).code == 0
    only_entry(cache_dir).joinpath("ref.json").write_text(DEEP)
    done = daidai("cache", "clear", "--yes", cwd=project)
    assert done.code == 0, done
    assert list((cache_dir / "files").glob("*/*")) == []


def test_a_last_used_link_never_touches_its_target(tmp_path: Path, cache_dir: Path) -> None:
    project = cached_project(tmp_path / "proj", count=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    marker = only_entry(cache_dir) / ".last-used"
    marker.unlink(missing_ok=True)
    marker.symlink_to(victim)

    done = daidai("fetch", "--frozen", cwd=project)

    assert done.code == 0, done
    assert victim.stat().st_mtime == 1_000_000_000
    assert victim.read_text() == "mine"
