"""`daidai graph`: components, their dependencies with configs, their files and cache state."""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from daidai.cli._options import Json, Targets, Verbose
from daidai.cli._render import console, is_terminal, print_json, say

if TYPE_CHECKING:
    from daidai._project import FileState, GraphNode

__all__ = ["GraphFormat", "graph"]


class GraphFormat(str, Enum):
    """Output formats of `daidai graph`."""

    tree = "tree"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


Format = Annotated[
    GraphFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]


def graph(
    targets: Targets = None,
    format: Format = GraphFormat.tree,
    json_: Json = False,
    verbose: Verbose = False,
) -> None:
    """Show the component graph: components, dependencies with their configs, and files
    with their strategy and cache state."""
    from daidai._project import graph as describe_graph
    from daidai._settings import load_settings
    from daidai.cli._targets import load_targets

    settings = load_settings()
    components = load_targets(targets or [], settings=settings, command="daidai graph")
    nodes = describe_graph(components, settings=settings)
    chosen = GraphFormat.json if json_ else format
    if chosen is GraphFormat.json:
        print_json({"components": [n.to_json() for n in nodes]})
    elif chosen is GraphFormat.mermaid:
        say(to_mermaid(nodes))
    elif chosen is GraphFormat.dot:
        say(to_dot(nodes))
    elif is_terminal():
        _print_rich_tree(nodes)
    else:
        say(to_text(nodes))


def to_text(nodes: list[GraphNode]) -> str:
    """A plain indented listing, for pipes and logs."""
    lines: list[str] = []
    for node in nodes:
        lines.append(f"{node.info.name} ({_kind(node)})")
        for edge in node.info.dependencies:
            lines.append(f"  {edge.parameter} <- {edge.target}{_config(edge.config)}")
        for file in node.files:
            lines.append(f"  {file.parameter}: {file.type} <- {file.uri} [{_file_state(file)}]")
    return "\n".join(lines) if lines else "(no components)"


def to_mermaid(nodes: list[GraphNode]) -> str:
    """A Mermaid flowchart: components and files as nodes, injections as edges."""
    ids = _ids(nodes)
    lines = ["flowchart LR"]
    for node in nodes:
        lines.append(f'  {ids[node.info.name]}["{_quote(node.info.name)}<br/>{_kind(node)}"]')
        for edge in node.info.dependencies:
            label = _quote(edge.parameter + _config(edge.config))
            lines.append(f'  {ids[edge.target]} -->|"{label}"| {ids[node.info.name]}')
        for index, file in enumerate(node.files):
            fid = f"{ids[node.info.name]}_f{index}"
            lines.append(f'  {fid}[("{_quote(file.uri)}<br/>{_file_state(file)}")]')
            lines.append(f'  {fid} -->|"{file.parameter}"| {ids[node.info.name]}')
    return "\n".join(lines)


def to_dot(nodes: list[GraphNode]) -> str:
    """A Graphviz digraph: components as boxes, files as cylinders."""
    q = json.dumps  # JSON string escapes are valid DOT string escapes (`\"`, `\n`)
    lines = ["digraph daidai {", "  rankdir=LR;"]
    for node in nodes:
        name = node.info.name
        lines.append(f"  {q(name)} [shape=box, label={q(name + chr(10) + _kind(node))}];")
        for edge in node.info.dependencies:
            label = q(edge.parameter + _config(edge.config))
            lines.append(f"  {q(edge.target)} -> {q(name)} [label={label}];")
        for file in node.files:
            fid, label = q("file:" + file.uri), q(file.uri + chr(10) + _file_state(file))
            lines.append(f"  {fid} [shape=cylinder, label={label}];")
            lines.append(f"  {fid} -> {q(name)} [label={q(file.parameter)}];")
    lines.append("}")
    return "\n".join(lines)


def _print_rich_tree(nodes: list[GraphNode]) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    out = console()
    if not nodes:
        out.print("(no components)")
    for node in nodes:
        tree = Tree(f"[bold]{escape(node.info.name)}[/] [dim]{_kind(node)}[/]")
        for edge in node.info.dependencies:
            tree.add(
                f"{escape(edge.parameter)} ← [cyan]{escape(edge.target)}[/]"
                f"[dim]{escape(_config(edge.config))}[/]"
            )
        for file in node.files:
            colour = "green" if file.cached else "yellow" if file.cached is False else "dim"
            tree.add(
                f"{escape(file.parameter)}: {escape(file.type)} ← {escape(file.uri)} "
                f"[{colour}]\\[{escape(_file_state(file))}][/]"
            )
        out.print(tree)


def _kind(node: GraphNode) -> str:
    prefix = "async " if node.info.is_async else ""
    suffix = ", generator" if node.info.is_generator else ""
    return f"{prefix}{node.info.kind}{suffix}"


def _config(config: dict[str, Any] | None) -> str:
    if config is None:
        return ""
    inner = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f" {{{inner}}}"


def _file_state(file: FileState) -> str:
    parts = [file.strategy, file.state]
    if file.locked:
        parts.append("locked")
    return ", ".join(p for p in parts if p != "-")


def _ids(nodes: list[GraphNode]) -> dict[str, str]:
    names = {n.info.name for n in nodes} | {e.target for n in nodes for e in n.info.dependencies}
    return {name: f"c{index}" for index, name in enumerate(sorted(names))}


def _quote(text: str) -> str:
    return text.replace('"', "#quot;")
