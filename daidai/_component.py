"""The component record: what `@artifact` and `@predictor` know about a function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daidai._injection import Parameters

__all__ = ["ARTIFACT", "PREDICTOR", "Component", "component_of", "registry"]

ARTIFACT = "artifact"
PREDICTOR = "predictor"

# Every component declared in this process, by qualified name; a redefinition (a reloaded
# module, a re-run notebook cell) replaces the previous one.
registry: dict[str, Component] = {}


class Component:
    """A decorated function and what daidai read from it.

    Attributes:
        fn: the user's function.
        kind: `"artifact"` or `"predictor"`.
        name: `module.qualname`, unique in a process.
        is_async: the function is `async def` (a coroutine or an async generator).
        is_generator: the function yields (teardown after the `yield`).
        wrapper: the callable that replaced `fn` in its module.
        parameters: the parsed signature, once read (see `daidai._injection`).
        localns: local names visible where the component was declared.
    """

    __slots__ = (
        "fn",
        "is_async",
        "is_generator",
        "kind",
        "localns",
        "name",
        "parameters",
        "wrapper",
    )

    def __init__(
        self, fn: Callable[..., Any], kind: str, localns: dict[str, Any] | None = None
    ) -> None:
        self.fn = fn
        # The namespace where the decorator ran: string annotations (PEP 563) of a
        # component defined inside a function may name that function's locals.
        self.localns = localns
        self.kind = kind
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        self.wrapper: Callable[..., Any] = fn
        self.parameters: Parameters | None = None

    @property
    def is_artifact(self) -> bool:
        return self.kind == ARTIFACT

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only by value, with a wrapper from a `__main__` script shipped to worker
        # processes (cloudpickle, Dask). The first copy to arrive is registered and every
        # later one resolves to it, so tasks share one component and its artifacts.
        return (_restore, (self.name, self.kind, self.fn, self.wrapper))

    def __repr__(self) -> str:
        prefix = "async " if self.is_async else ""
        return f"<{prefix}{self.kind} {self.name}>"


def _restore(
    name: str, kind: str, fn: Callable[..., Any], wrapper: Callable[..., Any]
) -> Component:
    found = registry.get(name)
    if found is not None:
        return found
    component = Component(fn, kind)
    component.wrapper = wrapper
    registry[name] = component
    return component


def component_of(obj: object) -> Component | None:
    """Return the component behind a decorated function, or None for anything else."""
    try:
        found = obj.__dict__.get("__daidai_component__") if callable(obj) else None
    except AttributeError:  # objects without a __dict__
        return None
    return found if isinstance(found, Component) else None
