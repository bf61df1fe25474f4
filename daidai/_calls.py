"""The warm call path of a sync predictor: generated code, as attrs and dataclasses do.

A generic `*args, **kwargs` wrapper costs about five plain calls on CPython (argument
packing, then unpacking a dict of injected values). A wrapper generated with the user's own
signature, injected parameters defaulting to a sentinel, passes every argument straight
through and costs about two: the difference users feel on every request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from daidai import _manager
from daidai._component import Component
from daidai._injection import Parameters, parameters_of
from daidai.errors import CallError

__all__ = ["make_predictor_wrapper"]

_UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<injected>"})()
# A required parameter after an injected one (`def ask(c: Annotated[..], message)`): the
# injected one gets a default in the wrapper, and Python allows no required parameter
# after a default, so that one gets this marker and the wrapper checks for it.
_REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "<required>"})()
_P = inspect.Parameter
# CPython's compiler checks keyword arguments for duplicates pairwise, so compiling a call
# with n keywords is O(n^2): a predictor with 10,000 injected parameters took 3.2 s of
# `compile()` (25x the 1,000 case). Past this size the generic wrapper, linear to build and
# as fast per call at that width, is used instead.
_MAX_GENERATED_PARAMETERS = 256


def make_predictor_wrapper(component: Component) -> Callable[..., Any]:
    """A wrapper for a sync predictor: generated when the signature allows, else generic."""
    params = component.parameters
    signature = inspect.signature(component.fn)
    if (
        params is None
        or len(signature.parameters) > _MAX_GENERATED_PARAMETERS
        or any(p.kind is _P.VAR_POSITIONAL for p in signature.parameters.values())
    ):
        return _generic_wrapper(component)
    return _generated_wrapper(component, params, signature)


def _generic_wrapper(component: Component) -> Callable[..., Any]:
    fn = component.fn

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        manager = _manager._current.get() or (
            _manager._open[-1] if _manager._open else _manager._default_manager()
        )
        ready = manager._ready.get(component)
        if ready is not None and len(args) <= parameters_of(component).positional_limit:
            if not kwargs:
                return fn(*args, **ready)
            if ready.keys().isdisjoint(kwargs):
                return fn(*args, **kwargs, **ready)
        return manager.call(component, args, kwargs)

    return wrapper


def _generated_wrapper(
    component: Component, params: Parameters, signature: inspect.Signature
) -> Callable[..., Any]:
    namespace: dict[str, Any] = {
        "_daidai_fn": component.fn,
        "_daidai_component": component,
        "_daidai_unset": _UNSET,
        "_daidai_required": _REQUIRED,
        "_daidai_missing": functools.partial(_missing, component, params),
        # The module, not its ContextVar: a wrapper from a `__main__` script is pickled by
        # value (cloudpickle, Dask), and modules pickle by reference where ContextVars cannot.
        "_daidai_m": _manager,
    }
    header: list[str] = []
    positional: list[str] = []  # passed positionally (positional-only parameters)
    keywords: list[str] = []
    late_required: list[str] = []  # required, after an injected positional parameter
    seen_keyword_only = False
    seen_injected = False
    for index, param in enumerate(signature.parameters.values()):
        name = param.name
        if param.kind is _P.KEYWORD_ONLY and not seen_keyword_only:
            header.append("*")
            seen_keyword_only = True
        if param.kind is _P.VAR_KEYWORD:
            header.append(f"**{name}")
            continue
        if name in params.injected:
            header.append(f"{name}=_daidai_unset")
            seen_injected = True
        elif param.default is not _P.empty:
            namespace[f"_daidai_default_{index}"] = param.default
            header.append(f"{name}=_daidai_default_{index}")
        elif seen_injected and not seen_keyword_only:
            header.append(f"{name}=_daidai_required")
            late_required.append(name)
        else:
            header.append(name)
        if param.kind is _P.POSITIONAL_ONLY:
            positional.append(name)
            if index + 1 < len(signature.parameters) and (
                list(signature.parameters.values())[index + 1].kind is not _P.POSITIONAL_ONLY
            ):
                header.append("/")
        else:
            keywords.append(name)
    var_keyword = next(
        (p.name for p in signature.parameters.values() if p.kind is _P.VAR_KEYWORD), None
    )
    source = _render(component, header, positional, keywords, params, var_keyword, late_required)
    exec(compile(source, f"<daidai wrapper of {component.name}>", "exec"), namespace)
    wrapper: Callable[..., Any] = namespace["wrapper"]
    return wrapper


def _missing(component: Component, params: Parameters, name: str) -> CallError:
    """The error Python would raise for a missing argument, with what to do about it."""
    before = next(n for n in params.positional if n in params.injected)
    return CallError(
        f"missing required argument {name!r}; the injected parameter {before!r} comes "
        f"before it, so pass it by keyword: {name}=...",
        component=component.name,
        parameter=name,
    )


def _render(
    component: Component,
    header: list[str],
    positional: list[str],
    keywords: list[str],
    params: Parameters,
    var_keyword: str | None,
    late_required: list[str],
) -> str:
    injected = [n for n in keywords + positional if n in params.injected]
    # Warm path: every dependency is ready; an argument passed explicitly replaces its own.
    fast_args = [
        *positional,
        *(
            f"{n}=_daidai_ready[{n!r}] if {n} is _daidai_unset else {n}"
            if n in params.injected
            else f"{n}={n}"
            for n in keywords
        ),
    ]
    extra = f", **{var_keyword}" if var_keyword else ""
    if var_keyword:
        fast_args.append(f"**{var_keyword}")
    explicit = ", ".join(f"{n!r}: {n}" for n in keywords if n not in params.injected)
    given = "".join(
        f"\n    if {n} is not _daidai_unset:\n        _daidai_kwargs[{n!r}] = {n}" for n in injected
    )
    call_positional = ", ".join(positional) + ("," if positional else "")
    checks = "".join(
        f"\n    if {n} is _daidai_required:\n        raise _daidai_missing({n!r})"
        for n in late_required
    )
    return f"""
def wrapper({", ".join(header)}):{checks}
    _daidai_manager = _daidai_m._current.get() or (
        _daidai_m._open[-1] if _daidai_m._open else _daidai_m._default_manager()
    )
    _daidai_ready = _daidai_manager._ready.get(_daidai_component)
    if _daidai_ready is not None:
        return _daidai_fn({", ".join(fast_args)})
    _daidai_kwargs = {{{explicit}}}{given}
    return _daidai_manager.call(
        _daidai_component, ({call_positional}), {{**_daidai_kwargs{extra}}}
    )
"""
