"""The pytest plugin that daidai registers: isolated cache and manager, overrides, network guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

COMPONENTS = """
from typing import Annotated

from daidai import artifact, predictor

BUILT = []


class RealClient:
    def __init__(self):
        BUILT.append("client")
        raise RuntimeError("the real client must not be built in tests")


@artifact
def client() -> RealClient:
    return RealClient()


@artifact
def retriever(c: Annotated[object, client]) -> str:
    return f"retriever using {c}"


@predictor
def answer(question: str, r: Annotated[str, retriever]) -> str:
    return f"{question} -> {r}"
"""


# hypothesis's plugin takes ~2 s to import, and pytester re-imports it on every inner run.
FAST = ("-p", "no:hypothesispytest")


def _write(pytester: pytest.Pytester, **files: str) -> None:
    pytester.makepyfile(**{name: textwrap.dedent(body) for name, body in files.items()})


def test_plugin_is_registered_by_the_entry_point_and_lists_its_markers() -> None:
    # A separate interpreter, as a user's `pytest` would run: nothing but the entry point
    # tells pytest about the plugin.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider", *FAST],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "@pytest.mark.daidai_no_network(allow_loopback=True)" in result.stdout
    assert "@pytest.mark.daidai_overrides(mapping)" in result.stdout


def test_plugin_imports_no_heavy_module() -> None:
    code = (
        "import sys, daidai.testing.pytest_plugin; "
        "print(sorted(m for m in ('fsspec', 'rich', 'typer') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_test_gets_its_own_empty_cache_folder_and_manager(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        test_cache="""
        import os
        from pathlib import Path

        from daidai import ModelManager, artifact
        from daidai._manager import active_manager

        SEEN = []

        @artifact
        def model() -> object:
            return object()

        def test_first(daidai_cache, daidai_manager):
            assert os.environ["DAIDAI_CACHE_DIR"] == str(daidai_cache)
            assert list(daidai_cache.iterdir()) == []
            assert daidai_manager.settings.cache_dir == daidai_cache
            assert active_manager() is daidai_manager
            (daidai_cache / "leftover").write_text("x")
            SEEN.append((daidai_cache, model()))

        def test_second(daidai_cache, daidai_manager):
            assert list(daidai_cache.iterdir()) == []
            first_cache, first_model = SEEN[0]
            assert daidai_cache != first_cache
            assert model() is not first_model
            assert daidai_manager.namespace == "test:test_second"
        """,
    )
    result = pytester.runpytest("--strict-markers", *FAST)
    result.assert_outcomes(passed=2)


def test_overrides_reach_any_depth_through_fixture_and_marker(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        app=COMPONENTS,
        test_overrides="""
        import pytest

        import app

        @pytest.fixture
        def daidai_overrides():
            return {app.client: "FakeClient"}

        def test_fixture_override(daidai_manager):
            assert app.answer("q") == "q -> retriever using FakeClient"
            assert app.BUILT == []

        @pytest.mark.daidai_overrides({app.client: "MarkerClient"})
        def test_marker_wins_over_fixture(daidai_manager):
            assert app.answer("q") == "q -> retriever using MarkerClient"

        @pytest.mark.daidai_overrides({app.retriever: "canned"})
        def test_override_a_middle_artifact(daidai_manager):
            assert app.answer("q") == "q -> canned"
            assert app.BUILT == []
        """,
    )
    result = pytester.runpytest("--strict-markers", *FAST)
    result.assert_outcomes(passed=3)


def test_manager_factory_closes_managers_newest_first(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        test_factory="""
        from daidai import artifact

        CLOSED = []

        @artifact
        def resource(name: str = "r"):
            yield name
            CLOSED.append(name)

        def test_two_managers(daidai_manager_factory):
            first = daidai_manager_factory(namespace="first")
            first.load(resource, {"name": "first"})
            second = daidai_manager_factory({resource: {"name": "second"}}, namespace="second")
            assert second.load(resource) == "second"
            assert CLOSED == []

        def test_closed_after_previous_test():
            assert CLOSED == ["second", "first"]
        """,
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=2)


def test_failing_teardown_of_an_artifact_is_reported_as_an_error(
    pytester: pytest.Pytester,
) -> None:
    _write(
        pytester,
        test_teardown="""
        from daidai import artifact

        @artifact
        def leaky():
            yield "conn"
            raise RuntimeError("could not close the connection")

        def test_uses_leaky(daidai_manager):
            assert leaky() == "conn"
        """,
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*could not close the connection*"])


def test_network_guard_fails_tests_that_reach_the_network(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        test_network="""
        import socket
        import urllib.request

        import pytest

        # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never routed, and never reached here,
        # since the guard refuses before connecting.

        @pytest.mark.daidai_no_network
        def test_connects_out():
            socket.create_connection(("192.0.2.1", 80), timeout=1)

        @pytest.mark.daidai_no_network
        def test_swallows_the_error():
            try:
                urllib.request.urlopen("http://192.0.2.1/model.bin", timeout=1)
            except OSError:
                pass  # a library retrying or wrapping must not hide the attempt

        def test_resolves_a_name(daidai_no_network):
            socket.getaddrinfo("models.example.com", 443)

        @pytest.mark.daidai_no_network
        def test_loopback_is_allowed():
            with socket.create_server(("127.0.0.1", 0)) as server:
                port = server.getsockname()[1]
                socket.create_connection(("localhost", port), timeout=1).close()

        @pytest.mark.daidai_no_network(allow_loopback=False)
        def test_strict_refuses_loopback():
            with socket.create_server(("127.0.0.1", 0)) as server:
                socket.create_connection(server.getsockname(), timeout=1).close()

        def test_unguarded_test_is_untouched():
            with socket.create_server(("127.0.0.1", 0)) as server:
                socket.create_connection(server.getsockname(), timeout=1).close()
        """,
    )
    reports = pytester.inline_run("--strict-markers", *FAST)
    passed, _, failed = reports.listoutcomes()
    assert sorted(r.head_line for r in passed) == [
        "test_loopback_is_allowed",
        "test_unguarded_test_is_untouched",
    ]
    messages = {r.head_line: str(r.longrepr) for r in failed}
    assert messages["test_connects_out"] == (
        "unexpected network access: connect to ('192.0.2.1', 80)"
    )
    assert messages["test_swallows_the_error"].startswith(
        "unexpected network access: connect to ('192.0.2.1', 80)"
    )
    assert messages["test_resolves_a_name"] == (
        "unexpected network access: resolve 'models.example.com'"
    )
    assert messages["test_strict_refuses_loopback"].startswith(
        "unexpected network access: connect to ('127.0.0.1', "
    )


def test_network_guard_stops_a_daidai_download_from_a_remote_host(
    pytester: pytest.Pytester,
) -> None:
    _write(
        pytester,
        test_download="""
        from typing import Annotated

        import pytest

        from daidai import DaidaiError, predictor

        @predictor
        def size(data: Annotated[bytes, "http://192.0.2.1/weights.bin"]) -> int:
            return len(data)

        @pytest.mark.daidai_no_network
        def test_fetches(daidai_manager):
            with pytest.raises(DaidaiError):
                size()
        """,
    )
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unexpected network access: connect to*192.0.2.1*"])


def test_daidai_cache_isolates_predictors_called_outside_a_manager(
    pytester: pytest.Pytester,
) -> None:
    # No `with ModelManager()`: the calls use the process-wide default manager, which must
    # follow each test's DAIDAI_CACHE_DIR, warm predictor included.
    _write(
        pytester,
        test_default="""
        from pathlib import Path
        from typing import Annotated

        from daidai import predictor

        WEIGHTS = Path(__file__).with_name("weights.bin")
        WEIGHTS.write_bytes(b"weights")

        @predictor
        def weights_path(p: Annotated[Path, str(WEIGHTS)]) -> Path:
            return p

        def test_first(daidai_cache):
            assert weights_path().is_relative_to(daidai_cache)

        def test_second(daidai_cache):
            assert weights_path().is_relative_to(daidai_cache)
            assert weights_path().read_bytes() == b"weights"
        """,
    )
    result = pytester.runpytest("--strict-markers", *FAST)
    result.assert_outcomes(passed=2)
