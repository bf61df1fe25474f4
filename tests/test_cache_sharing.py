"""A cache shared by projects and live processes (SPEC §1.4, §4), through the installed
`daidai` and real processes: pins every project registers, versions in use, downloads in
progress, live last use, and `cache rm`."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daidai.files import layout
from tests.cli_project import DAIDAI, daidai, make_project, one_error_line
from tests.servers import NginxServer

DAY = 86400.0
HOLDER = """
import hashlib, sys
from pathlib import Path
from typing import Annotated

from daidai import artifact, predictor
{setup}

@artifact
def model(weights: Annotated[Path, {url!r}]) -> Path:
    return weights


@predictor
def digest(m: Annotated[Path, model]) -> str:
    return f"{{m}} {{hashlib.sha256(m.read_bytes()).hexdigest()}}"


print(digest(), flush=True)
for line in sys.stdin:
    print(digest(), flush=True)
"""


def _listing(cwd: Path) -> dict[str, object]:
    result = daidai("cache", "ls", "--json", cwd=cwd)
    assert result.code == 0, result
    document: dict[str, object] = json.loads(result.stdout)
    return document


def _uris(cwd: Path) -> set[str]:
    return {e["uri"] for e in _listing(cwd)["entries"]}  # type: ignore[attr-defined]


@dataclass
class Holder:
    """A process that handed out a cached `Path` and keeps it while it runs."""

    process: subprocess.Popen[str]
    path: Path
    digest: str

    def read_again(self) -> tuple[Path, str]:
        """Ask the process to read its file again: (path, sha256 of the bytes it read)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        path, digest = self.process.stdout.readline().split()
        return Path(path), digest

    def kill(self) -> None:
        _end(self.process)


def _end(process: subprocess.Popen[str]) -> None:
    """SIGKILL `process` (if it still runs), reap it and close its pipes."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def start_holder(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(url: str, setup: str = "") -> Holder:
        script = tmp_path / f"holder{len(started)}.py"
        script.write_text(HOLDER.format(url=url, setup=textwrap.dedent(setup)))
        process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the holder exited with {process.wait()}"
        path, digest = line.split()
        return Holder(process, Path(path), digest)

    try:
        yield start
    finally:
        for process in started:
            _end(process)


# -- pins every project registers ----------------------------------------------------------


def test_a_prune_from_another_folder_keeps_every_projects_pinned_files(
    tmp_path: Path, http_server: NginxServer
) -> None:
    one = make_project(tmp_path / "one", http_server)
    two = make_project(tmp_path / "two", http_server)
    stray = one.serve("stray.bin", b"s" * 3000)
    (one.root / "app" / "stray.py").write_text(
        "from typing import Annotated\nfrom daidai import artifact\n"
        f"@artifact\ndef stray(data: Annotated[bytes, {stray!r}]) -> bytes:\n    return data\n"
    )
    assert one.run("fetch", "app.models", "app.stray").code == 0
    assert one.run("fetch").code == 0  # mirrors app.models: stray.bin is unpinned now
    assert two.run("fetch").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pinned = {*one.urls.values(), *two.urls.values()} - {stray}

    listed = _listing(elsewhere)["entries"]
    pruned = daidai("cache", "prune", "--yes", cwd=elsewhere)

    assert {e["uri"] for e in listed if e["locked"]} == pinned  # type: ignore[union-attr]
    assert pruned.code == 0, pruned
    assert _uris(elsewhere) == pinned
    assert stray in pruned.stdout


def test_prune_project_keeps_only_this_projects_pins_and_gone_lockfiles_stop_counting(
    tmp_path: Path, http_server: NginxServer
) -> None:
    one = make_project(tmp_path / "one", http_server)
    two = make_project(tmp_path / "two", http_server)
    assert one.run("fetch").code == 0 and two.run("fetch").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    narrowed = one.run("cache", "prune", "--project", "--yes")
    after_narrowed = _uris(elsewhere)
    assert two.run("fetch").code == 0
    two.lockfile.unlink()
    just_gone = daidai("cache", "prune", "--yes", cwd=elsewhere)
    after_just_gone = _uris(elsewhere)
    _age_missing_records(8 * DAY)
    long_gone = daidai("cache", "prune", "--yes", cwd=elsewhere)

    assert narrowed.code == 0, narrowed
    assert after_narrowed == set(one.urls.values())
    assert just_gone.code == 0, just_gone
    assert after_just_gone == {*one.urls.values(), *two.urls.values()}  # a grace period
    assert long_gone.code == 0, long_gone
    assert _uris(elsewhere) == set(one.urls.values())
    assert [r["lockfile"] for r in _records()] == [str(one.lockfile)]


def test_a_lockfile_missing_for_a_moment_keeps_its_pins_and_a_dry_run_writes_nothing(
    tmp_path: Path, http_server: NginxServer
) -> None:
    project = make_project(tmp_path / "proj", http_server)
    assert project.run("fetch").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    registry = Path(os.environ["DAIDAI_CACHE_DIR"]) / "lockfiles"
    before = {p.name: p.read_bytes() for p in registry.iterdir()}
    moved = tmp_path / "proj.tmp"

    project.root.rename(moved)  # a deploy swapping folders, a checkout
    dry = daidai("cache", "prune", "--dry-run", cwd=elsewhere)
    after_dry = {p.name: p.read_bytes() for p in registry.iterdir()}
    real = daidai("cache", "prune", "--yes", cwd=elsewhere)
    moved.rename(project.root)
    again = daidai("cache", "prune", "--yes", cwd=elsewhere)
    verified = project.run("verify", env={"DAIDAI_OFFLINE": "1"})

    assert dry.code == 0 and "nothing to prune" in dry.stdout, dry
    assert after_dry == before
    assert real.code == 0 and "nothing to prune" in real.stdout, real
    assert again.code == 0 and "nothing to prune" in again.stdout, again
    assert verified.code == 0, verified
    assert _uris(elsewhere) == set(project.urls.values())
    [record] = _records()
    assert record["lockfile"] == str(project.lockfile) and "missing_since" not in record


def _records() -> list[dict[str, object]]:
    registry = Path(os.environ["DAIDAI_CACHE_DIR"]) / "lockfiles"
    return [json.loads(p.read_text()) for p in sorted(registry.glob("*.json"))]


def _age_missing_records(seconds: float) -> None:
    """Make every missing lockfile look missing since `seconds` ago."""
    registry = Path(os.environ["DAIDAI_CACHE_DIR"]) / "lockfiles"
    for path in registry.glob("*.json"):
        record = json.loads(path.read_text())
        if "missing_since" in record:
            record["missing_since"] -= seconds
            path.write_text(json.dumps(record))


def test_a_prune_with_no_lockfile_anywhere_says_everything_counts_as_unpinned(
    tmp_path: Path, http_server: NginxServer
) -> None:
    url = http_server.put("unpinned/w.bin", b"w" * 100)
    _use_once(tmp_path, url)

    dry = daidai("cache", "prune", "--dry-run", cwd=tmp_path)

    assert dry.code == 0, dry
    assert "no lockfile is registered" in dry.stderr
    assert "every entry counts as unpinned" in dry.stderr
    assert url in dry.stdout


def _use_once(folder: Path, url: str) -> None:
    """Load `url` through a predictor in a process of its own, with no project."""
    code = (
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import predictor\n"
        f"@predictor\ndef size(p: Annotated[Path, {url!r}]) -> int:\n    return 0\nsize()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, timeout=60)


# -- versions in use ---------------------------------------------------------------------


def test_a_version_a_live_process_holds_survives_prune_clear_and_rm_until_it_is_killed(
    tmp_path: Path, http_server: NginxServer, start_holder: object
) -> None:
    data = os.urandom(200_000)
    url = http_server.put("held/model.bin", data)
    holder = start_holder(url)  # type: ignore[operator]
    expected = hashlib.sha256(data).hexdigest()

    pruned = daidai("cache", "prune", "--yes", cwd=tmp_path)
    cleared = daidai("cache", "clear", "--yes", cwd=tmp_path)
    removed = daidai("cache", "rm", "--yes", "http://*", cwd=tmp_path)
    again = holder.read_again()

    for result in (pruned, cleared, removed):
        assert result.code == 0, result
        assert f"skipped {url}" in result.stderr and "in use" in result.stderr, result
    assert holder.digest == expected and again == (holder.path, expected)
    assert holder.path.read_bytes() == data

    holder.kill()
    after_kill = daidai("cache", "prune", "--yes", cwd=tmp_path)

    assert after_kill.code == 0, after_kill
    assert "skipped" not in after_kill.stderr, after_kill
    assert not holder.path.exists()
    assert _uris(tmp_path) == set()


def test_a_refresh_while_a_process_holds_the_old_version_keeps_it_for_that_process(
    tmp_path: Path, http_server: NginxServer, start_holder: object
) -> None:
    project = make_project(tmp_path / "proj", http_server)
    assert project.run("fetch").code == 0
    holder = start_holder(project.urls["weights.bin"])
    old = project.files["weights.bin"]
    project.serve("weights.bin", os.urandom(64 * 1024))

    refreshed = project.run("fetch", "--refresh")
    pruned = project.run("cache", "prune", "--yes")

    assert refreshed.code == 0 and pruned.code == 0, (refreshed, pruned)
    assert "old version" not in pruned.stdout and "in use" in pruned.stderr, pruned
    assert holder.read_again()[1] == hashlib.sha256(old).hexdigest()
    holder.kill()
    assert "old version" in project.run("cache", "prune", "--yes").stdout
    assert not holder.path.exists()


FORKER = """
import os, sys, time
from pathlib import Path
from typing import Annotated

from daidai import predictor


@predictor
def where(p: Annotated[Path, {url!r}]) -> str:
    return str(p)


path = where()  # handed out before the fork, as a server that preloads (gunicorn --preload)
child = os.fork()
if child == 0:
    time.sleep(600)  # a worker that keeps serving after its parent is gone
    os._exit(0)
print(child, path, flush=True)
time.sleep(600)
"""


def test_a_forked_worker_keeps_the_version_in_use_after_its_parent_is_killed(
    tmp_path: Path, http_server: NginxServer
) -> None:
    url = http_server.put("forked/model.bin", b"f" * 5000)
    (tmp_path / "forker.py").write_text(FORKER.format(url=url))
    parent = subprocess.Popen(
        [sys.executable, "forker.py"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    child = None
    try:
        assert parent.stdout is not None
        pid, path = parent.stdout.readline().split()
        child = int(pid)
        _end(parent)
        pruned_while_child_lives = daidai("cache", "prune", "--yes", cwd=tmp_path)
        kept = Path(path).exists()
        os.kill(child, signal.SIGKILL)
        _wait_gone(child)
        child = None
        pruned_after = daidai("cache", "prune", "--yes", cwd=tmp_path)
    finally:
        _end(parent)
        if child is not None:
            os.kill(child, signal.SIGKILL)

    assert "in use by a running process" in pruned_while_child_lives.stderr
    assert kept
    assert pruned_after.code == 0 and not Path(path).exists(), pruned_after


def _wait_gone(pid: int) -> None:
    """Wait until `pid` (a grandchild, reparented) has ended: gone, or a zombie (whose
    descriptors, and so its locks, are already released)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} is still alive")


def test_a_long_running_process_keeps_recording_its_use(
    tmp_path: Path, http_server: NginxServer, start_holder: object, cache_dir: Path
) -> None:
    url = http_server.put("live/model.bin", b"m" * 1000)
    # The interval is a minute; the child shortens it (a private knob) to keep the test short.
    holder = start_holder(url, "import daidai.files.in_use as u\nu.LAST_USE_SECONDS = 0.2")
    marker = holder.path.parent.parent / layout.LAST_USED_FILE
    past = time.time() - 40 * DAY
    os.utime(marker, (past, past))

    deadline = time.monotonic() + 30
    while marker.stat().st_mtime < time.time() - DAY and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = _listing(tmp_path)["entries"][0]  # type: ignore[index]
    old = daidai("cache", "prune", "--older-than", "30d", "--dry-run", cwd=tmp_path)

    assert entry["last_used"] > _iso(time.time() - DAY), entry
    assert "nothing to prune" in old.stdout, old


def _iso(timestamp: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


# -- downloads in progress -----------------------------------------------------------------


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    """The first 8 MiB at once (two of daidai's 4 MiB chunks), the rest once `gate` is set."""

    protocol_version = "HTTP/1.0"
    gate = threading.Event()
    body = b""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def do_GET(self) -> None:
        self.do_HEAD()
        try:
            self.wfile.write(self.body[: 8 << 20])
            self.wfile.flush()
            self.gate.wait(60)
            self.wfile.write(self.body[8 << 20 :])
        except OSError:
            pass  # the client went away

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def gated() -> Iterator[tuple[str, bytes, threading.Event]]:
    body = os.urandom(12 << 20)
    gate = threading.Event()
    handler = type("Handler", (_GatedHandler,), {"gate": gate, "body": body})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/big.bin", body, gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()


def _start_fetch(root: Path, url: str) -> subprocess.Popen[str]:
    root.mkdir()
    (root / "daidai.toml").write_text('modules = ["big"]\n')
    (root / "big.py").write_text(
        "from pathlib import Path\nfrom typing import Annotated\nfrom daidai import artifact\n\n"
        f"@artifact\ndef big(p: Annotated[Path, {url!r}]) -> int:\n    return 0\n"
    )
    return subprocess.Popen(
        [DAIDAI, "fetch"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_staging(cache_dir: Path) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for staging in (cache_dir / layout.FILES_DIR).glob(f"*/*/{layout.TMP_PREFIX}*"):
            if any(f.is_file() and f.stat().st_size > 0 for f in staging.rglob("*")):
                return staging
        time.sleep(0.02)
    raise AssertionError(f"the download never started writing: {list(cache_dir.rglob('*'))}")


def test_prune_and_clear_during_a_first_download_leave_it_alone(
    tmp_path: Path, cache_dir: Path, gated: tuple[str, bytes, threading.Event]
) -> None:
    url, body, gate = gated
    fetching = _start_fetch(tmp_path / "proj", url)
    try:
        staging = _wait_for_staging(cache_dir)
        listed = daidai("cache", "ls", cwd=tmp_path)
        pruned = daidai("cache", "prune", "--yes", cwd=tmp_path)
        cleared = daidai("cache", "clear", "--yes", cwd=tmp_path)
        still_there = staging.is_dir()
        gate.set()
        _, err = fetching.communicate(timeout=60)
    finally:
        _end(fetching)

    assert listed.code == 0 and "?" not in listed.stdout, listed
    assert "1 in progress" in listed.stdout, listed
    assert pruned.code == 0 and cleared.code == 0, (pruned, cleared)
    assert "download in progress" in cleared.stderr, cleared
    assert still_there
    assert fetching.returncode == 0, err
    entries = _listing(tmp_path)["entries"]
    assert [e["uri"] for e in entries] == [url]  # type: ignore[index]
    cached = next(layout.entry_dir(cache_dir, url).glob("sha256-*/big.bin"))
    assert cached.read_bytes() == body


def test_rm_and_clear_during_a_refresh_leave_the_entry_and_its_download_alone(
    tmp_path: Path, cache_dir: Path, gated: tuple[str, bytes, threading.Event]
) -> None:
    url, body, gate = gated
    gate.set()
    first = _start_fetch(tmp_path / "proj", url)
    try:
        assert first.wait(timeout=60) == 0
    finally:
        _end(first)
    gate.clear()
    refreshing = subprocess.Popen(
        [DAIDAI, "fetch", "--refresh"],
        cwd=tmp_path / "proj",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        staging = _wait_for_staging(cache_dir)
        removed = daidai("cache", "rm", "--yes", url, cwd=tmp_path)
        cleared = daidai("cache", "clear", "--yes", cwd=tmp_path)
        still_there = staging.is_dir()
        gate.set()
        _, err = refreshing.communicate(timeout=60)
    finally:
        _end(refreshing)

    for result in (removed, cleared):
        assert result.code == 0, result
        assert f"skipped {url}: download in progress" in result.stderr, result
    assert still_there
    assert refreshing.returncode == 0, err
    assert _uris(tmp_path) == {url}
    cached = next(layout.entry_dir(cache_dir, url).glob("sha256-*/big.bin"))
    assert cached.read_bytes() == body


def test_a_prune_names_a_broken_registered_lockfile_instead_of_ignoring_its_pins(
    tmp_path: Path, http_server: NginxServer
) -> None:
    one = make_project(tmp_path / "one", http_server)
    assert one.run("fetch").code == 0
    one.lockfile.write_text("this is not TOML [")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    refused = daidai("cache", "prune", "--yes", cwd=elsewhere)

    assert refused.code == 1, refused
    line = one_error_line(refused)
    assert str(one.lockfile) in line and "--project" in line, line
    listed = daidai("cache", "ls", "--json", cwd=elsewhere)
    assert listed.code == 0 and str(one.lockfile) in listed.stderr, listed
    assert {e["uri"] for e in json.loads(listed.stdout)["entries"]} == set(one.urls.values())


def test_a_killed_first_download_is_counted_apart_in_ls_and_pruned(
    tmp_path: Path, cache_dir: Path, gated: tuple[str, bytes, threading.Event]
) -> None:
    url, _, _ = gated
    fetching = _start_fetch(tmp_path / "proj", url)
    try:
        staging = _wait_for_staging(cache_dir)
    finally:
        _end(fetching)

    plain = daidai("cache", "ls", cwd=tmp_path)
    document = _listing(tmp_path)
    pruned = daidai("cache", "prune", "--yes", cwd=tmp_path)

    assert plain.code == 0 and "?" not in plain.stdout, plain
    assert "0 in progress, 1 left by killed processes" in plain.stdout, plain
    assert document["entries"] == []
    [item] = document["staging"]  # type: ignore[misc]
    assert item["in_progress"] is False and item["size"] > 0
    assert pruned.code == 0, pruned
    assert not staging.exists()
    assert _listing(tmp_path)["staging"] == []


# -- cache rm ------------------------------------------------------------------------------


def test_cache_rm_takes_uris_and_globs_plans_first_and_honours_dry_run(
    tmp_path: Path, http_server: NginxServer
) -> None:
    project = make_project(tmp_path / "proj", http_server)
    assert project.run("fetch").code == 0
    weights, vocab = project.urls["weights.bin"], project.urls["vocab.txt"]

    dry = project.run("cache", "rm", "--dry-run", "*weights*")
    after_dry = _uris(project.root)
    refused = project.run("cache", "rm", "*weights*")
    done = project.run("cache", "rm", "--yes", "*weights*")
    after = _uris(project.root)
    nothing = project.run("cache", "rm", "--yes", "http://nowhere.invalid/*")
    exact = project.run("cache", "rm", "--yes", vocab)

    assert dry.code == 0, dry
    assert weights in dry.stdout and vocab not in dry.stdout
    assert "nothing deleted" in dry.stdout
    assert after_dry == {weights, vocab}
    assert refused.code == 2 and "--yes" in one_error_line(refused), refused
    assert done.code == 0 and "freed" in done.stdout, done
    assert after == {vocab}
    assert nothing.code == 1 and "nowhere.invalid" in one_error_line(nothing), nothing
    assert exact.code == 0, exact
    assert _uris(project.root) == set()


def test_a_clear_planned_before_a_first_download_finishes_keeps_the_file_handed_out(
    tmp_path: Path,
    cache_dir: Path,
    gated: tuple[str, bytes, threading.Event],
    start_holder: object,
) -> None:
    from daidai._maintenance import apply_plan, plan_clear
    from daidai._settings import load_settings

    url, body, gate = gated
    killed = _start_fetch(tmp_path / "proj", url)
    try:
        _wait_for_staging(cache_dir)
    finally:
        _end(killed)  # its leftover makes the entry one a clear plans to delete whole
    plan = plan_clear(settings=load_settings())
    gate.set()
    holder = start_holder(url)  # type: ignore[operator]  # downloads, publishes, holds

    applied = apply_plan(plan)
    path, digest = holder.read_again()

    assert [e.path for e in plan.entries] == [path.parent.parent]
    assert path == holder.path and path.is_file()
    assert digest == hashlib.sha256(body).hexdigest()
    assert [s.why for s in applied.skipped] == ["in use by a running process"]
    assert not list(path.parent.parent.glob(f"{layout.TMP_PREFIX}*"))  # the leftover went


@pytest.mark.parametrize(
    ("signame", "code", "line"),
    [("SIGINT", 130, "error: interrupted"), ("SIGTERM", 143, "error: terminated (SIGTERM)")],
)
def test_a_first_download_stopped_by_a_signal_leaves_no_entry_and_says_so(
    tmp_path: Path,
    cache_dir: Path,
    gated: tuple[str, bytes, threading.Event],
    signame: str,
    code: int,
    line: str,
) -> None:
    url, _, _ = gated
    fetching = _start_fetch(tmp_path / "proj", url)
    try:
        _wait_for_staging(cache_dir)
        fetching.send_signal(getattr(signal, signame))
        _, err = fetching.communicate(timeout=60)
    finally:
        _end(fetching)

    document = _listing(tmp_path)
    plain = daidai("cache", "ls", cwd=tmp_path)

    assert fetching.returncode == code, err
    assert err.strip().splitlines() == [line]
    assert document["entries"] == [] and document["staging"] == [], document
    assert "?" not in plain.stdout, plain


def test_a_failed_first_fetch_leaves_no_entry_without_a_uri(tmp_path: Path) -> None:
    image = tmp_path / "image"  # a lockfile copied where its local source is not
    image.mkdir()
    (image / "daidai.toml").write_text("")
    (image / "daidai.lock").write_text(
        f'version = 1\n\n[[files]]\nuri = "data/x.txt"\nchecksum = "sha256:{"0" * 64}"\nsize = 3\n'
    )

    failed = daidai("fetch", "--frozen", cwd=image)
    document = _listing(image)

    assert failed.code == 1 and "data/x.txt" in one_error_line(failed), failed
    assert document["entries"] == [] and document["staging"] == [], document


def test_ls_sizes_an_entry_by_its_current_version_and_lists_leftovers_apart(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    labels = root / "data" / "labels.txt"
    labels.write_text("cat\n")
    (root / "daidai.toml").write_text('modules = ["lab"]\n')
    (root / "lab.py").write_text(
        "from typing import Annotated\nfrom daidai import artifact\n"
        '@artifact\ndef lab(t: Annotated[str, "data/labels.txt"]) -> str:\n    return t\n'
    )
    assert daidai("fetch", cwd=root).code == 0
    labels.write_text("cat\ndog\nbird\n")
    assert daidai("fetch", cwd=root).code == 0
    [entry] = _listing(root)["entries"]  # type: ignore[misc]
    leftover = Path(entry["path"]) / f"{layout.TMP_PREFIX}killed"
    leftover.mkdir()
    (leftover / "labels.txt").write_bytes(b"half")

    document = _listing(root)

    [listed] = document["entries"]  # type: ignore[misc]
    assert listed["versions"] == 2
    assert listed["size"] == len("cat\ndog\nbird\n")
    assert listed["total_size"] == len("cat\n") + len("cat\ndog\nbird\n")
    assert document["staging"] == [
        {"uri": str(labels), "path": str(leftover), "size": 4, "in_progress": False}
    ]
    assert document["total_size"] == listed["total_size"] + 4


def test_rm_takes_a_local_path_as_the_lockfile_writes_it_from_any_subfolder(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "models" / "lexicon.tsv").write_text("a\tb\n")
    (root / "daidai.toml").write_text('modules = ["lex"]\n')
    (root / "lex.py").write_text(
        "from typing import Annotated\nfrom daidai import artifact\n"
        '@artifact\ndef lex(t: Annotated[str, "models/lexicon.tsv"]) -> str:\n    return t\n'
    )
    assert daidai("fetch", cwd=root).code == 0
    listed = _uris(root)

    removed = daidai("cache", "rm", "--yes", "models/lexicon.tsv", cwd=root / "sub")

    assert listed == {str(root / "models" / "lexicon.tsv")}
    assert removed.code == 0 and "freed" in removed.stdout, removed
    assert _uris(root) == set()


def test_prune_project_outside_any_project_is_a_usage_error(tmp_path: Path) -> None:
    pruned = daidai("cache", "prune", "--project", "--yes", cwd=tmp_path)

    assert pruned.code == 2, pruned
    assert "--project" in one_error_line(pruned) and "project's folder" in pruned.stderr


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[Path]:
    """`folder` as a read-only mount (as root; else with its write bits removed)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            yield folder
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = folder.with_name(folder.name + "-ro")
    mount.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_clear_and_rm_on_a_read_only_cache_fail_saying_so_not_in_use(
    tmp_path: Path, http_server: NginxServer, cache_dir: Path
) -> None:
    project = make_project(tmp_path / "proj", http_server)
    assert project.run("fetch").code == 0

    with _read_only(cache_dir) as mount:
        env = {"DAIDAI_CACHE_DIR": str(mount)}
        cleared = project.run("cache", "clear", "--yes", env=env)
        removed = project.run("cache", "rm", "--yes", "*", env=env)
        dry = project.run("cache", "clear", "--dry-run", env=env)

    for failed in (cleared, removed):
        assert failed.code == 1, failed
        assert "in use" not in failed.stderr and "freed" not in failed.stdout, failed
        message = one_error_line(failed)
        assert "read-only" in message and str(mount) in message, failed
    assert dry.code == 0 and "nothing deleted (--dry-run)" in dry.stdout, dry
    assert _uris(project.root) == set(project.urls.values())


def test_the_which_version_log_names_a_local_file_by_its_absolute_path(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "models" / "lexicon.tsv").write_text("a\tb\n")
    (root / "daidai.toml").write_text("")
    code = (
        "import logging\nfrom typing import Annotated\nfrom daidai import predictor\n"
        "logging.basicConfig(level=logging.INFO)\n"
        '@predictor\ndef lex(t: Annotated[str, "models/lexicon.tsv"]) -> str:\n    return t\n'
        "lex()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stderr.splitlines() if "using " in x]
    assert f"using {root / 'models' / 'lexicon.tsv'} sha256:" in line, line


def test_fetch_locked_fails_when_a_locked_local_file_was_deleted(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    lexicon = root / "models" / "lexicon.tsv"
    lexicon.write_text("a\tb\n")
    (root / "daidai.toml").write_text('modules = ["lex"]\n')
    (root / "lex.py").write_text(
        "from typing import Annotated\nfrom daidai import artifact\n"
        '@artifact\ndef lex(t: Annotated[str, "models/lexicon.tsv"]) -> str:\n    return t\n'
    )
    assert daidai("fetch", cwd=root).code == 0
    lexicon.unlink()

    locked = daidai("fetch", "--locked", cwd=root)
    frozen = daidai("fetch", "--frozen", cwd=root)

    assert locked.code == 3, locked
    assert str(lexicon) in one_error_line(locked), locked
    assert frozen.code == 0, frozen  # the cached copy is all a frozen fetch needs


def test_rm_of_a_first_download_in_progress_says_it_skipped_it(
    tmp_path: Path, cache_dir: Path, gated: tuple[str, bytes, threading.Event]
) -> None:
    url, _, gate = gated
    fetching = _start_fetch(tmp_path / "proj", url)
    try:
        staging = _wait_for_staging(cache_dir)
        removed = daidai("cache", "rm", "--yes", url, cwd=tmp_path)
        still_there = staging.is_dir()
        gate.set()
        fetching.communicate(timeout=60)
    finally:
        _end(fetching)

    assert removed.code == 0, removed
    assert f"skipped {url}: download in progress" in removed.stderr, removed
    assert "no cache entry matches" not in removed.stderr, removed
    assert still_there and fetching.returncode == 0
    assert _uris(tmp_path) == {url}
