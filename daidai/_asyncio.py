"""Async components: building async artifacts once under concurrent awaits, async teardown.

Imported only when an async component is used or torn down: asyncio is slow to import.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from daidai._injection import parameters_of
from daidai.errors import DaidaiError

if TYPE_CHECKING:
    from daidai._component import Component
    from daidai._manager import ModelManager

__all__ = ["acall", "afinish", "aget", "run_sync"]

T = TypeVar("T")


async def aget(
    manager: ModelManager, component: Component, config: Mapping[str, Any] | None = None
) -> Any:
    """Build (or reuse) an artifact, awaiting async ones; each is built once per config."""
    if component in manager._overrides:
        return manager._overrides[component]
    cfg = manager._configs.get(component, {}) if config is None else config
    for comp, node_cfg, node_key in manager._plan(component, cfg):
        if comp.is_async:
            await _abuild_once(manager, comp, node_cfg, node_key)
        else:
            manager._build_once(comp, node_cfg, node_key)
    from daidai._graph import config_key

    return manager._instances[(component, config_key(cfg))]


async def acall(
    manager: ModelManager, component: Component, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call an async predictor with its dependencies injected and await it."""
    params = parameters_of(component)
    explicit = {*params.positional[: len(args)], *kwargs}
    for dep in params.dependencies:
        if dep.name not in explicit and dep.component.is_async and dep.component.is_artifact:
            await aget(manager, dep.component, dep.config)
    return await manager.call(component, args, kwargs)


async def _abuild_once(
    manager: ModelManager, component: Component, config: dict[str, Any], key: Hashable
) -> None:
    node = (component, key)
    while (claim := manager._claim(node)) is not None:
        slot, owner = claim
        if owner:
            await _abuild_as_owner(manager, node, config, slot)
            return
        try:
            # shield: cancelling this waiter must not cancel the shared future, which
            # would fail the owner's build and every other waiter with it.
            await asyncio.shield(asyncio.wrap_future(slot.future))
        except BaseException:
            if not slot.future.done():
                raise  # this task was cancelled, not the build: let it go
            continue  # the build failed; try again (as owner if nobody else is)


async def _abuild_as_owner(
    manager: ModelManager, node: tuple[Component, Hashable], config: dict[str, Any], slot: Any
) -> None:
    component = node[0]
    manager._check_open()
    try:
        kwargs = manager._arguments(component, config)
        if component.is_generator:
            generator = component.fn(**kwargs)
            value = await _enter(component, generator)
            with manager._lock:
                manager._teardowns.append((component.name, generator))
        else:
            value = await component.fn(**kwargs)
    except BaseException as exc:
        slot.future.set_exception(exc)
        raise
    finally:
        with manager._lock:
            manager._slots.pop(node, None)
    manager._store(node, config, value)
    slot.future.set_result(value)


async def _enter(component: Component, generator: Any) -> Any:
    try:
        return await generator.__anext__()
    except StopAsyncIteration:
        raise DaidaiError(
            "a generator artifact must yield its object once; it yielded nothing",
            component=component.name,
        ) from None


async def afinish(generator: Any) -> BaseException | None:
    """Run an async generator artifact's cleanup; return the error it raised, if any."""
    try:
        await generator.__anext__()
    except StopAsyncIteration:
        return None
    except Exception as exc:
        return exc
    await generator.aclose()
    return DaidaiError("a generator artifact must yield exactly once; it yielded again")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # A loop runs in this thread (close() called from async code): use a fresh thread.
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="daidai-teardown")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
