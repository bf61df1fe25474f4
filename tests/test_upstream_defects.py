"""Each defect users met in upstream daidai 0.0.7, shown fixed here."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from daidai import ModelManager, artifact, predictor


@pytest.mark.parametrize("falsy", [0, None, [], {}, "", False])
def test_artifacts_returning_falsy_values_are_built_once(falsy: Any) -> None:
    builds: list[int] = []

    @artifact
    def empty() -> Any:
        builds.append(1)
        return falsy

    @predictor
    def use(x: int, e: Annotated[Any, empty]) -> Any:
        return e

    with ModelManager():
        assert use(1) == falsy
        assert use(2) == falsy
        assert empty() == falsy
    assert builds == [1]


def test_an_artifact_returning_an_object_without_truth_value_is_reused() -> None:
    class Array:
        def __bool__(self) -> bool:
            raise ValueError("The truth value of an array is ambiguous")

    @artifact
    def weights() -> Array:
        return Array()

    with ModelManager():
        first = weights()
        assert weights() is first


def test_one_true_and_one_point_zero_are_three_configurations() -> None:
    @artifact
    def model(value: Any = None) -> list[Any]:
        return [value]

    with ModelManager():
        objects = [model(value=1), model(value=True), model(value=1.0)]
        assert len({id(o) for o in objects}) == 3
        assert [type(o[0]) for o in objects] == [int, bool, float]
        assert model(value=1) is objects[0]


def test_a_callable_in_a_configuration_is_part_of_its_identity() -> None:
    @artifact
    def pipeline(step: Any = None) -> Any:
        return step

    with ModelManager():
        assert pipeline(step=str.upper) is str.upper
        assert pipeline(step=str.lower) is str.lower


def test_unhashable_configurations_are_compared_by_value() -> None:
    @artifact
    def model(layers: Any = None) -> list[Any]:
        return [layers]

    with ModelManager():
        assert model(layers=[1, {"a": 2}]) is model(layers=[1, {"a": 2}])
        assert model(layers=[1, {"a": 2}]) is not model(layers=[1, {"a": 3}])


def test_components_with_the_same_name_in_two_modules_do_not_collide(tmp_path: Path) -> None:
    for name, value in (("mod_a", "A"), ("mod_b", "B")):
        (tmp_path / f"{name}.py").write_text(
            f"from daidai import artifact\n@artifact\ndef model() -> str:\n    return {value!r}\n"
        )
    sys.path.insert(0, str(tmp_path))
    try:
        import mod_a  # type: ignore[import-not-found]
        import mod_b  # type: ignore[import-not-found]

        with ModelManager():
            assert (mod_a.model(), mod_b.model()) == ("A", "B")
    finally:
        sys.path.remove(str(tmp_path))


def test_generator_cleanup_runs_for_load_and_lazy_loads_in_any_namespace() -> None:
    closed: list[str] = []

    @artifact
    def resource(name: str = "x") -> Iterator[str]:
        yield name
        closed.append(name)

    manager = ModelManager(namespace="default")
    manager.load(resource, {"name": "via-load"})
    with manager:
        resource(name="lazy")
    assert sorted(closed) == ["lazy", "via-load"]


def test_distinct_predictor_arguments_are_not_kept_in_memory() -> None:
    @artifact
    def model() -> int:
        return 1

    @predictor
    def predict(x: int, m: Annotated[int, model]) -> int:
        return x + m

    with ModelManager():
        predict(0)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            predict(i)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 100,000 calls"


def test_import_creates_no_folder_and_loads_no_heavy_module(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    env.pop("DAIDAI_CACHE_DIR", None)
    code = (
        "import sys, daidai\n"
        "heavy = [m for m in ('fsspec', 'rich', 'typer', 'filelock', 'asyncio') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
