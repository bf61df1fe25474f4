"""`daidai graph` in its four formats, with each file's cache and lock state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_project import Project, make_project
from tests.servers import NginxServer


@pytest.fixture
def project(tmp_path: Path, http_server: NginxServer) -> Project:
    return make_project(tmp_path / "proj", http_server)


def test_graph_json_is_one_document_with_dependencies_configs_and_file_states(
    project: Project,
) -> None:
    before = project.run("graph", "--format", "json")
    project.run("fetch", "app.models:model")
    after = project.run("graph", "--json", "app.models")

    assert before.code == 0, before
    components = {c["name"]: c for c in json.loads(before.stdout)["components"]}
    assert set(components) == {
        "app.models.model",
        "app.models.vocabulary",
        "app.models.predict",
        "app.models.stats",
    }
    [edge] = [e for e in components["app.models.predict"]["dependencies"] if e["parameter"] == "m"]
    assert edge == {"parameter": "m", "component": "app.models.model", "config": {"scale": 2}}
    [weights] = components["app.models.model"]["files"]
    assert weights["uri"] == project.urls["weights.bin"]
    assert (weights["strategy"], weights["state"], weights["locked"]) == (
        "on_disk",
        "missing",
        False,
    )
    files = {f["uri"]: f for c in json.loads(after.stdout)["components"] for f in c["files"]}
    assert files[project.urls["weights.bin"]]["state"] == "cached"
    assert files[project.urls["weights.bin"]]["locked"] is True
    assert files[project.urls["vocab.txt"]]["state"] == "missing"


def test_graph_tree_mermaid_and_dot_name_components_edges_and_files(project: Project) -> None:
    tree = project.run("graph")
    mermaid = project.run("graph", "--format", "mermaid", "app/models.py")
    dot = project.run("graph", "-f", "dot", "app.models:predict")

    assert tree.code == mermaid.code == dot.code == 0, (tree, mermaid, dot)
    assert "app.models.predict (predictor)" in tree.stdout
    assert "m <- app.models.model {scale=2}" in tree.stdout
    assert f"{project.urls['weights.bin']} [on_disk, missing]" in tree.stdout
    assert "╭" not in tree.stdout and "\x1b[" not in tree.stdout  # nothing decorative in a pipe
    assert mermaid.stdout.startswith("flowchart LR")
    assert "models.predict" in mermaid.stdout and '-->|"m {scale=2}"|' in mermaid.stdout
    assert dot.stdout.startswith("digraph daidai {") and dot.stdout.rstrip().endswith("}")
    assert '"app.models.model" -> "app.models.predict" [label="m {scale=2}"];' in dot.stdout
    assert "app.models.stats" not in dot.stdout  # only the target and what it needs
