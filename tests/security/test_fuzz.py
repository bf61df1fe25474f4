"""Property: whatever a pull request puts in `daidai.toml` and `daidai.lock`, `daidai fetch
--frozen`, `verify --repair` and `cache prune --yes` write nothing outside the cache and end
in an exit code with a daidai error, never an uncaught exception. The CLI runs in-process
against a real loopback server; the URIs, layers and options are the attacks above, mixed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daidai.errors import DaidaiError
from tests.security.conftest import Recorder, Sandbox, sha256

EXAMPLES = 100
BODY = b"served bytes"
LAYERS = ["simplecache", "filecache", "blockcache", "dir", "reference", "zip://m", "tar://m"]
OPTION_KEYS = [
    "protocol", "target_protocol", "target_options", "cache_storage", "fo", "same_names",
    "simplecache", "headers", "auth", "client_kwargs", "endpoint_url", "listings_cache_location",
    "block_size", "anon",
]  # fmt: skip


def text_values(target: Path) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.sampled_from([str(target), str(target / "evil.pth"), "http", "file", "simplecache"]),
        st.booleans(),
        st.integers(-5, 5),
        st.text(max_size=12),
    )
    return st.recursive(
        leaf, lambda inner: st.dictionaries(st.sampled_from(OPTION_KEYS), inner, max_size=3)
    )


def uris(server: Recorder, target: Path) -> st.SearchStrategy[str]:
    plain = st.sampled_from(
        [
            f"{server.url}/ok.bin",
            f"{server.url}/endless.bin",
            f"{server.url}/bomb.bin",
            f"{server.url}/missing.bin",
            f"file://{target}/evil.pth",
            "memory://bucket/x.bin",
            "ftp://127.0.0.1/x",
            "../../outside.bin",
        ]
    )
    chained = st.tuples(st.sampled_from(LAYERS), plain).map(lambda t: f"{t[0]}::{t[1]}")
    return plain | chained | st.text(max_size=30)


def tomls(server: Recorder, target: Path) -> st.SearchStrategy[str]:
    import tomli_w

    tables = st.dictionaries(
        st.sampled_from(["http", "https", "file", "simplecache", f"{server.url}/", "s3", "x://"]),
        st.dictionaries(st.sampled_from(OPTION_KEYS), text_values(target), max_size=3),
        max_size=2,
    )
    doc = st.fixed_dictionaries(
        {},
        optional={
            "storage_options": tables,
            "cache_dir": st.sampled_from([str(target), "../../x", "/"]),
            "lockfile": st.sampled_from(["daidai.lock", str(target / "l.lock")]),
            "jobs": st.integers(1, 3),
        },
    )

    def dump(table: dict[str, Any]) -> str:
        try:
            return tomli_w.dumps(table)
        except (TypeError, ValueError):
            return ""

    hostile = st.sampled_from(["x = [[[[[[", "a = " + "[" * 3000])
    # Half the documents are plain (or empty), so that downloads happen too.
    return st.one_of(st.just(""), st.just("jobs = 2\n"), doc.map(dump), hostile)


def locks(server: Recorder, target: Path) -> st.SearchStrategy[str]:
    import tomli_w

    entry = st.fixed_dictionaries(
        {
            "uri": uris(server, target),
            "checksum": st.sampled_from([sha256(BODY), sha256(b"other"), "sha256:" + "0" * 64]),
            "size": st.sampled_from([len(BODY), 0, 64, 4096]),
        }
    )
    doc = st.fixed_dictionaries({"version": st.just(1), "files": st.lists(entry, max_size=3)})

    def dump(table: dict[str, Any]) -> str:
        seen: set[str] = set()
        table["files"] = [f for f in table["files"] if not (f["uri"] in seen or seen.add(f["uri"]))]
        return tomli_w.dumps(table)

    return doc.map(dump)


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    """Every exception the CLI's error boundary reports, for the test to judge."""
    import daidai.cli._errors as errors

    seen: list[BaseException] = []
    original = errors._report

    def report(exc: BaseException) -> int:
        seen.append(exc)
        return original(exc)

    monkeypatch.setattr(errors, "_report", report)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield seen


@pytest.fixture
def server(recording_server: Callable[[], Recorder]) -> Recorder:
    """One server for every example of the test."""
    recorder = recording_server()
    recorder.put("ok.bin", BODY)
    return recorder


def run_cli(argv: list[str]) -> int:
    from daidai.cli import _errors, _run_app

    _errors.state.verbose = False
    return _run_app(argv)


def expected(exc: BaseException) -> bool:
    from daidai.cli._errors import UsageProblem, _is_click_error

    return isinstance(exc, (DaidaiError, UsageProblem)) or _is_click_error(exc)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_project_files_never_write_outside_the_cache_nor_escape(
    data: Any,
    server: Recorder,
    sandbox: Sandbox,
    in_process: list[BaseException],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "home" / "site-packages"
    project = tmp_path / "pr"
    project.mkdir(exist_ok=True)
    (project / "daidai.toml").write_text(data.draw(tomls(server, target)))
    (project / "daidai.lock").write_text(data.draw(locks(server, target)))
    monkeypatch.chdir(project)
    sandbox.mark()
    in_process.clear()

    for argv in (["fetch", "--frozen"], ["verify", "--repair"], ["cache", "prune", "--yes"]):
        code = run_cli(argv)
        capsys.readouterr()
        assert code in (0, 1, 2, 3), (argv, code)

    assert [e for e in in_process if not expected(e)] == []
    assert sandbox.outside() == set()
    assert not target.exists()
