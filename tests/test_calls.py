"""The call path: any valid signature binds like the plain function; what a call owns."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TextIO

import pytest

from daidai import DaidaiError, ModelManager, artifact, predictor

INJECTED = 100  # what the injected artifact holds
EXPLICIT = 7  # what a caller passes in its place


@artifact
def injected() -> int:
    return INJECTED


# One parameter per letter: R required, D with a default, I injected, J injected with a
# default (which injection overrides). Positional-only parameters cannot be injected.
_POSITIONAL = {"R": "{n}", "D": "{n}=-1", "I": "{n}: Annotated[int, injected]"}
_POSITIONAL["J"] = _POSITIONAL["I"] + " = -2"
_POSITIONAL_ONLY = {"R": "{n}", "D": "{n}=-1"}
_KEYWORD_ONLY = {"R": "{n}", "D": "{n}=-1", "I": "{n}: Annotated[int, injected]"}


def _words(letters: str, most: int) -> Iterator[str]:
    for size in range(most + 1):
        yield from ("".join(w) for w in itertools.product(letters, repeat=size))


def _signatures() -> Iterator[str]:
    """Every valid signature of up to 1 positional-only, 3 positional and 2 keyword-only
    parameters, with and without `*args` and `**kwargs`."""
    for only, positional, star, keyword, double in itertools.product(
        _words("RD", 1), _words("RDIJ", 3), ("", "*args"), _words("RDI", 2), ("", "**kw")
    ):
        parts = [_POSITIONAL_ONLY[c].format(n=f"o{i}") for i, c in enumerate(only)]
        parts += ["/"] if only else []
        parts += [_POSITIONAL[c].format(n=f"p{i}") for i, c in enumerate(positional)]
        parts += [star] if star else (["*"] if keyword else [])
        parts += [_KEYWORD_ONLY[c].format(n=f"k{i}") for i, c in enumerate(keyword)]
        parts += [double] if double else []
        source = ", ".join(parts)
        try:
            compile(f"def f({source}): pass", "<signature>", "exec")
        except SyntaxError:
            continue  # not valid Python (a required parameter after a default)
        yield source


def _define(signature: str, *, is_async: bool) -> Callable[..., Any]:
    prefix = "async " if is_async else ""
    namespace: dict[str, Any] = {"Annotated": Annotated, "injected": injected, "__name__": __name__}
    exec(f"{prefix}def f({signature}):\n    return dict(locals())", namespace)
    return namespace["f"]  # type: ignore[no-any-return]


def _calls(fn: Callable[..., Any]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Argument lists a user might try: by keyword, positionally, explicit, too few, extra."""
    params = list(inspect.signature(fn).parameters.values())
    only = [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    is_injected = {p.name: _is_injected(p) for p in params}
    value = {name: i for i, name in enumerate(only + positional + keyword)}
    needed = [n for n in positional + keyword if not is_injected[n]]
    # by keyword, positional-only ones positionally
    yield tuple(value[n] for n in only), {n: value[n] for n in needed}
    # positionally up to the first injected parameter, the rest by keyword
    lead = list(itertools.takewhile(lambda n: not is_injected[n], positional))
    yield (
        tuple(value[n] for n in only + lead),
        {n: value[n] for n in needed if n not in lead},
    )
    # everything positionally, injected ones given explicitly
    explicit = {n: EXPLICIT if is_injected[n] else value[n] for n in value}
    yield tuple(explicit[n] for n in only + positional), {n: explicit[n] for n in keyword}
    yield (), {}  # too few, unless nothing is required
    yield tuple(value[n] for n in only), {**{n: value[n] for n in needed}, "extra": 1}
    yield (*(value[n] for n in only + positional), 1, 2), {}  # too many, unless *args


def _filled(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Keyword arguments for the injected parameters the caller did not give."""
    params = list(inspect.signature(fn).parameters.values())
    by_position = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    given = {*by_position[: len(args)], *kwargs}
    return {p.name: INJECTED for p in params if _is_injected(p) and p.name not in given}


def _is_injected(param: inspect.Parameter) -> bool:
    return "injected" in str(param.annotation)


async def _outcome(call: Callable[[], Any]) -> Any:
    try:
        result = call()
        return await result if inspect.isawaitable(result) else result
    except TypeError:
        return TypeError


async def _mismatches(signature: str, *, is_async: bool) -> list[Any]:
    """Calls where the predictor and the plain function (injected values filled) differ."""
    fn = _define(signature, is_async=is_async)
    pred = predictor(fn)
    found = []
    for args, kwargs in _calls(fn):
        fill = _filled(fn, args, kwargs)
        expected = await _outcome(lambda: fn(*args, **kwargs, **fill))  # noqa: B023
        with ModelManager():
            for attempt in ("cold", "warm"):  # the first call resolves, the second reuses
                got = await _outcome(lambda: pred(*args, **kwargs))  # noqa: B023
                if got != expected:
                    found.append((signature, args, kwargs, attempt, got, expected))
    return found


SIGNATURES = list(_signatures())


def test_the_signature_space_covers_injected_parameters_before_required_ones() -> None:
    assert "p0: Annotated[int, injected], p1" in SIGNATURES
    assert len(SIGNATURES) > 1000


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_every_valid_signature_decorates_and_binds_like_the_plain_function(
    is_async: bool,
) -> None:
    async def main() -> list[Any]:
        return [m for s in SIGNATURES for m in await _mismatches(s, is_async=is_async)]

    assert asyncio.run(main()) == []


def test_an_injected_parameter_may_come_before_a_required_one() -> None:
    @artifact
    def client() -> str:
        return "client"

    @predictor
    def ask(c: Annotated[str, client], message: str) -> str:
        return f"{c}: {message}"

    with ModelManager():
        assert ask(message="hi") == "client: hi"
        assert ask(message="again") == "client: again"
        assert ask("mine", "hi") == "mine: hi"  # positionally, the explicit client wins
        with pytest.raises(TypeError, match=r"missing required argument 'message'.*message=\.\.\."):
            ask()


def test_a_missing_argument_after_an_injected_one_is_a_daidai_error_and_a_type_error() -> None:
    @artifact
    def client() -> str:
        return "client"

    @predictor
    def ask(c: Annotated[str, client], message: str) -> str:
        return f"{c}: {message}"

    with ModelManager():
        for call in (lambda: ask("hi"), lambda: ask()):
            with pytest.raises(DaidaiError) as caught:
                call()
            assert isinstance(caught.value, TypeError)  # `except TypeError` keeps working
            assert "ask" in str(caught.value) and "parameter 'message'" in str(caught.value)
            assert "message=..." in str(caught.value)


# -- what a call owns ------------------------------------------------------------------------

HANDLE_TYPES = {
    "TextIO": TextIO,
    "BinaryIO": BinaryIO,
    "Generator[str]": Generator[str, None, None],
    "Generator[bytes]": Generator[bytes, None, None],
}
STRATEGIES = ("on_disk", "on_disk_temporary", "in_memory", "in_memory_stream", "no_cache")
LINES = b"one\ntwo\nthree\n"
REPEAT = 100_000  # 1.4 MB: more than a Generator[bytes] chunk (1 MiB)


def _first(value: Any) -> Any:
    return value.readline() if hasattr(value, "readline") else next(value)


def _is_closed(value: Any) -> bool:
    """What a user sees: a closed handle says so; a closed generator yields nothing more."""
    if hasattr(value, "closed"):
        return bool(value.closed)
    return next(value, None) is None


@pytest.fixture
def lines_file(tmp_path: Path) -> str:
    path = tmp_path / "lines.txt"
    path.write_bytes(LINES * REPEAT)
    return str(path)


def _handle_predictor(uri: str, type_name: str, strategy: str, *, is_async: bool) -> Any:
    annotation = Annotated[HANDLE_TYPES[type_name], uri, {"cache_strategy": strategy}]  # type: ignore[valid-type]
    if is_async:

        async def read_async(f: annotation) -> tuple[Any, Any]:  # type: ignore[valid-type]
            await asyncio.sleep(0)
            return f, _first(f)

        return predictor(read_async)

    def read(f: annotation) -> tuple[Any, Any]:  # type: ignore[valid-type]
        return f, _first(f)

    return predictor(read)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("type_name", HANDLE_TYPES)
def test_handles_and_generators_injected_into_a_predictor_close_when_it_returns(
    lines_file: str, type_name: str, strategy: str
) -> None:
    read = _handle_predictor(lines_file, type_name, strategy, is_async=False)
    async_read = _handle_predictor(lines_file, type_name, strategy, is_async=True)
    with ModelManager():  # still open: what was handed out is closed by then
        handed = [read() for _ in range(3)]
        handed.append(asyncio.run(async_read()))
        assert [_is_closed(value) for value, _ in handed] == [True] * 4
    text = type_name in ("TextIO", "Generator[str]")
    assert all(first.startswith("one" if text else b"one") for _, first in handed)
    assert len({id(value) for value, _ in handed[:3]}) == 3  # each call gets its own


def test_a_predictor_that_raises_still_closes_what_it_was_handed(lines_file: str) -> None:
    seen: list[Any] = []

    @predictor
    def fails(f: Annotated[BinaryIO, lines_file], g: Annotated[TextIO, lines_file]) -> None:
        seen.extend([f, g])
        raise ValueError("the model rejected the input")

    @predictor
    async def fails_async(f: Annotated[BinaryIO, lines_file]) -> None:
        seen.append(f)
        raise ValueError("the model rejected the input")

    with ModelManager():
        with pytest.raises(ValueError, match="rejected"):
            fails()
        with pytest.raises(ValueError, match="rejected"):
            asyncio.run(fails_async())
        assert [handle.closed for handle in seen] == [True, True, True]


def test_a_generator_predictor_keeps_its_handle_until_it_finishes(lines_file: str) -> None:
    handles: list[TextIO] = []

    @predictor
    def upper(f: Annotated[TextIO, lines_file]) -> Iterator[str]:
        handles.append(f)
        for line in f:
            yield line.upper()

    with ModelManager():
        out = upper()
        assert next(out) == "ONE\n"  # open after the call returned its generator
        assert len(list(out)) == 3 * REPEAT - 1
        partly = upper()
        next(partly)
        partly.close()  # closing the predictor's generator closes its file too
        assert [h.closed for h in handles] == [True, True]


def test_handles_injected_into_an_artifact_live_as_long_as_it_does(lines_file: str) -> None:
    @artifact
    def tokenizer(
        f: Annotated[TextIO, lines_file], g: Annotated[Generator[bytes, None, None], lines_file]
    ) -> tuple[TextIO, Generator[bytes, None, None]]:
        return f, g

    @predictor
    def tokenize(t: Annotated[tuple[TextIO, Any], tokenizer]) -> str:
        return t[0].readline()

    with ModelManager() as manager:
        assert [tokenize() for _ in range(3)] == ["one\n", "two\n", "three\n"]
        handle, chunks = tokenizer()
        assert next(chunks).startswith(b"one")  # still readable after the calls
    assert manager.closed and handle.closed and next(chunks, None) is None
