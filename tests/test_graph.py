"""The component graph: configuration identity, description, cycles at any size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest

from daidai import CycleError, artifact, predictor
from daidai._component import component_of
from daidai._graph import config_key, describe


def test_configurations_equal_by_value_and_type_share_a_key() -> None:
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": True})
    assert config_key({"a": 1}) != config_key({"a": 1.0})
    assert config_key({"a": {"x": (1, 2)}}) != config_key({"a": {"x": [1, 2]}})
    marker = object()
    assert config_key({"a": marker}) == config_key({"a": marker})
    assert config_key({"a": bytearray(b"x")}) != config_key({"a": bytearray(b"x")})


def test_describe_lists_dependencies_with_configs_and_files() -> None:
    @artifact
    def client(**configuration: Any) -> dict[str, Any]:
        return configuration

    @artifact
    def weights(path: Annotated[Path, "s3://models/w.bin", {"strategy": "on_disk"}]) -> bytes:
        return path.read_bytes()

    @predictor
    def ask(
        q: str,
        c: Annotated[dict[str, Any], client, {"timeout": 5}],
        w: Annotated[bytes, weights],
    ) -> str:
        return q

    root = component_of(ask)
    assert root is not None
    infos = {info.name.rsplit(".", 1)[-1]: info for info in describe([root])}
    assert set(infos) == {"ask", "client", "weights"}
    edges = {
        (e.parameter, e.target.rsplit(".", 1)[-1], str(e.config)) for e in infos["ask"].dependencies
    }
    assert edges == {("c", "client", "{'timeout': 5}"), ("w", "weights", "None")}
    (file,) = infos["weights"].files
    assert (file.parameter, file.uri, file.type, file.strategy) == (
        "path",
        "s3://models/w.bin",
        "Path",
        "on_disk",
    )
    assert infos["ask"].kind == "predictor" and infos["client"].kind == "artifact"


def test_describe_reports_a_cycle_with_its_path() -> None:
    from tests import cyclic_components

    root = component_of(cyclic_components.first)
    assert root is not None
    with pytest.raises(CycleError, match=r"first -> .*second -> .*first"):
        describe([root])


def test_describe_handles_ten_thousand_components_in_a_chain() -> None:
    previous: Any = None
    for index in range(10_000):
        if previous is None:

            def link() -> int:
                return 0
        else:
            dep = previous

            def link(p: Annotated[int, dep]) -> int:  # type: ignore[misc]
                return p + 1

        link.__qualname__ = f"chain_{index}"
        previous = artifact(link)
    root = component_of(previous)
    assert root is not None
    assert len(describe([root])) == 10_000
