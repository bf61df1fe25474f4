"""Async components: building async artifacts once under concurrent awaits, async teardown.

Imported only when an async component is used or torn down: asyncio is slow to import.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from daidai._injection import parameters_of
from daidai._teardown import close_all
from daidai.errors import DaidaiError

if TYPE_CHECKING:
    from daidai._component import Component
    from daidai._manager import ModelManager

__all__ = ["AsyncTeardown", "acall", "afinish", "aget", "run_sync"]

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
    """Call an async predictor with its dependencies injected and await it.

    The handles and generators it is handed are closed once it returns or raises.
    """
    params = parameters_of(component)
    explicit = {*params.positional[: len(args)], *kwargs}
    for dep in params.dependencies:
        if dep.name not in explicit and dep.component.is_async and dep.component.is_artifact:
            await aget(manager, dep.component, dep.config)
    owned: list[Any] = []
    try:
        injected = manager._inject(component, args, kwargs, owned)
        return await component.fn(*args, **kwargs, **injected)
    finally:
        close_all(owned)


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
    owned: list[Any] = []
    try:
        manager._check_open()
        kwargs = manager._arguments(component, config, owned)
        teardown = None
        if component.is_generator:
            generator = component.fn(**kwargs)
            value = await _enter(component, generator)
            teardown = AsyncTeardown(generator, asyncio.get_running_loop())
        else:
            value = await component.fn(**kwargs)
        if not manager._store(node, config, value, teardown, owned):
            error = await teardown.afinish() if teardown is not None else None
            raise manager._closed_while_building(component, error)
    except BaseException as exc:
        close_all(owned)
        slot.future.set_exception(exc)
        raise
    finally:
        with manager._lock:
            manager._slots.pop(node, None)
    slot.future.set_result(value)


async def _enter(component: Component, generator: Any) -> Any:
    # The generator belongs to its manager, not to this event loop: a loop registers each
    # async generator first iterated in it and closes them all when it ends (asyncio.run
    # does), which ran `finally` blocks early and skipped plain cleanup after `yield`.
    # With the hooks unset for this first step, the loop never learns of it.
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        first_step = generator.__anext__()
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=hooks.finalizer)
    try:
        return await first_step
    except StopAsyncIteration:
        raise DaidaiError(
            "a generator artifact must yield its object once; it yielded nothing",
            component=component.name,
        ) from None


class AsyncTeardown:
    """An async generator artifact's cleanup, run on the loop that built it while it lives.

    Attributes:
        generator: the suspended async generator.
        loop: the event loop that built it.
    """

    __slots__ = ("generator", "loop")

    def __init__(self, generator: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.generator = generator
        self.loop = loop

    async def afinish(self) -> BaseException | None:
        """Run the cleanup in the running loop (from `aclose()` or `async with`)."""
        return await afinish(self.generator)

    def finish(self) -> BaseException | None:
        """Run the cleanup from sync code: on the building loop if it can still run it,
        else (`asyncio.run` returned, or this thread is inside that loop) on a new one."""
        loop = self.loop
        if loop.is_closed() or _in_a_running_loop():
            return run_sync(afinish(self.generator))
        if loop.is_running():  # in another thread
            return asyncio.run_coroutine_threadsafe(afinish(self.generator), loop).result()
        return loop.run_until_complete(afinish(self.generator))


def _in_a_running_loop() -> bool:
    # This thread cannot block on its own loop, nor run another one inside it.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
