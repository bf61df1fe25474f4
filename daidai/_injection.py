"""Reading signatures: which parameters are injected components, which are files.

A parameter declares a dependency as `Annotated[T, component]`,
`Annotated[T, component, {config}]`, `p=component`, or `Annotated[T, "uri", {options}]`.
`Annotated` metadata that is not ours is ignored, as typer does.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from daidai._component import Component, component_of
from daidai.errors import DeclarationError
from daidai.files.spec import FileSpec, make_spec

__all__ = ["Dependency", "FileDependency", "Parameters", "parameters_of", "read_parameters"]

_NO_DEFAULT = inspect.Parameter.empty
_VAR_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Dependency:
    """A parameter filled with another component.

    Attributes:
        name: the parameter.
        component: the component injected.
        config: keyword arguments for it, or None to use the manager's configuration.
    """

    name: str
    component: Component
    config: dict[str, Any] | None


@dataclass(frozen=True)
class FileDependency:
    """A parameter filled with a file."""

    name: str
    spec: FileSpec


@dataclass(frozen=True)
class Parameters:
    """A component's signature as daidai sees it.

    Attributes:
        names: every named parameter, in order.
        positional: parameters that positional arguments fill, in order.
        dependencies: parameters filled with components.
        files: parameters filled with files.
        injected: names of all injected parameters.
        required: non-injected parameters without a default.
        positional_limit: how many positional arguments fit before the first injected one.
        accepts_any_keyword: the function takes `**kwargs`.
    """

    names: tuple[str, ...]
    positional: tuple[str, ...]
    dependencies: tuple[Dependency, ...]
    files: tuple[FileDependency, ...]
    injected: frozenset[str]
    required: tuple[str, ...]
    positional_limit: int
    accepts_any_keyword: bool


def parameters_of(component: Component) -> Parameters:
    """The component's parameters, read once (deferred if an annotation was a forward ref)."""
    if component.parameters is None:
        component.parameters = read_parameters(component, defer=False)
    assert component.parameters is not None
    return component.parameters


def read_parameters(component: Component, *, defer: bool) -> Parameters | None:
    """Read a component's signature.

    Args:
        component: the component.
        defer: return None instead of failing when an annotation names something not
            defined yet (a component declared further down the module).

    Raises:
        DeclarationError: a parameter is declared wrongly; names the function and parameter.
    """
    try:
        hints = typing.get_type_hints(component.fn, localns=component.localns, include_extras=True)
    except NameError as exc:
        if defer:
            return None
        raise DeclarationError(
            f"an annotation names something undefined ({exc}); define it before use",
            component=component.name,
        ) from exc
    signature = inspect.signature(component.fn)
    dependencies: list[Dependency] = []
    files: list[FileDependency] = []
    required: list[str] = []
    for param in signature.parameters.values():
        if param.kind in _VAR_KINDS:
            _check_not_injected(component, param, hints.get(param.name, _NO_DEFAULT))
            continue
        found = _read_parameter(component, param, hints.get(param.name, _NO_DEFAULT))
        if found is None:
            if param.default is _NO_DEFAULT:
                required.append(param.name)
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise DeclarationError(
                "an injected parameter cannot be positional-only; remove the `/`",
                component=component.name,
                parameter=param.name,
            )
        (files if isinstance(found, FileDependency) else dependencies).append(found)  # type: ignore[arg-type]
    names = tuple(p.name for p in signature.parameters.values() if p.kind not in _VAR_KINDS)
    positional = tuple(
        p.name
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
    injected = frozenset(d.name for d in dependencies) | {f.name for f in files}
    return Parameters(
        names=names,
        positional=positional,
        dependencies=tuple(dependencies),
        files=tuple(files),
        injected=injected,
        required=tuple(required),
        positional_limit=_positional_limit(signature, positional, injected),
        accepts_any_keyword=any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
        ),
    )


def _positional_limit(
    signature: inspect.Signature, positional: tuple[str, ...], injected: frozenset[str]
) -> int:
    first = next((i for i, name in enumerate(positional) if name in injected), None)
    if first is not None:
        return first
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        return sys.maxsize  # extra positional arguments go to *args, never to injected ones
    return len(positional)


def _read_parameter(
    owner: Component, param: inspect.Parameter, annotation: Any
) -> Dependency | FileDependency | None:
    def fail(message: str) -> DeclarationError:
        return DeclarationError(message, component=owner.name, parameter=param.name)

    base, metadata = _split(annotation)
    _check_no_plain_function(metadata, fail)
    _check_no_hidden_marker(base, fail)
    if component_of(base) is not None:
        raise fail(
            f"{component_of(base)!r} is used as a type; "
            f"write Annotated[<its return type>, {base.__name__}] instead"
        )
    markers = [(i, m) for i, m in enumerate(metadata) if isinstance(m, str) or component_of(m)]
    default_component = component_of(param.default)
    if len(markers) + (default_component is not None) > 1:
        raise fail("two dependency markers; give one component or one URI per parameter")
    if default_component is not None:
        return _dependency(owner, param.name, default_component, None, fail)
    if not markers:
        return None
    index, marker = markers[0]
    options = metadata[index + 1] if index + 1 < len(metadata) else None
    if options is not None and not isinstance(options, dict):
        options = None  # someone else's metadata
    if isinstance(marker, str):
        return FileDependency(
            param.name,
            make_spec(marker, base, options, component=owner.name, parameter=param.name),
        )
    target = component_of(marker)
    assert target is not None
    return _dependency(owner, param.name, target, options, fail)


def _split(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """`(base type, Annotated metadata)` of an annotation."""
    if typing.get_origin(annotation) is Annotated:
        base, *rest = typing.get_args(annotation)
        return base, tuple(rest)
    return annotation, ()


def _check_no_plain_function(metadata: tuple[Any, ...], fail: Any) -> None:
    # A plain function in `Annotated` is almost always a component whose `@artifact` was
    # forgotten; ignoring it (as other libraries' metadata is ignored) would leave the
    # parameter unfilled and fail later with a bare TypeError.
    for item in metadata:
        if inspect.isfunction(item) and component_of(item) is None:
            raise fail(
                f"{item.__qualname__} is a plain function, not a component; "
                "decorate it with @artifact (or @predictor) to inject it"
            )


def _check_no_hidden_marker(base: Any, fail: Any) -> None:
    # `Annotated[Client, client] | None` reads as "maybe injected", but the marker sits
    # inside the union, where nobody looks for it: the parameter would silently get None.
    if typing.get_origin(base) not in (typing.Union, types.UnionType):
        return
    for member in typing.get_args(base):
        _, metadata = _split(member)
        if any(component_of(m) for m in metadata):
            raise fail(
                "the dependency marker is inside a union (Optional or `| None`); write "
                "Annotated[<type> | None, <component>] so that it is injected"
            )


def _check_not_injected(owner: Component, param: inspect.Parameter, annotation: Any) -> None:
    _, metadata = _split(annotation)
    if any(isinstance(m, str) or component_of(m) or inspect.isfunction(m) for m in metadata):
        stars = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
        raise DeclarationError(
            f"{stars}{param.name} cannot be injected; give the dependency its own parameter",
            component=owner.name,
            parameter=param.name,
        )


def _dependency(
    owner: Component,
    name: str,
    target: Component,
    config: dict[str, Any] | None,
    fail: Any,
) -> Dependency:
    if target.is_async and target.is_artifact and not owner.is_async:
        raise fail(
            f"{target.name} is an async artifact; it can be injected only into async "
            "components: make this one `async def`"
        )
    if config is not None:
        bad = [k for k in config if not isinstance(k, str)]
        if bad:
            raise fail(f"configuration keys must be strings, got {bad!r}")
        _check_config_keys(target, config, fail)
    return Dependency(name, target, config)


def _check_config_keys(target: Component, config: dict[str, Any], fail: Any) -> None:
    signature = inspect.signature(target.fn)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = sorted(set(config) - set(signature.parameters))
    if unknown:
        raise fail(
            f"{target.name} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {', '.join(signature.parameters) or 'none'}"
        )
