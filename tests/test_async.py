"""Async components (SPEC §1.6): awaited predictors, artifacts built once, async teardown."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest

from daidai import DaidaiError, DeclarationError, ModelManager, artifact, predictor
from daidai.errors import TeardownError


class Pool:
    """Stands in for an async client (a connection pool) with a close to observe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False


def test_async_predictor_is_awaited_with_its_async_artifact_injected() -> None:
    @artifact
    async def pool(size: int = 1) -> Pool:
        await asyncio.sleep(0)
        return Pool(f"pool-{size}")

    @predictor
    async def query(sql: str, p: Annotated[Pool, pool, {"size": 4}]) -> str:
        await asyncio.sleep(0)
        return f"{p.name}: {sql}"

    async def main() -> str:
        async with ModelManager():
            return await query("select 1")

    assert asyncio.run(main()) == "pool-4: select 1"


def test_async_artifact_is_built_once_under_100_concurrent_awaits() -> None:
    builds: list[int] = []

    @artifact
    async def model() -> dict[str, int]:
        builds.append(1)
        await asyncio.sleep(0.05)  # every caller arrives while the first build is in flight
        return {"weights": 42}

    @predictor
    async def predict(x: int, m: Annotated[dict[str, int], model]) -> int:
        return x + m["weights"]

    async def main() -> tuple[list[int], list[dict[str, int]]]:
        async with ModelManager():
            results = await asyncio.gather(*(predict(i) for i in range(100)))
            objects = await asyncio.gather(*(model() for _ in range(100)))
        return results, objects

    results, objects = asyncio.run(main())
    assert results == [i + 42 for i in range(100)]
    assert len(builds) == 1
    assert all(o is objects[0] for o in objects)


def test_async_artifact_is_built_once_across_threads_with_their_own_event_loops() -> None:
    builds: list[int] = []
    barrier = threading.Barrier(4)

    @artifact
    async def model() -> object:
        builds.append(1)
        await asyncio.sleep(0.1)
        return object()

    async def many() -> list[object]:
        return list(await asyncio.gather(*(model() for _ in range(25))))

    seen: list[object] = []

    def worker() -> None:
        barrier.wait()
        seen.extend(asyncio.run(many()))

    with ModelManager():
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(builds) == 1
    assert len(seen) == 100
    assert len({id(o) for o in seen}) == 1


def test_cancelling_one_waiter_leaves_the_build_and_the_other_waiters_alone() -> None:
    builds: list[int] = []

    @artifact
    async def model() -> str:
        builds.append(1)
        await asyncio.sleep(0.1)
        return "ready"

    async def main() -> tuple[list[Any], bool]:
        async with ModelManager():
            owner = asyncio.create_task(model())
            await asyncio.sleep(0.01)  # the owner is building now
            waiters = [asyncio.create_task(model()) for _ in range(10)]
            await asyncio.sleep(0.01)
            waiters[0].cancel()
            results = await asyncio.gather(owner, *waiters, return_exceptions=True)
            return results, waiters[0].cancelled()

    results, first_cancelled = asyncio.run(main())
    assert first_cancelled
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[0] == "ready"
    assert results[2:] == ["ready"] * 9
    assert len(builds) == 1


def test_failed_async_build_is_not_cached_and_the_next_await_retries() -> None:
    attempts: list[int] = []

    @artifact
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("server not ready")
        return "up"

    async def main() -> str:
        async with ModelManager():
            with pytest.raises(ConnectionError, match="server not ready"):
                await flaky()
            return await flaky()

    assert asyncio.run(main()) == "up"
    assert len(attempts) == 2


def test_async_generator_artifacts_are_torn_down_by_async_with_in_reverse_order() -> None:
    events: list[str] = []

    @artifact
    async def database() -> AsyncIterator[Pool]:
        pool = Pool("db")
        events.append("open db")
        yield pool
        await asyncio.sleep(0)
        pool.closed = True
        events.append("close db")

    @artifact
    def cache() -> Iterator[Pool]:
        events.append("open cache")
        yield Pool("cache")
        events.append("close cache")

    @artifact
    async def repository(
        db: Annotated[Pool, database], c: Annotated[Pool, cache]
    ) -> AsyncIterator[str]:
        events.append("open repository")
        yield f"{db.name}+{c.name}"
        events.append("close repository")

    async def main() -> Pool:
        async with ModelManager():
            assert await repository() == "db+cache"
            db = await database()
            assert not db.closed
        return db

    db = asyncio.run(main())
    assert db.closed
    opened = [e.removeprefix("open ") for e in events if e.startswith("open")]
    closed = [e.removeprefix("close ") for e in events if e.startswith("close")]
    assert opened[-1] == "repository"
    assert closed == opened[::-1]


def test_aclose_tears_down_async_generators_and_is_idempotent() -> None:
    closed: list[str] = []

    @artifact
    async def session() -> AsyncIterator[str]:
        yield "session"
        closed.append("session")

    async def main() -> None:
        manager = ModelManager()
        with manager:
            assert await session() == "session"
        # `with` (sync) already closed it from inside the running loop
        assert closed == ["session"]
        await manager.aclose()

        other = ModelManager()
        async with other:
            await session()
        await other.aclose()
        await other.aclose()

    asyncio.run(main())
    assert closed == ["session", "session"]


def test_failing_async_teardown_is_reported_after_the_others_ran() -> None:
    closed: list[str] = []

    @artifact
    async def first() -> AsyncIterator[str]:
        yield "first"
        closed.append("first")

    @artifact
    async def broken() -> AsyncIterator[str]:
        yield "broken"
        raise RuntimeError("disk gone")

    async def main() -> None:
        manager = ModelManager()
        async with manager:
            await first()
            await broken()
        # unreachable: __aexit__ raises

    with pytest.raises(TeardownError, match="disk gone"):
        asyncio.run(main())
    assert closed == ["first"]


def test_explicit_argument_to_async_predictor_skips_building_the_artifact() -> None:
    builds: list[int] = []

    @artifact
    async def client() -> str:
        builds.append(1)
        return "real"

    @predictor
    async def ask(message: str, c: Annotated[str, client]) -> str:
        return f"{c}:{message}"

    async def main() -> str:
        async with ModelManager():
            return await ask("hi", c="fake")

    assert asyncio.run(main()) == "fake:hi"
    assert builds == []


def test_override_replaces_an_async_artifact_without_building_it() -> None:
    builds: list[int] = []

    @artifact
    async def client() -> str:
        builds.append(1)
        return "real"

    @artifact
    async def wrapper(c: Annotated[str, client]) -> str:
        return f"wrapped {c}"

    @predictor
    async def ask(w: Annotated[str, wrapper]) -> str:
        return w

    async def main() -> str:
        async with ModelManager(overrides={client: "fake"}):
            return await ask()

    assert asyncio.run(main()) == "wrapped fake"
    assert builds == []


def test_async_artifacts_are_cached_per_configuration() -> None:
    @artifact
    async def model(size: int) -> object:
        return object()

    async def main() -> None:
        async with ModelManager():
            small, small_again, big = await asyncio.gather(model(1), model(size=1), model(2))
        assert small is small_again
        assert small is not big

    asyncio.run(main())


def test_sync_predictor_declaring_an_async_artifact_fails_at_decoration() -> None:
    @artifact
    async def pool() -> Pool:
        return Pool("p")

    with pytest.raises(DeclarationError, match=r"async artifact.*make this one `async def`") as e:

        @predictor
        def query(sql: str, p: Annotated[Pool, pool]) -> str:
            return sql

    assert e.value.parameter == "p"


def test_sync_artifact_declaring_an_async_artifact_as_default_fails_at_decoration() -> None:
    @artifact
    async def pool() -> Pool:
        return Pool("p")

    with pytest.raises(DeclarationError, match="async artifact"):

        @artifact
        def repository(p: Pool = pool) -> str:  # type: ignore[assignment]
            return "r"


def test_async_artifact_asked_for_from_sync_code_says_to_await_it() -> None:
    @artifact
    async def pool() -> Pool:
        return Pool("p")

    with ModelManager() as manager, pytest.raises(DaidaiError, match="must be awaited"):
        manager.load(pool)


def test_async_predictor_uses_a_preloaded_sync_artifact() -> None:
    builds: list[int] = []

    @artifact
    def vocabulary() -> set[str]:
        builds.append(1)
        return {"orange"}

    @predictor
    async def is_known(word: str, vocab: Annotated[set[str], vocabulary]) -> bool:
        return word in vocab

    async def main() -> list[bool]:
        async with ModelManager([is_known]):
            return list(await asyncio.gather(*(is_known(w) for w in ["orange", "kiwi"] * 10)))

    assert asyncio.run(main()) == [True, False] * 10
    assert builds == [1]


def _pool_artifact(log: list[str], *, with_finally: bool) -> Any:
    """An async generator artifact whose cleanup is plain code after `yield`, or a finally."""
    if with_finally:

        @artifact
        async def pool() -> AsyncIterator[Pool]:
            p = Pool("pool")
            log.append("open")
            try:
                yield p
            finally:
                await asyncio.sleep(0)
                p.closed = True
                log.append("close")

        return pool

    @artifact
    async def plain_pool() -> AsyncIterator[Pool]:
        p = Pool("pool")
        log.append("open")
        yield p
        await asyncio.sleep(0)
        p.closed = True
        log.append("close")

    return plain_pool


@pytest.mark.parametrize("with_finally", [False, True], ids=["after-yield", "finally"])
def test_an_async_generator_outlives_the_event_loop_that_built_it(with_finally: bool) -> None:
    log: list[str] = []
    pool = _pool_artifact(log, with_finally=with_finally)

    @predictor
    async def query(p: Annotated[Pool, pool]) -> Pool:
        assert not p.closed, "handed a closed object"
        return p

    with ModelManager():
        first = asyncio.run(query())
        assert log == ["open"]  # asyncio.run returning did not tear it down
        assert asyncio.run(query()) is first  # a new loop gets the same, live object
        assert not first.closed
    assert log == ["open", "close"]  # torn down by close(), on a new loop
    assert first.closed


def test_an_async_generator_is_torn_down_on_its_own_loop_while_that_loop_lives() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @artifact
    async def client() -> AsyncIterator[str]:
        loops.append(asyncio.get_running_loop())
        yield "client"
        loops.append(asyncio.get_running_loop())

    loop = asyncio.new_event_loop()
    try:
        with ModelManager():
            assert loop.run_until_complete(client()) == "client"
        assert loops == [loop, loop]
    finally:
        loop.close()


def test_the_default_manager_tears_down_async_generators_at_exit_not_when_a_loop_ends() -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from typing import Annotated
        from daidai import artifact, predictor

        @artifact
        async def conn():
            state = {"open": True}
            print("opened", flush=True)
            try:
                yield state
            finally:
                await asyncio.sleep(0)
                state["open"] = False
                print("closed", flush=True)

        @predictor
        async def use(c: Annotated[dict, conn]) -> str:
            return "used-open" if c["open"] else "used-closed"

        print(asyncio.run(use()), flush=True)
        print(asyncio.run(use()), flush=True)
        print("exiting", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["opened", "used-open", "used-open", "exiting", "closed"]


def test_an_async_build_that_finishes_after_close_is_torn_down_and_its_awaiters_told() -> None:
    log: list[str] = []

    async def main() -> list[BaseException | str]:
        started, release = asyncio.Event(), asyncio.Event()

        @artifact
        async def slow_client() -> AsyncIterator[str]:
            started.set()
            await release.wait()
            log.append("opened")
            yield "client"
            log.append("closed")

        manager = ModelManager(namespace="late")
        async with manager:
            calls = [asyncio.create_task(slow_client()) for _ in range(2)]  # owner and waiter
            await started.wait()
            await manager.aclose()
            release.set()
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [DaidaiError, DaidaiError], outcomes
    assert "'late' was closed while this artifact was being built" in str(outcomes[0])
    assert "'late' is closed" in str(outcomes[1])  # the waiter found it closed on retry
    assert log == ["opened", "closed"]


def test_an_async_generator_built_on_a_loop_in_another_thread_is_torn_down_there() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @artifact
    async def client() -> AsyncIterator[str]:
        loops.append(asyncio.get_running_loop())
        yield "client"
        loops.append(asyncio.get_running_loop())

    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        with ModelManager():  # seen by the loop's thread: the most recently entered manager
            assert asyncio.run_coroutine_threadsafe(client(), loop).result(10) == "client"
        assert loops == [loop, loop]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
