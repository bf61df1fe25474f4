"""Dask distributed: a `ModelManager` per worker process, preloaded once, closed with it.

Predictors pickle by reference, so a task can call one on any worker; without a manager
installed there, the first task builds artifacts in the worker's default manager. The
plugin builds them when the worker starts, off its event loop (loading a large model must not
stall heartbeats), and tears generator artifacts down when the worker closes.

Example:
    >>> from distributed import Client
    >>> from daidai.integrations.dask import DaidaiWorkerPlugin
    >>> client = Client(cluster)
    >>> client.register_plugin(DaidaiWorkerPlugin([embed], namespace="batch"))
    >>> client.map(embed, texts)   # each worker process builds the model once
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from daidai._manager import ModelManager, Preload

__all__ = ["DaidaiWorkerPlugin"]

logger = logging.getLogger(__name__)


class DaidaiWorkerPlugin(WorkerPlugin):
    """Create, preload and close a `ModelManager` in each Dask worker process.

    The plugin is pickled to every worker, with the components in `preload` (by reference:
    the workers import their modules). It is registered once per cluster with
    `client.register_plugin(plugin)` and also runs on workers that join later.

    Args:
        preload: components to build on each worker: a list, or `{component: config}`.
        namespace: the managers' namespace (default: `"dask"`).
        overrides: `{component: object}`, pickled to the workers.
        cache_dir: the cache folder on the workers (default: their settings); workers on one
            machine share it and download each file once.
        offline: never read a remote source on the workers.
        name: the plugin's name in the cluster; registering another plugin with the same name
            replaces this one (tearing its managers down).

    Attributes:
        manager: on a worker, once set up: the worker's manager.
    """

    def __init__(
        self,
        preload: Preload | None = None,
        *,
        namespace: str = "dask",
        overrides: Mapping[Callable[..., Any], Any] | None = None,
        cache_dir: str | Path | None = None,
        offline: bool | None = None,
        name: str = "daidai",
    ) -> None:
        self.name = name
        self.preload = preload
        self.namespace = namespace
        self.overrides = dict(overrides or {})
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.offline = offline
        self.manager: ModelManager | None = None

    async def setup(self, worker: Any) -> None:
        """Build the preloaded components in a thread, then make the manager active."""
        loop = asyncio.get_running_loop()
        manager = await loop.run_in_executor(None, self._create)
        # Entered here, the manager is the most recently entered one in the process: the
        # worker's task threads use it. (Entering in the executor thread would leave that
        # thread pointing at the manager after teardown.)
        self.manager = manager.__enter__()
        logger.info("daidai manager %r ready on worker %s", manager, worker.address)

    async def teardown(self, worker: Any) -> None:
        """Close the worker's manager: generator artifacts are torn down, newest first."""
        manager, self.manager = self.manager, None
        if manager is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, manager.__exit__, None, None, None)

    def _create(self) -> ModelManager:
        return ModelManager(
            self.preload,
            namespace=self.namespace,
            overrides=self.overrides,
            cache_dir=self.cache_dir,
            offline=self.offline,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["manager"] = None
        return state

    def __repr__(self) -> str:
        where = f" on pid {os.getpid()}" if self.manager is not None else ""
        return f"<DaidaiWorkerPlugin name={self.name!r} namespace={self.namespace!r}{where}>"
