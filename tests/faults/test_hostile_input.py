"""Hostile input, property-based: URIs, `daidai.toml`, `daidai.lock` and `daidai run`
arguments. Each ends in success or a `DaidaiError` (for the CLI: exit 0-3 with one line on
stderr), never an uncaught exception, a write outside the cache folder, or code run.

Default runs keep example counts modest; the `slow` variants run ten times as many.
"""

from __future__ import annotations

import contextlib
import os
import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daidai._settings import load_settings
from daidai.errors import ConfigError, DaidaiError, LockfileError
from daidai.files import layout
from daidai.files.fetch import FetchRequest, fetch
from daidai.files.lockfile import read_lockfile
from tests.servers import NginxServer

QUICK = 100
SLOW = 1000
SENTINEL = "daidai-pwned"
# Fragments that would run code or touch files if anything evaluated or shelled them.
PAYLOADS = [
    f"$(touch {SENTINEL})",
    f"`touch {SENTINEL}`",
    f"; touch {SENTINEL}",
    f"__import__('os').system('touch {SENTINEL}')",
    f"{{__import__('pathlib').Path('{SENTINEL}').touch()}}",
    "${HOME}",
    "%(x)s",
    "{0.__class__}",
]
SEGMENTS = st.one_of(
    st.sampled_from(
        ["..", ".", "%2e%2e", "%2E%2E%2F", "..%2f..", "%00", "\x00", "\\..\\", "", "~", "/", "//"]
    ),
    st.sampled_from(PAYLOADS),
    st.text(min_size=1, max_size=12),
    st.text(alphabet="é漢字🙂\u202e\u200b\ufeff", min_size=1, max_size=6),
    st.integers(200, 4000).map(lambda n: "a" * n),
)
QUERIES = st.one_of(st.just(""), st.text(max_size=20).map(lambda q: "?" + q))
SCHEMES = st.sampled_from(["http", "memory", "file", "HTTP", "MeMoRy", "local", "weird+scheme"])


def snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under `root` except those under `skip` (the cache)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        if Path(folder) == skip or skip in Path(folder).parents:
            dirs[:] = []
            continue
        found.update(os.path.join(folder, n) for n in files + dirs if Path(folder, n) != skip)
    return found


@pytest.fixture
def sandbox(tmp_path: Path, cache_dir: Path) -> Iterator[Callable[[], None]]:
    """`check()` asserts nothing was written outside the cache and no payload ran."""
    before = snapshot(tmp_path, cache_dir)

    def check() -> None:
        # Payloads touch a file in the current folder, which is inside tmp_path.
        assert snapshot(tmp_path, cache_dir) == before
        if cache_dir.exists():
            real = cache_dir.resolve()
            for path in cache_dir.rglob("*"):
                assert real in path.resolve().parents or path.resolve() == real, path

    yield check


@pytest.fixture
def proj_dir(tmp_path: Path) -> Path:
    """An empty project folder, made before `sandbox` takes its snapshot."""
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


HYPOTHESIS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": False,
}


# -- URIs -----------------------------------------------------------------------------------


def uris(http: NginxServer) -> st.SearchStrategy[str]:
    host = http.url.split("://", 1)[1]
    path = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)
    return st.builds(
        lambda scheme, p, q: f"{scheme}://{host if scheme.lower() == 'http' else ''}/{p}{q}",
        SCHEMES,
        path,
        QUERIES,
    ) | st.text(max_size=60)


def check_uri(uri: str, *, plant: bool) -> None:
    """Fetch `uri` (after planting bytes there in memory when asked): the bytes or an error."""
    planted = None
    if plant and uri.lower().startswith("memory://"):
        try:
            fsspec.filesystem("memory").pipe(uri, b"planted")
            planted = b"planted"
        except Exception:  # fsspec itself refuses the name: nothing to plant
            planted = None
    try:
        result = fetch(FetchRequest(uri, component="fuzz", parameter="p"), settings=load_settings())
    except DaidaiError as exc:
        assert str(exc)  # a message, whatever the input
        return
    assert result.path.exists()
    cache = load_settings().cache_dir.resolve()
    assert cache in result.path.resolve().parents
    assert layout.safe_name(result.path.name) == result.path.name
    if planted is not None and result.kind == "file":
        assert result.path.read_bytes() == planted


def _uri_test(max_examples: int) -> Callable[..., None]:
    @settings(max_examples=max_examples, **HYPOTHESIS)  # type: ignore[arg-type]
    @given(data=st.data(), plant=st.booleans())
    def run(http_server: NginxServer, sandbox: Callable[[], None], data: Any, plant: bool) -> None:
        check_uri(data.draw(uris(http_server)), plant=plant)
        sandbox()

    return run


test_hostile_uris_end_in_content_or_a_daidai_error = _uri_test(QUICK)
test_many_hostile_uris_end_in_content_or_a_daidai_error = pytest.mark.slow(_uri_test(SLOW))


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9/../../etc/passwd",
        "memory://b/%2e%2e/%2e%2e/x",
        "memory://b/" + "n" * 4000,
        "memory://b/" + "é" * 2000 + ".bin",
        "memory://b/x.bin?v=1&../../y",
        "memory://b/a\x00b",
        "file:///dev/null/../etc/passwd",
        "memory://b/..",
    ],
)
def test_named_hostile_uris_stay_inside_the_cache(uri: str, sandbox: Callable[[], None]) -> None:
    check_uri(uri, plant=True)
    sandbox()


# -- daidai.toml ----------------------------------------------------------------------------

KEYS = st.sampled_from(
    ["modules", "cache_dir", "lockfile", "default_cache_strategy", "jobs", "offline",
     "storage_options", "log_level", "unknown", "", "tool", "daidai"]
)  # fmt: skip
TOML_VALUES = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True),
        st.text(max_size=30),
        st.sampled_from([*PAYLOADS, "../../../../etc", "/", "on_disk", "DEBUG"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def toml_documents() -> st.SearchStrategy[str]:
    import tomli_w

    def dump(table: dict[str, Any]) -> str:
        try:
            return tomli_w.dumps(table)
        except (TypeError, ValueError):
            return ""

    structured = st.dictionaries(KEYS, TOML_VALUES, max_size=5).map(dump)
    garbage = st.text(alphabet=string.printable + "é\x00[]=\"'", max_size=200)
    return structured | garbage


def check_toml(folder: Path, text: str) -> None:
    (folder / "daidai.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        resolved = load_settings(start=folder)
    except ConfigError as exc:
        assert str(folder / "daidai.toml") in str(exc) or "DAIDAI" in str(exc)
        return
    assert resolved.jobs >= 1 and isinstance(resolved.cache_dir, Path)


def _toml_test(max_examples: int) -> Callable[..., None]:
    @settings(max_examples=max_examples, **HYPOTHESIS)  # type: ignore[arg-type]
    @given(text=toml_documents())
    def run(proj_dir: Path, sandbox: Callable[[], None], text: str) -> None:
        check_toml(proj_dir, text)
        (proj_dir / "daidai.toml").unlink()
        sandbox()

    return run


test_hostile_daidai_toml_is_settings_or_a_config_error = _toml_test(QUICK)
test_many_hostile_daidai_toml_are_settings_or_config_errors = pytest.mark.slow(_toml_test(SLOW))


# -- daidai.lock ----------------------------------------------------------------------------

LOCK_KEYS = st.sampled_from(
    ["uri", "checksum", "size", "etag", "version_id", "kind", "nfiles", "x"]
)
CHECKSUMS = st.one_of(
    st.just("sha256:" + "a" * 64),
    st.text(alphabet="0123456789abcdefABCDEF:sha", max_size=72),
    st.sampled_from(["sha256:", "md5:00", "sha256:" + "g" * 64]),
)
LOCK_VALUES = st.one_of(TOML_VALUES, CHECKSUMS, st.sampled_from(["file", "directory"]))


def lock_documents() -> st.SearchStrategy[str]:
    import tomli_w

    entry = st.dictionaries(LOCK_KEYS, LOCK_VALUES, max_size=7)
    doc = st.fixed_dictionaries(
        {"version": st.one_of(st.just(1), TOML_VALUES), "files": st.lists(entry, max_size=4)}
    )

    def dump(table: dict[str, Any]) -> str:
        try:
            return tomli_w.dumps(table)
        except (TypeError, ValueError):
            return ""

    return doc.map(dump) | st.text(alphabet=string.printable + "é\x00[]", max_size=200)


def check_lock(folder: Path, text: str) -> None:
    from daidai.files.session import FileSession
    from daidai.files.spec import FileSpec

    lock = folder / "daidai.lock"
    lock.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        parsed = read_lockfile(lock)
    except LockfileError as exc:
        assert str(lock) in str(exc)
        return
    session = FileSession(load_settings(start=folder), lockfile=lock)
    for uri in list(parsed.entries)[:2]:
        spec = FileSpec(uri=uri, type="bytes", strategy="in_memory")
        # A pinned URI from a hostile lockfile: the pin is honoured or refused.
        with contextlib.suppress(DaidaiError):
            session.provide(spec, component="fuzz", parameter="p")
    session.close()


def _lock_test(max_examples: int) -> Callable[..., None]:
    @settings(max_examples=max_examples, **HYPOTHESIS)  # type: ignore[arg-type]
    @given(text=lock_documents())
    def run(proj_dir: Path, sandbox: Callable[[], None], text: str) -> None:
        check_lock(proj_dir, text)
        (proj_dir / "daidai.lock").unlink()
        sandbox()

    return run


test_hostile_daidai_lock_is_read_or_a_lockfile_error = _lock_test(QUICK)
test_many_hostile_daidai_lock_are_read_or_lockfile_errors = pytest.mark.slow(_lock_test(SLOW))


# -- daidai run -----------------------------------------------------------------------------

RUN_APP = """
from __future__ import annotations
from daidai import predictor

@predictor
def echo(text: str, n: int = 1, ratio: float = 0.5, flag: bool = False) -> str:
    return f"{text!r} {n} {ratio} {flag}"

@predictor
def nothing() -> None:
    return None
"""
TOKENS = st.one_of(
    st.sampled_from(
        ["--text", "--n", "--ratio", "--flag", "--no-flag", "--json", "--", "-v", "-h", "--x",
         "1", "-1", "1e999", "nan", "inf", "99999999999999999999999", "true", "", "=", "--text="]
    ),
    st.sampled_from(PAYLOADS),
    st.text(max_size=20).filter(lambda t: "\x00" not in t),
)  # fmt: skip
TARGETS = st.sampled_from(
    ["runapp:echo", "runapp:nothing", "runapp:missing", "runapp", "os:system", "runapp.py:echo",
     "../runapp:echo", ":echo", "runapp:", "runapp:echo:extra", "no_such_module:f", "runapp:RUN"]
)  # fmt: skip


def check_run(
    argv: list[str], capsys: pytest.CaptureFixture[str], seen: list[BaseException]
) -> None:
    from daidai.cli import _errors, _run_app

    _errors.state.verbose = False  # module state: a fresh process starts without -v
    seen.clear()
    code = _run_app(["run", *argv])
    _, err = capsys.readouterr()
    assert code in (0, 1, 2, 3), (argv, code, err)
    if code:
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), (argv, err)
        assert len(lines) == 1 or "-v" in argv, (argv, err)  # a traceback only with -v
    for exc in seen:
        assert _expected_error(exc), (argv, repr(exc))
    seen.clear()


def _expected_error(exc: BaseException) -> bool:
    from daidai.cli._errors import UsageProblem, _is_click_error

    return isinstance(exc, (DaidaiError, UsageProblem)) or _is_click_error(exc)


@pytest.fixture
def run_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    """A project with `runapp.py`; yields the list of exceptions the CLI reported."""
    import daidai.cli._errors as errors

    folder = tmp_path / "runproj"
    folder.mkdir()
    (folder / "runapp.py").write_text(RUN_APP)
    (folder / "RUN").write_text("")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    seen: list[BaseException] = []
    original = errors._report

    def report(exc: BaseException) -> int:
        seen.append(exc)
        return original(exc)

    monkeypatch.setattr(errors, "_report", report)
    yield seen
    sys.modules.pop("runapp", None)


def _run_test(max_examples: int) -> Callable[..., None]:
    @settings(max_examples=max_examples, **HYPOTHESIS)  # type: ignore[arg-type]
    @given(target=TARGETS, args=st.lists(TOKENS, max_size=6))
    def run(
        run_project: list[BaseException],
        capsys: pytest.CaptureFixture[str],
        sandbox: Callable[[], None],
        target: str,
        args: list[str],
    ) -> None:
        check_run([target, *args], capsys, run_project)
        sandbox()

    return run


test_hostile_run_arguments_exit_cleanly = _run_test(QUICK)
test_many_hostile_run_arguments_exit_cleanly = pytest.mark.slow(_run_test(SLOW))
