"""The component graph: configuration keys, build order, cycles, and a description for tools.

A node is an artifact under one configuration. Configurations are compared by value and
type, so `1`, `1.0` and `True` are three configurations. Build order is computed without
recursion: a chain of 10,000 artifacts must not hit Python's recursion limit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daidai._component import Component
from daidai._injection import parameters_of
from daidai.errors import CycleError

__all__ = ["ComponentInfo", "Edge", "FileInfo", "Node", "config_key", "describe", "plan"]

Node = tuple[Component, Hashable]
_ATOMS = (str, int, float, bool, bytes, complex, type(None))


def config_key(config: Mapping[str, Any]) -> Hashable:
    """A hashable key equal for configurations equal by value and by type."""
    return frozenset((name, _freeze(value)) for name, value in config.items())


def _freeze(value: Any) -> Hashable:
    kind = type(value)
    if kind in _ATOMS:
        return (kind, value)
    if kind in (list, tuple):
        return (kind, tuple(_freeze(v) for v in value))
    if kind is dict:
        return (kind, frozenset((_freeze(k), _freeze(v)) for k, v in value.items()))
    if kind in (set, frozenset):
        return (kind, frozenset(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        # Unhashable objects (arrays, custom classes) compare by identity; the manager keeps
        # the configuration alive alongside the instance, so the id cannot be reused.
        return ("id", kind, id(value))
    return (kind, value)


def plan(
    root: Component,
    config: Mapping[str, Any],
    *,
    config_for: Callable[[Component], Mapping[str, Any]],
    skip: Callable[[Component, Hashable], bool],
) -> list[tuple[Component, dict[str, Any], Hashable]]:
    """Artifacts to build for `root` under `config`, dependencies first.

    Args:
        root: the artifact asked for.
        config: its configuration.
        config_for: the configuration of a dependency declared without one.
        skip: whether a node needs no building (already built, or overridden).

    Raises:
        CycleError: with the path of the cycle.
    """
    order: list[tuple[Component, dict[str, Any], Hashable]] = []
    root_key = config_key(config)
    if skip(root, root_key):
        return order
    # Iterative depth-first search; `path` holds the nodes being expanded, for cycle paths.
    stack: list[tuple[Component, dict[str, Any], Hashable, bool]] = [
        (root, dict(config), root_key, False)
    ]
    path: list[Node] = []
    on_path: set[Node] = set()
    done: set[Node] = set()
    while stack:
        component, cfg, key, expanded = stack.pop()
        node = (component, key)
        if expanded:
            on_path.discard(path.pop())
            done.add(node)
            order.append((component, cfg, key))
            continue
        if node in done:
            continue
        if node in on_path:
            names = [c.name for c, _ in path[path.index(node) :]]
            raise CycleError([*names, component.name])
        path.append(node)
        on_path.add(node)
        stack.append((component, cfg, key, True))
        for child, child_cfg in _children(component, cfg, config_for):
            child_key = config_key(child_cfg)
            if (child, child_key) not in done and not skip(child, child_key):
                stack.append((child, child_cfg, child_key, False))
    return order


def _children(
    component: Component,
    config: Mapping[str, Any],
    config_for: Callable[[Component], Mapping[str, Any]],
) -> Iterable[tuple[Component, dict[str, Any]]]:
    for dep in parameters_of(component).dependencies:
        if dep.name in config or not dep.component.is_artifact:
            continue  # given explicitly, or a predictor injected as a callable
        cfg = dep.config if dep.config is not None else config_for(dep.component)
        yield dep.component, dict(cfg)


@dataclass(frozen=True)
class Edge:
    """`component` receives `target` (configured with `config`) as `parameter`."""

    parameter: str
    target: str
    config: dict[str, Any] | None


@dataclass(frozen=True)
class FileInfo:
    """A file parameter of a component."""

    parameter: str
    uri: str
    type: str
    strategy: str | None
    checksum: str | None


@dataclass(frozen=True)
class ComponentInfo:
    """One component as `daidai graph` shows it."""

    name: str
    kind: str
    is_async: bool
    is_generator: bool
    dependencies: list[Edge] = field(default_factory=list)
    files: list[FileInfo] = field(default_factory=list)


def describe(components: Iterable[Component]) -> list[ComponentInfo]:
    """Describe `components` and everything they depend on, sorted by name.

    Raises:
        CycleError: the components depend on each other in a loop.
        DeclarationError: a component is declared wrongly.
    """
    seen: dict[str, ComponentInfo] = {}
    pending = list(components)
    while pending:
        component = pending.pop()
        if component.name in seen:
            continue
        params = parameters_of(component)
        seen[component.name] = ComponentInfo(
            name=component.name,
            kind=component.kind,
            is_async=component.is_async,
            is_generator=component.is_generator,
            dependencies=[Edge(d.name, d.component.name, d.config) for d in params.dependencies],
            files=[
                FileInfo(f.name, f.spec.uri, f.spec.type, f.spec.strategy, f.spec.checksum)
                for f in params.files
            ],
        )
        pending.extend(d.component for d in params.dependencies)
    _check_acyclic(seen)
    return [seen[name] for name in sorted(seen)]


def _check_acyclic(infos: Mapping[str, ComponentInfo]) -> None:
    state: dict[str, bool] = {}  # False while on the current path, True once finished
    for start in infos:
        if start in state:
            continue
        path = [start]
        stack = [iter([e.target for e in infos[start].dependencies])]
        state[start] = False
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = True
                stack.pop()
            elif target not in state:
                state[target] = False
                path.append(target)
                stack.append(iter([e.target for e in infos[target].dependencies]))
            elif not state[target]:
                raise CycleError([*path[path.index(target) :], target])
