"""pytest plugin for projects that use daidai, registered through the `pytest11` entry point.

Fixtures:
    daidai_cache: an empty cache folder for the test; `DAIDAI_CACHE_DIR` points at it (calls
        outside a manager use it too: the default manager follows the variable).
    daidai_overrides: `{component: object}` given to `daidai_manager` (override the fixture, or
        use the `daidai_overrides` marker).
    daidai_manager: a fresh, entered `ModelManager` using `daidai_cache` and the overrides;
        closed after the test (teardown failures fail the test).
    daidai_manager_factory: `make(preload=None, *, overrides=None, **options)` for tests that
        need several managers; each is entered and closed after the test, newest first.
    daidai_no_network: fails the test if it opens a network connection (see below).

Markers:
    daidai_overrides(mapping): overrides for `daidai_manager`, merged over the fixture's.
    daidai_no_network(allow_loopback=True): use the `daidai_no_network` guard for this test.

The network guard patches `socket.socket.connect`/`connect_ex` and `socket.getaddrinfo`:
connecting to (or resolving) anything but a loopback address raises `NetworkAccessError` at
the call site and, since libraries often swallow or wrap connection errors, the test also
fails once its body has run, listing every attempt. Unix sockets are always allowed;
loopback is allowed by default so that tests against local servers keep working
(`allow_loopback=False` blocks it too).

This module imports nothing heavy: pytest loads it in every run of every project where
daidai is installed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from daidai import ModelManager

__all__ = ["NetworkAccessError", "NetworkGuard"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkAccessError(OSError):
    """A test guarded by `daidai_no_network` tried to reach the network."""


@dataclass
class NetworkGuard:
    """Records and refuses network access while installed.

    Attributes:
        allow_loopback: whether 127.0.0.0/8, ::1 and `localhost` are allowed.
        attempts: a description of each refused access, in order.
    """

    allow_loopback: bool = True
    attempts: list[str] = field(default_factory=list)

    def check_address(self, family: int, address: Any) -> None:
        """Raise `NetworkAccessError` unless connecting to `address` is allowed."""
        if family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if self.allow_loopback and _is_loopback(host):
            return
        self._refuse(f"connect to {address!r}")

    def check_name(self, host: Any) -> None:
        """Raise `NetworkAccessError` unless resolving `host` needs no network."""
        if host is None:  # a local bind address
            return
        name = host.decode() if isinstance(host, bytes) else str(host)
        # An IP literal resolves without the network; `connect` then decides.
        if _is_ip(name) or (self.allow_loopback and _is_loopback(name)):
            return
        self._refuse(f"resolve {name!r}")

    def _refuse(self, what: str) -> None:
        self.attempts.append(what)
        raise NetworkAccessError(
            f"daidai_no_network: this test may not {what}; serve the data from loopback, "
            "use a cache hit (DAIDAI_OFFLINE=1), or override the component"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


_GUARD_KEY = pytest.StashKey[NetworkGuard]()


def pytest_configure(config: pytest.Config) -> None:
    """Register daidai's markers (so that `--strict-markers` accepts them)."""
    config.addinivalue_line(
        "markers",
        "daidai_no_network(allow_loopback=True): fail the test if it opens a network "
        "connection (loopback allowed unless allow_loopback=False)",
    )
    config.addinivalue_line(
        "markers",
        "daidai_overrides(mapping): {component: object} injected by the daidai_manager fixture",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a guarded test that tried to reach the network, even if the error was swallowed."""
    guard = item.stash.get(_GUARD_KEY, None)
    try:
        result = yield
    except BaseException:
        if guard is None or not guard.attempts:
            raise
        result = None
    if guard is not None and guard.attempts:
        message = "unexpected network access: " + "; ".join(guard.attempts)
        raise pytest.fail.Exception(message, pytrace=False) from None
    return result


@pytest.fixture(autouse=True)
def _daidai_no_network_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("daidai_no_network") is not None:
        request.getfixturevalue("daidai_no_network")


@pytest.fixture
def daidai_no_network(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> NetworkGuard:
    """Refuse network access for this test and fail it if any was attempted.

    Loopback is allowed unless the test is marked `daidai_no_network(allow_loopback=False)`.
    """
    marker = request.node.get_closest_marker("daidai_no_network")
    allow_loopback = bool(marker.kwargs.get("allow_loopback", True)) if marker else True
    guard = NetworkGuard(allow_loopback=allow_loopback)
    request.node.stash[_GUARD_KEY] = guard
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        guard.check_address(self.family, address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check_address(self.family, address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check_name(host)
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return guard


@pytest.fixture
def daidai_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for this test; `DAIDAI_CACHE_DIR` points at it."""
    folder = tmp_path_factory.mktemp("daidai-cache")
    monkeypatch.setenv("DAIDAI_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def daidai_overrides() -> Mapping[Callable[..., Any], Any]:
    """Overrides for `daidai_manager`: empty; redefine this fixture to give some."""
    return {}


@pytest.fixture
def daidai_manager_factory(daidai_cache: Path) -> Iterator[Callable[..., ModelManager]]:
    """Make entered managers (cache in `daidai_cache`), closed after the test, newest first."""
    managers: list[ModelManager] = []

    def make(
        preload: Any = None,
        *,
        overrides: Mapping[Callable[..., Any], Any] | None = None,
        **options: Any,
    ) -> ModelManager:
        options.setdefault("cache_dir", daidai_cache)
        manager = ModelManager(preload, overrides=overrides, **options)
        managers.append(manager.__enter__())
        return manager

    yield make
    errors: list[BaseException] = []
    for manager in reversed(managers):
        try:
            manager.__exit__(None, None, None)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def daidai_manager(
    request: pytest.FixtureRequest,
    daidai_manager_factory: Callable[..., ModelManager],
    daidai_overrides: Mapping[Callable[..., Any], Any],
) -> ModelManager:
    """A fresh `ModelManager`, entered for the test and closed after it.

    It uses the `daidai_cache` folder and the overrides from the `daidai_overrides` fixture,
    updated with those of a `daidai_overrides` marker.
    """
    overrides = dict(daidai_overrides)
    for marker in reversed(list(request.node.iter_markers("daidai_overrides"))):
        overrides.update(*marker.args, **marker.kwargs)
    return daidai_manager_factory(overrides=overrides, namespace=f"test:{request.node.name}")
