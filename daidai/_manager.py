"""`ModelManager`: where artifacts live, how they are built once, and how they are torn down.

Which manager is active: a thread (or asyncio task) that entered a manager uses it;
otherwise the most recently entered manager still open in the process (so threads started
inside a `with` block see it); otherwise the process-wide default manager.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daidai import _environment, _graph
from daidai._component import Component, component_of
from daidai._injection import Parameters, parameters_of
from daidai._teardown import Files, close_all, finish
from daidai.errors import CycleError, DaidaiError, MissingConfigError, TeardownError

if TYPE_CHECKING:
    from types import TracebackType

    from daidai._settings import Settings
    from daidai.files.session import FileSession
    from daidai.files.spec import FileSpec

__all__ = ["ModelManager", "active_manager"]

logger = logging.getLogger(__name__)

_current: contextvars.ContextVar[ModelManager | None] = contextvars.ContextVar(
    "daidai_manager", default=None
)
# Entered managers, most recent last; the default manager, once created, sits at the bottom
# so that the warm call path reads one list item and takes no lock.
_open: list[ModelManager] = []
_open_lock = threading.Lock()
_MISSING = object()
# File values that can be reused across predictor calls (a path, loaded contents).
_STABLE_STRATEGIES = frozenset({"on_disk", "on_disk_temporary", "in_memory"})
_STABLE_TYPES = frozenset({"Path", "str", "bytes"})

Preload = Iterable[Callable[..., Any]] | Mapping[Callable[..., Any], Mapping[str, Any] | None]


def active_manager() -> ModelManager:
    """The manager in force for the calling thread or task (see the module docstring)."""
    manager = _current.get()
    if manager is not None:
        return manager
    return _open[-1] if _open else _default_manager()


def _default_manager() -> ModelManager:
    with _open_lock:
        if not _open:
            default = ModelManager(namespace="default")
            default._follow_environment()
            _open.insert(0, default)
            atexit.register(default.close)
        return _open[-1]


class _Slot:
    """An artifact being built by one thread; others wait on its future."""

    __slots__ = ("future", "owner")

    def __init__(self) -> None:
        self.future: Future[Any] = Future()
        self.owner = threading.get_ident()


class ModelManager:
    """Holds artifacts, files and their cleanup for one scope.

    Args:
        preload: components to load now: a list, or `{component: config_or_None}`. A
            configuration given here is that artifact's configuration in this manager
            wherever a dependent does not set its own.
        namespace: a label for logs and `repr`; managers never share objects.
        overrides: `{component: object}` injected wherever that component is needed.
        lockfile: the lockfile whose checksums pin file contents (default: from settings).
        cache_dir: the on-disk cache folder (default: from settings).
        offline: never read a remote source (default: from settings).

    Example:
        >>> with ModelManager({load_model: {"model_path": "model.pkl"}}, namespace="prod"):
        ...     predict("input")
    """

    def __init__(
        self,
        preload: Preload | None = None,
        *,
        namespace: str | None = None,
        overrides: Mapping[Callable[..., Any], Any] | None = None,
        lockfile: str | Path | None = None,
        cache_dir: str | Path | None = None,
        offline: bool | None = None,
    ) -> None:
        self.namespace = namespace or "default"
        self._configs: dict[Component, dict[str, Any]] = {}
        self._overrides = {_component(c, "overrides"): v for c, v in (overrides or {}).items()}
        self._settings_args = {"lockfile": lockfile, "cache_dir": cache_dir, "offline": offline}
        self._settings: Settings | None = None
        # The default manager's settings follow the environment: the change count they were
        # read at, and the sessions of earlier settings, still serving what they handed out.
        self._read_at: int | None = None
        self._retired: list[FileSession] = []
        self._files: FileSession | None = None
        self._instances: dict[tuple[Component, Hashable], Any] = {}
        self._configs_alive: list[Mapping[str, Any]] = []
        self._slots: dict[tuple[Component, Hashable], _Slot] = {}
        self._lock = threading.RLock()
        self._teardowns: list[tuple[str, Any]] = []
        # predictor -> its injected values, when reusable: the warm call path's only lookup
        self._ready: dict[Component, dict[str, Any]] = {}
        self._tokens: list[contextvars.Token[ModelManager | None]] = []
        self.closed = False
        self._preload(preload)

    # -- public API -------------------------------------------------------------------------

    def load(self, component: Callable[..., Any], config: Mapping[str, Any] | None = None) -> Any:
        """Build (or reuse) an artifact, or resolve a predictor's dependencies.

        Returns:
            the artifact's object; for a predictor, the predictor itself.
        """
        comp = _component(component, "load")
        if comp.is_artifact:
            return self.get(comp, config)
        self._prepare(comp)
        return comp.wrapper

    def get(self, component: Component, config: Mapping[str, Any] | None = None) -> Any:
        """The artifact's object under `config` (default: this manager's configuration)."""
        if component in self._overrides:
            return self._overrides[component]
        cfg = self._configs.get(component, {}) if config is None else config
        key = _graph.config_key(cfg)
        found = self._instances.get((component, key), _MISSING)
        if found is not _MISSING:
            return found
        if component.is_async:
            raise DaidaiError(
                "an async artifact must be awaited: use `await` in async code",
                component=component.name,
            )
        for comp, node_cfg, node_key in self._plan(component, cfg):
            self._build_once(comp, node_cfg, node_key)
        return self._instances[(component, key)]

    def close(self) -> None:
        """Tear down generator artifacts in reverse order of creation, close files.

        Idempotent. Every teardown runs even if one fails.

        Raises:
            TeardownError: listing the teardowns that failed.
        """
        self._leave()
        self._close(raise_errors=True)

    @property
    def files(self) -> FileSession:
        """The manager's file session (created on first use)."""
        settings = self.settings
        if self._files is None:
            with self._lock:
                if self._files is None:
                    from daidai.files.session import FileSession

                    self._files = FileSession(settings, lockfile=settings.lockfile)
        return self._files

    @property
    def settings(self) -> Settings:
        """Settings read when first needed, never at import (and, in the default manager,
        again after the environment changed)."""
        if self._settings is None or (
            self._read_at is not None and self._read_at != _environment.changes
        ):
            self._read_settings()
        assert self._settings is not None
        return self._settings

    def _read_settings(self) -> None:
        from daidai._settings import apply_log_level, load_settings

        with self._lock:
            read_at = _environment.changes
            settings = load_settings(**self._settings_args)  # type: ignore[arg-type]
            apply_log_level(settings)
            if self._files is not None:
                self._retired.append(self._files)
                self._files = None
            self._settings = settings
            if self._read_at is not None:
                self._read_at = read_at
                self._ready.clear()

    def _follow_environment(self) -> None:
        """Re-read settings after a `DAIDAI_*` variable or the current folder changes."""
        self._read_at = -1  # settings not read yet
        _environment.watch(self._ready.clear)

    def __enter__(self) -> ModelManager:
        self._check_open()
        self._tokens.append(_current.set(self))
        with _open_lock:
            _open.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        self._close(raise_errors=exc_type is None)

    async def __aenter__(self) -> ModelManager:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        await self._aclose(raise_errors=exc_type is None)

    async def aclose(self) -> None:
        """Like `close()`, awaiting async teardowns in the running event loop."""
        self._leave()
        await self._aclose(raise_errors=True)

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<ModelManager namespace={self.namespace!r} loaded={len(self._instances)}{state}>"

    # -- calling components -----------------------------------------------------------------

    def call(self, component: Component, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a sync predictor with its dependencies injected.

        The handles and generators it is handed belong to this call: they are closed when
        it returns or raises (a generator predictor: when it finishes or is closed).
        """
        owned: list[Any] = []
        try:
            result = component.fn(*args, **kwargs, **self._inject(component, args, kwargs, owned))
        except BaseException:
            close_all(owned)
            raise
        if owned and inspect.isgenerator(result):
            return _closing_after(result, owned)
        close_all(owned)
        return result

    def _inject(
        self,
        component: Component,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        owned: list[Any],
    ) -> dict[str, Any]:
        """The values for a predictor's injected parameters the caller did not give.

        Handles and generators go into `owned`, for the caller to close after the call.
        """
        params = parameters_of(component)
        explicit = _explicit_names(params, args, kwargs)
        injected = self._resolve(component, params, explicit, owned)
        if not explicit & params.injected and self._all_stable(component, params):
            self._ready[component] = injected
        return injected

    def artifact_config(
        self, component: Component, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Mapping[str, Any] | None:
        """The configuration meant by calling an artifact with these arguments."""
        if not args and not kwargs:
            return None
        params = parameters_of(component)
        if len(args) > len(params.positional):
            raise DaidaiError(
                f"takes at most {len(params.positional)} positional arguments, got {len(args)}",
                component=component.name,
            )
        return {**dict(zip(params.positional, args, strict=False)), **kwargs}

    # -- building ----------------------------------------------------------------------------

    def _plan(
        self, component: Component, config: Mapping[str, Any]
    ) -> list[tuple[Component, dict[str, Any], Hashable]]:
        return _graph.plan(
            component,
            config,
            config_for=lambda c: self._configs.get(c, {}),
            skip=lambda c, k: c in self._overrides or (c, k) in self._instances,
        )

    def _build_once(self, component: Component, config: dict[str, Any], key: Hashable) -> None:
        node = (component, key)
        while (claim := self._claim(node)) is not None:
            slot, owner = claim
            if owner:
                self._build_as_owner(node, config, slot)
                return
            if slot.owner == threading.get_ident():
                raise CycleError([component.name, component.name])
            try:
                slot.future.result()
            except BaseException:
                continue  # the build failed; try again (as owner if nobody else is)

    def _claim(self, node: tuple[Component, Hashable]) -> tuple[_Slot, bool] | None:
        """None if `node` is built; else its slot, and whether the caller must build it."""
        with self._lock:
            if node in self._instances:
                return None
            slot = self._slots.get(node)
            if slot is not None:
                return slot, False
            slot = self._slots[node] = _Slot()
            return slot, True

    def _build_as_owner(
        self, node: tuple[Component, Hashable], config: dict[str, Any], slot: _Slot
    ) -> None:
        component = node[0]
        owned: list[Any] = []  # files handed to the artifact: they live as long as it does
        try:
            self._check_open()
            value = component.fn(**self._arguments(component, config, owned))
            generator = None
            if component.is_generator:
                generator, value = value, _enter_generator(component, value)
            if not self._store(node, config, value, generator, owned):
                error = finish(generator) if generator is not None else None
                raise self._closed_while_building(component, error)
        except BaseException as exc:
            close_all(owned)
            slot.future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._slots.pop(node, None)
        slot.future.set_result(value)

    def _store(
        self,
        node: tuple[Component, Hashable],
        config: Mapping[str, Any],
        value: Any,
        teardown: Any,
        owned: list[Any],
    ) -> bool:
        """Keep a built artifact and its teardown; False if the manager closed meanwhile."""
        name = node[0].name
        with self._lock:
            if self.closed:
                return False
            self._instances[node] = value
            self._configs_alive.append(config)
            if owned:
                self._teardowns.append((name, Files(owned)))
            if teardown is not None:
                self._teardowns.append((name, teardown))
        logger.debug("built %s in manager %r", name, self.namespace)
        return True

    def _closed_while_building(
        self, component: Component, teardown_error: BaseException | None
    ) -> DaidaiError:
        # Storing it would hand a closed manager's object out, and its cleanup would never
        # run: it has been torn down instead (what close() would have done).
        if teardown_error is not None:
            logger.error(
                "teardown of %s failed: %r", component.name, teardown_error, exc_info=teardown_error
            )
        return DaidaiError(
            f"ModelManager {self.namespace!r} was closed while this artifact was being built; "
            "it was torn down at once. Create a new manager to build it again",
            component=component.name,
        )

    def _arguments(
        self, component: Component, config: Mapping[str, Any], owned: list[Any]
    ) -> dict[str, Any]:
        params = parameters_of(component)
        kwargs = dict(config)
        kwargs.update(self._resolve(component, params, set(config), owned))
        missing = [n for n in params.required if n not in kwargs]
        if missing:
            raise MissingConfigError(
                "no value given; pass it in the dependency's configuration "
                f"(Annotated[T, {component.fn.__name__}, {{{missing[0]!r}: ...}}]), "
                "in ModelManager({component: {...}}), or give it a default",
                component=component.name,
                parameter=missing[0],
            )
        unknown = set(config) - set(params.names)
        if unknown and not params.accepts_any_keyword:
            raise DaidaiError(
                f"unknown configuration key(s) {', '.join(sorted(unknown))}; "
                f"parameters are {', '.join(params.names) or 'none'}",
                component=component.name,
            )
        return kwargs

    def _resolve(
        self,
        component: Component,
        params: Parameters,
        explicit: set[str] | frozenset[str],
        owned: list[Any],
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for dep in params.dependencies:
            if dep.name not in explicit:
                values[dep.name] = self._dependency_value(dep.component, dep.config)
        for file in params.files:
            if file.name not in explicit:
                values[file.name] = self.files.provide(
                    file.spec, component=component.name, parameter=file.name, owner=owned
                )
        return values

    def _dependency_value(self, target: Component, config: Mapping[str, Any] | None) -> Any:
        if target in self._overrides:
            return self._overrides[target]
        if target.is_artifact:
            return self.get(target, config)
        if config:
            return functools.partial(target.wrapper, **config)
        return target.wrapper

    def _all_stable(self, component: Component, params: Parameters) -> bool:
        default = self.settings.default_cache_strategy if params.files else "on_disk"
        return all(_is_stable(f.spec, default) for f in params.files)

    def _prepare(self, component: Component) -> None:
        params = parameters_of(component)
        owned: list[Any] = []
        try:
            injected = self._resolve(component, params, frozenset(), owned)
        finally:
            close_all(owned)  # fetched and checked; each call opens its own
        if self._all_stable(component, params):
            self._ready[component] = injected

    def _preload(self, preload: Preload | None) -> None:
        if preload is None:
            return
        items = preload.items() if isinstance(preload, Mapping) else ((c, None) for c in preload)
        resolved = [(_component(c, "preload"), cfg) for c, cfg in items]
        for comp, cfg in resolved:
            if cfg is not None and comp.is_artifact:
                self._configs[comp] = dict(cfg)
        for comp, _ in resolved:
            if comp.is_async:
                continue  # built on first await, in the caller's event loop
            self.load(comp.wrapper)

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise DaidaiError(f"ModelManager {self.namespace!r} is closed; create a new one")

    def _leave(self) -> None:
        if self._tokens:
            token = self._tokens.pop()
            # A token made in another context (exited from another task) cannot be reset.
            with contextlib.suppress(ValueError):
                _current.reset(token)
        with _open_lock:
            for index in range(len(_open) - 1, -1, -1):
                if _open[index] is self:
                    del _open[index]
                    break

    def _take_teardowns(self) -> list[tuple[str, Any]] | None:
        with self._lock:
            if self.closed:
                return None
            self.closed = True
            teardowns, self._teardowns = self._teardowns, []
        return teardowns[::-1]

    def _close(self, *, raise_errors: bool) -> None:
        teardowns = self._take_teardowns()
        if teardowns is None:
            return
        errors = []
        for name, entry in teardowns:
            error = finish(entry)
            if error is not None:
                errors.append((name, error))
        self._finish_close(errors, raise_errors)

    async def _aclose(self, *, raise_errors: bool) -> None:
        teardowns = self._take_teardowns()
        if teardowns is None:
            return
        errors = []
        for name, entry in teardowns:
            error = await entry.afinish() if hasattr(entry, "afinish") else finish(entry)
            if error is not None:
                errors.append((name, error))
        self._finish_close(errors, raise_errors)

    def _finish_close(self, errors: list[tuple[str, BaseException]], raise_errors: bool) -> None:
        for name, error in errors:
            logger.error("teardown of %s failed: %r", name, error, exc_info=error)
        for session in [*self._retired, self._files]:
            if session is not None:
                session.close()
        self._retired.clear()
        self._instances.clear()
        self._ready.clear()
        self._configs_alive.clear()
        if errors and raise_errors:
            raise TeardownError(errors)


def _enter_generator(component: Component, generator: Any) -> Any:
    try:
        return next(generator)
    except StopIteration:
        raise DaidaiError(
            "a generator artifact must yield its object once; it yielded nothing",
            component=component.name,
        ) from None


def _closing_after(generator: Any, owned: list[Any]) -> Any:
    """A generator predictor's result: its files close when it finishes or is closed."""
    try:
        return (yield from generator)
    finally:
        close_all(owned)


def _component(obj: Any, where: str) -> Component:
    comp = component_of(obj)
    if comp is None:
        raise DaidaiError(
            f"{where}: {obj!r} is not a daidai component; decorate it with @artifact or @predictor"
        )
    return comp


def _explicit_names(
    params: Parameters, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> set[str]:
    return {*params.positional[: len(args)], *kwargs}


def _is_stable(spec: FileSpec, default: str) -> bool:
    return spec.type in _STABLE_TYPES and spec.strategy_or(default) in _STABLE_STRATEGIES
