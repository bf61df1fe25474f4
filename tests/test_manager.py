"""ModelManager: scopes, namespaces, preloading, overrides, teardown, threads."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import pytest

from daidai import CycleError, DaidaiError, ModelManager, artifact, predictor
from daidai.errors import TeardownError


def test_objects_are_built_once_per_manager_and_separate_between_managers() -> None:
    builds: list[str] = []

    @artifact
    def model() -> object:
        builds.append("model")
        return object()

    with ModelManager(namespace="prod") as prod:
        a = model()
        assert model() is a
        with ModelManager(namespace="staging"):
            b = model()
            assert b is not a
        assert model() is a
        assert repr(prod) == "<ModelManager namespace='prod' loaded=1>"
    assert builds == ["model", "model"]


def test_preload_builds_at_construction_and_the_predictor_reuses_it() -> None:
    builds: list[str] = []

    @artifact
    def model() -> str:
        builds.append("model")
        return "m"

    @predictor
    def predict(x: str, m: Annotated[str, model]) -> str:
        return x + m

    with ModelManager(preload=[predict]) as manager:
        assert builds == ["model"]
        assert predict("a") == "am"
        assert manager.load(model) == "m"
    assert builds == ["model"]


def test_a_configuration_given_to_the_manager_applies_where_dependents_set_none() -> None:
    @artifact
    def load_model(model_path: str = "default.pkl") -> str:
        return model_path

    @predictor
    def predict(x: str, model: Annotated[str, load_model]) -> str:
        return f"{x}@{model}"

    @predictor
    def pinned(x: str, model: Annotated[str, load_model, {"model_path": "pinned.pkl"}]) -> str:
        return f"{x}@{model}"

    with ModelManager({load_model: {"model_path": "local/path/model.pkl"}}):
        assert predict("input") == "input@local/path/model.pkl"
        assert load_model() == "local/path/model.pkl"
        assert pinned("input") == "input@pinned.pkl"
    with ModelManager():
        assert predict("input") == "input@default.pkl"
        result = predict("input", model=load_model(model_path="local/other.pkl"))
        assert result == "input@local/other.pkl"


def test_overrides_replace_a_component_at_any_depth_without_building_it() -> None:
    built: list[str] = []

    @artifact
    def openai_client() -> str:
        built.append("real")
        return "real"

    @artifact
    def agent(client: Annotated[str, openai_client]) -> str:
        return f"agent({client})"

    @predictor
    def ask(q: str, a: Annotated[str, agent]) -> str:
        return f"{a}:{q}"

    with ModelManager(overrides={openai_client: "fake"}):
        assert ask("hi") == "agent(fake):hi"
        assert openai_client() == "fake"
    assert built == []


def test_generators_are_torn_down_in_reverse_creation_order_however_loaded() -> None:
    events: list[str] = []

    @artifact
    def database() -> Iterator[str]:
        events.append("open db")
        yield "db"
        events.append("close db")

    @artifact
    def repository(db: Annotated[str, database]) -> Iterator[str]:
        events.append("open repo")
        yield f"repo({db})"
        events.append("close repo")

    @artifact
    def lazy() -> Iterator[str]:
        events.append("open lazy")
        yield "lazy"
        events.append("close lazy")

    manager = ModelManager([repository])
    with manager:
        assert lazy() == "lazy"
    assert events == [
        "open db",
        "open repo",
        "open lazy",
        "close lazy",
        "close repo",
        "close db",
    ]
    manager.close()  # idempotent
    assert events.count("close db") == 1


def test_a_failing_teardown_is_logged_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    @artifact
    def first() -> Iterator[int]:
        yield 1
        closed.append("first")

    @artifact
    def broken() -> Iterator[int]:
        yield 2
        raise RuntimeError("disk on fire")

    @artifact
    def last() -> Iterator[int]:
        yield 3
        closed.append("last")

    manager = ModelManager([first, broken, last])
    with caplog.at_level(logging.ERROR), pytest.raises(TeardownError) as info:
        manager.close()
    assert closed == ["last", "first"]
    assert "broken" in str(info.value) and "disk on fire" in str(info.value)
    assert "teardown of" in caplog.text


def test_a_failing_teardown_does_not_mask_the_exception_leaving_the_block() -> None:
    @artifact
    def broken() -> Iterator[int]:
        yield 2
        raise RuntimeError("teardown failed")

    with pytest.raises(KeyError), ModelManager([broken]):
        raise KeyError("the original error")


def test_the_default_manager_tears_down_generators_at_interpreter_exit() -> None:
    code = (
        "from daidai import artifact\n"
        "@artifact\n"
        "def conn():\n"
        "    print('opened', flush=True)\n"
        "    yield 1\n"
        "    print('closed', flush=True)\n"
        "assert conn() == 1\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["opened", "closed"]


def test_thirty_two_threads_calling_first_build_a_slow_artifact_once() -> None:
    builds: list[int] = []

    @artifact
    def slow_model() -> object:
        builds.append(threading.get_ident())
        time.sleep(0.05)
        return object()

    @predictor
    def predict(x: int, m: Annotated[object, slow_model]) -> int:
        return id(m)

    barrier = threading.Barrier(32)

    def worker(x: int) -> int:
        barrier.wait()
        return predict(x)

    with ModelManager(), ThreadPoolExecutor(32) as pool:
        ids = set(pool.map(worker, range(32)))
    assert len(builds) == 1
    assert len(ids) == 1


def test_concurrent_first_calls_on_a_diamond_graph_build_each_node_once() -> None:
    builds: list[str] = []
    lock = threading.Lock()

    def record(name: str) -> None:
        with lock:
            builds.append(name)
        time.sleep(0.01)

    @artifact
    def base() -> str:
        record("base")
        return "base"

    @artifact
    def left(b: Annotated[str, base]) -> str:
        record("left")
        return f"L({b})"

    @artifact
    def right(b: Annotated[str, base]) -> str:
        record("right")
        return f"R({b})"

    @predictor
    def top(x: int, lft: Annotated[str, left], rgt: Annotated[str, right]) -> str:
        return f"{lft}{rgt}"

    @predictor
    def only_right(x: int, rgt: Annotated[str, right]) -> str:
        return rgt

    barrier = threading.Barrier(16)

    def worker(x: int) -> str:
        barrier.wait()
        return top(x) if x % 2 else only_right(x)

    with ModelManager(), ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    assert sorted(builds) == ["base", "left", "right"]
    assert set(results) == {"L(base)R(base)", "R(base)"}


def test_threads_started_inside_the_block_see_the_manager_and_its_preloaded_objects() -> None:
    builds: list[str] = []

    @artifact
    def model() -> str:
        builds.append("model")
        return "m"

    @predictor
    def predict(x: int, m: Annotated[str, model]) -> str:
        return f"{m}{x}"

    with ModelManager(preload=[predict]), ThreadPoolExecutor(4) as pool:
        assert list(pool.map(predict, range(4))) == ["m0", "m1", "m2", "m3"]
    assert builds == ["model"]


def test_a_manager_per_thread_isolates_objects() -> None:
    @artifact
    def model() -> object:
        return object()

    @predictor
    def identity(x: int, m: Annotated[object, model]) -> int:
        return id(m)

    barrier = threading.Barrier(4)

    def worker(x: int) -> int:
        with ModelManager(namespace=str(threading.get_ident())):
            barrier.wait()
            value = identity(x)
            barrier.wait()  # keep every object alive until all ids are taken
            return value

    with ThreadPoolExecutor(4) as pool:
        assert len(set(pool.map(worker, range(4)))) == 4


def test_a_failed_build_is_not_cached_and_the_next_call_retries() -> None:
    attempts: list[int] = []

    @artifact
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first try fails")
        return "ok"

    with ModelManager():
        with pytest.raises(ConnectionError):
            flaky()
        assert flaky() == "ok"


def test_a_cycle_is_reported_with_its_path() -> None:
    from tests import cyclic_components

    with ModelManager(), pytest.raises(CycleError) as info:
        cyclic_components.first()
    assert info.value.path == [
        "tests.cyclic_components.first",
        "tests.cyclic_components.second",
        "tests.cyclic_components.first",
    ]
    assert "first -> " in str(info.value)


def test_a_ten_thousand_artifact_chain_builds_without_recursion_errors() -> None:
    chain: list[Any] = []

    @artifact
    def link0() -> int:
        return 0

    chain.append(link0)
    for _ in range(10_000):
        previous = chain[-1]

        def link(p: Annotated[int, previous]) -> int:
            return p + 1

        chain.append(artifact(link))
    with ModelManager():
        assert chain[-1]() == 10_000


def test_using_a_closed_manager_or_a_non_component_is_a_clear_error() -> None:
    @artifact
    def model() -> int:
        return 1

    manager = ModelManager()
    manager.close()
    with pytest.raises(DaidaiError, match="closed"):
        manager.load(model)
    with pytest.raises(DaidaiError, match="not a daidai component"):
        ModelManager(preload=[print])


def test_closing_an_entered_manager_makes_it_inactive() -> None:
    @artifact
    def model() -> object:
        return object()

    outer = ModelManager(namespace="outer")
    with outer:
        kept = model()
        inner = ModelManager(namespace="inner")
        with inner:
            assert model() is not kept
            inner.close()
            assert model() is kept  # the outer manager is active again
        assert model() is kept


def test_a_build_that_finishes_after_close_is_torn_down_and_its_caller_told() -> None:
    log: list[str] = []
    started, release = threading.Event(), threading.Event()

    @artifact
    def slow_connection() -> Iterator[str]:
        started.set()
        release.wait()
        log.append("opened")
        yield "connection"
        log.append("closed")

    outcome: list[BaseException | str] = []

    def first_call() -> None:
        try:
            outcome.append(slow_connection())
        except BaseException as exc:
            outcome.append(exc)

    with ModelManager(namespace="late") as manager:
        worker = threading.Thread(target=first_call)
        worker.start()
        try:
            assert started.wait(10)
            manager.close()  # while the build is in progress
        finally:
            release.set()
            worker.join()
    (error,) = outcome
    assert isinstance(error, DaidaiError), error
    assert "'late' was closed" in str(error) and error.component.endswith("slow_connection")
    assert log == ["opened", "closed"]  # torn down at once: nothing left for a later close
    assert "loaded=0" in repr(manager)
    with pytest.raises(DaidaiError, match="is closed"):
        manager.load(slow_connection)


def test_the_default_manager_follows_a_cache_dir_set_between_two_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")

    @predictor
    def where(p: Annotated[Path, str(weights)]) -> Path:
        return p

    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(first))
    assert where() == where()  # the second call is warm
    assert where().is_relative_to(first)
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(second))
    assert where().is_relative_to(second)
    assert where().read_bytes() == b"weights"
    monkeypatch.delenv("DAIDAI_CACHE_DIR")
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(first))
    assert where().is_relative_to(first)


def test_the_default_manager_follows_the_current_folder_to_its_daidai_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"weights")

    @predictor
    def where(p: Annotated[Path, str(weights)]) -> Path:
        return p

    monkeypatch.delenv("DAIDAI_CACHE_DIR")
    for project in ("one", "two"):
        (tmp_path / project).mkdir()
        cache = (tmp_path / project / "cache").as_posix()
        (tmp_path / project / "daidai.toml").write_text(f'cache_dir = "{cache}"\n')
    monkeypatch.chdir(tmp_path / "one")
    assert where() == where()
    assert where().is_relative_to(tmp_path / "one" / "cache")
    monkeypatch.chdir(tmp_path / "two")
    assert where().is_relative_to(tmp_path / "two" / "cache")
