"""`@artifact` and `@predictor`.

A decorated function is replaced by a plain function (not an object with `__call__`): it
pickles by reference like any module-level function, and a call costs one Python frame
more than the user's function on the warm path.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar, cast, overload

from daidai._calls import make_predictor_wrapper
from daidai._component import ARTIFACT, PREDICTOR, Component, component_of, registry
from daidai._injection import parameters_of, read_parameters
from daidai._manager import active_manager
from daidai.errors import DeclarationError

__all__ = ["Artifact", "Predictor", "artifact", "predictor"]

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")


class Artifact(Protocol[T_co]):
    """What `@artifact` returns: call it (with or without configuration) to get the object."""

    __name__: str
    __qualname__: str
    __module__: str

    def __call__(self, *args: Any, **kwargs: Any) -> T_co: ...


class Predictor(Protocol[T_co]):
    """What `@predictor` returns: call it like the function; injected parameters are optional."""

    __name__: str
    __qualname__: str
    __module__: str

    def __call__(self, *args: Any, **kwargs: Any) -> T_co: ...


@overload
def artifact(fn: Callable[..., Iterator[T]]) -> Artifact[T]: ...
@overload
def artifact(fn: Callable[..., AsyncIterator[T]]) -> Artifact[Awaitable[T]]: ...
@overload
def artifact(fn: Callable[..., Coroutine[Any, Any, T]]) -> Artifact[Awaitable[T]]: ...
@overload
def artifact(fn: Callable[..., T]) -> Artifact[T]: ...
def artifact(fn: Callable[..., Any]) -> Artifact[Any]:
    """Declare a long-lived object built once per manager and configuration.

    Parameters annotated `Annotated[T, other_component]`, `Annotated[T, other, {config}]`,
    `p=other_component` or `Annotated[T, "uri", {options}]` are injected. A generator
    function yields its object once; the code after `yield` runs when the manager closes.

    Example:
        >>> @artifact
        ... def openai_client(**configuration: Any) -> OpenAI:
        ...     return OpenAI(**configuration)

    Raises:
        DeclarationError: the function or one of its parameters is declared wrongly.
    """
    component = _declare(fn, ARTIFACT, sys._getframe(1).f_locals)
    if component.is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            from daidai._asyncio import aget

            manager = active_manager()
            return await aget(manager, component, manager.artifact_config(component, args, kwargs))

        return cast("Artifact[Any]", _finish(component, async_wrapper))

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        manager = active_manager()
        if not args and not kwargs:
            return manager.get(component)
        return manager.get(component, manager.artifact_config(component, args, kwargs))

    return cast("Artifact[Any]", _finish(component, wrapper))


@overload
def predictor(fn: Callable[..., Coroutine[Any, Any, T]]) -> Predictor[Coroutine[Any, Any, T]]: ...
@overload
def predictor(fn: Callable[..., T]) -> Predictor[T]: ...
def predictor(fn: Callable[..., Any]) -> Predictor[Any]:
    """Declare a function that uses artifacts; called many times, never cached.

    Injected parameters may be omitted at call time; an argument passed explicitly wins
    and the dependency it replaces is not built.

    Example:
        >>> @predictor
        ... def ask(message: str, client: Annotated[OpenAI, openai_client]) -> str: ...
        >>> ask("Hello")

    Raises:
        DeclarationError: the function or one of its parameters is declared wrongly.
    """
    component = _declare(fn, PREDICTOR, sys._getframe(1).f_locals)
    if component.is_async:

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            from daidai._asyncio import acall

            manager = active_manager()
            ready = manager._ready.get(component)
            if (
                ready is not None
                and not kwargs
                and len(args) <= parameters_of(component).positional_limit
            ):
                return await component.fn(*args, **ready)
            return await acall(manager, component, args, kwargs)

        return cast("Predictor[Any]", _finish(component, async_wrapper))

    return cast("Predictor[Any]", _finish(component, make_predictor_wrapper(component)))


def _declare(fn: Any, kind: str, caller_locals: dict[str, Any]) -> Component:
    name = getattr(fn, "__qualname__", repr(fn))
    if component_of(fn) is not None:
        raise DeclarationError(f"{name} is already a component; decorate it once")
    if not inspect.isfunction(fn):
        hint = " (use @" + kind + " without parentheses)" if fn is None or not callable(fn) else ""
        raise DeclarationError(f"@{kind} decorates functions, not {fn!r}{hint}")
    # Module-level declarations need no local namespace (globals are read from the function).
    is_module_level = caller_locals is getattr(fn, "__globals__", None)
    component = Component(fn, kind, None if is_module_level else caller_locals)
    component.parameters = read_parameters(component, defer=True)
    return component


def _finish(component: Component, wrapper: Callable[..., Any]) -> Any:
    functools.update_wrapper(wrapper, component.fn)
    wrapper.__daidai_component__ = component  # type: ignore[attr-defined]
    component.wrapper = wrapper
    registry[component.name] = component
    return wrapper
