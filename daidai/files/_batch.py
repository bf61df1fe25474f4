"""`fetch_many`'s engine: many downloads at once, as coroutines on fsspec's event loop.

Each file goes through three steps:

1. `begin` on a worker thread: the cache lookup, then, on a miss, the entry's lock and a
   staging folder. A lock another process holds is looked at again later, never waited
   for on a worker; misses of one entry in this batch run one after the other.
2. On the loop, holding one of `jobs` transfer slots: the request, and for a body of at
   most one chunk (HTTP, S3) the body itself. The slot is freed as soon as the body is in.
3. `finish` on a worker thread: hash, write, rename, record. A body still arriving (a
   large file) streams on a thread of its own and keeps its slot until it is done.

Sources that have no such one-request opening (GCS, Azure, HF, local files, folders, a
filesystem on another event loop) run `complete` on a thread of their own, holding a slot.

50 files of 1 MiB from nginx with 20 ms added per request, 8 slots: a pool of threads
each running `fetch` took ~240 ms, this ~200 ms (16 slots: ~185 ms); an 8-thread fsspec
pool that neither hashes nor keeps a cache takes ~180 ms. In the thread design every
thread waited for its turn on the loop, and for the GIL, between its own disk work and its
next request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from daidai._settings import Settings
from daidai.errors import DaidaiError
from daidai.files import layout
from daidai.files._source import Opened, cut, open_whole_async, opens_whole, source_errors
from daidai.files.fetch import (
    FetchRequest,
    FetchResult,
    Miss,
    ProgressCallback,
    complete,
    finish,
    options_for,
    source_uri,
    try_begin,
)
from daidai.files.hashing import CHUNK_SIZE

__all__ = ["fetch_all"]

T = TypeVar("T")

# Threads for the short steps (`begin`, and `finish` of a body already in memory). Few is
# faster: 50 x 1 MiB at +20 ms, 16 slots, interleaved runs on 2 cores: 1 thread 320 ms,
# 2 207 ms, 4 198 ms, 16 223 ms; more threads mostly queued for the GIL and for the
# filesystem's metadata locks. Bodies still arriving stream on threads of their own.
_WORKERS = max(2, min(4, os.cpu_count() or 2))
_BUSY_POLL_SECONDS = 0.05  # how often to look again at an entry another process downloads

logger = logging.getLogger(__name__)


def fetch_all(
    requests: Sequence[FetchRequest],
    *,
    settings: Settings,
    jobs: int,
    on_progress: ProgressCallback | None,
) -> list[FetchResult | DaidaiError]:
    """Fetch distinct requests with at most `jobs` transfers in flight, in order; a
    `DaidaiError` stands in for each file that failed (others are raised)."""
    if not requests:
        return []
    from fsspec.asyn import get_loop

    loop = get_loop()
    with (
        ThreadPoolExecutor(_WORKERS, thread_name_prefix="daidai-fetch") as workers,
        ThreadPoolExecutor(jobs, thread_name_prefix="daidai-stream") as streams,
    ):
        batch = _Batch(settings, jobs, on_progress, workers, streams)
        running = asyncio.run_coroutine_threadsafe(batch.run(list(requests)), loop)
        try:
            return running.result()
        except BaseException:
            # Ctrl-C (or a bug): start nothing more, and cut the bodies still streaming so
            # their threads stop now rather than when their downloads would have ended.
            loop.call_soon_threadsafe(batch.cut_streams)  # first: cancelling forgets them
            running.cancel()
            raise


class _Batch:
    def __init__(
        self,
        settings: Settings,
        jobs: int,
        on_progress: ProgressCallback | None,
        workers: ThreadPoolExecutor,
        streams: ThreadPoolExecutor,
    ) -> None:
        self.settings = settings
        self.on_progress = on_progress
        self.workers = workers
        self.streams = streams
        self.slots = asyncio.Semaphore(jobs)  # bound to a loop at first use, not here
        self.entries: dict[str, asyncio.Lock] = {}
        self.streaming: set[Opened] = set()

    async def run(self, requests: list[FetchRequest]) -> list[FetchResult | DaidaiError]:
        outcomes = await asyncio.gather(*map(self._one, requests), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, DaidaiError):
                raise outcome  # a bug, or an interrupt: not a file's failure
        return outcomes  # type: ignore[return-value]

    async def _one(self, request: FetchRequest) -> FetchResult:
        options = options_for(request.uri, self.settings, request.storage_options)
        key = layout.entry_key(source_uri(request.uri, self.settings), options)
        async with self.entries.setdefault(key, asyncio.Lock()):
            begun = await self._begin(request)
            if isinstance(begun, FetchResult):
                return begun
            return await self._download(begun)

    async def _begin(self, request: FetchRequest) -> FetchResult | Miss:
        # Never wait for a lock on a worker: with all workers waiting on entries another
        # process holds, the finishes of this process's own entries could not run, and
        # two processes fetching the same files would each wait for the other forever.
        attempt = functools.partial(try_begin, request, settings=self.settings)
        waited = 0.0
        while (begun := await self._run(self.workers, attempt)) is None:
            if waited == 0.0:
                logger.info(
                    "waiting for another process to finish downloading %s",
                    layout.strip_credentials(request.uri),
                )
            await asyncio.sleep(_BUSY_POLL_SECONDS)
            waited += _BUSY_POLL_SECONDS
        return begun

    async def _download(self, miss: Miss) -> FetchResult:
        await self.slots.acquire()
        holding = True
        try:
            if not opens_whole(miss.fs) or miss.fs.loop is not asyncio.get_running_loop():
                return await self._run(self.streams, complete, miss, self.on_progress)
            try:
                with source_errors(miss.origin):
                    opened = await open_whole_async(miss.fs, miss.path, CHUNK_SIZE)
            except BaseException:
                await self._run(self.workers, miss.abandon)
                raise
            if opened is None or not opened.received:
                if opened is not None:
                    self.streaming.add(opened)
                try:
                    return await self._run(self.streams, finish, miss, opened, self.on_progress)
                finally:
                    if opened is not None:
                        self.streaming.discard(opened)
            self.slots.release()
            holding = False
            return await self._run(self.workers, finish, miss, opened, self.on_progress)
        finally:
            if holding:
                self.slots.release()

    def cut_streams(self) -> None:
        """Close every body still streaming: its thread's next read fails, and `finish`
        removes the partial download."""
        for opened in list(self.streaming):
            cut(opened)

    @staticmethod
    def _run(pool: ThreadPoolExecutor, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(pool, call, *args)
