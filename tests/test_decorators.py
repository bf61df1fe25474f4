"""@artifact and @predictor: declarations, injection, explicit arguments, pickling."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Any, Optional, TextIO

import pytest

import daidai
from daidai import DaidaiError, DeclarationError, ModelManager, artifact, predictor
from tests import components


def test_public_names_are_pinned() -> None:
    assert sorted(daidai.__all__) == sorted(
        [
            "Artifact",
            "CacheError",
            "ChecksumMismatchError",
            "ConfigError",
            "CycleError",
            "DaidaiError",
            "DeclarationError",
            "FileError",
            "FileFetchError",
            "IntegrityError",
            "LockfileError",
            "ModelManager",
            "OfflineError",
            "Predictor",
            "SourceNotFoundError",
            "__version__",
            "artifact",
            "predictor",
        ]
    )


def test_predictor_receives_injected_artifact_with_its_configuration() -> None:
    @artifact
    def client(**configuration: Any) -> dict[str, Any]:
        return dict(configuration)

    @predictor
    def ask(message: str, c: Annotated[dict[str, Any], client, {"timeout": 5}]) -> str:
        return f"{message}:{c['timeout']}"

    with ModelManager():
        assert ask("hi") == "hi:5"


def test_default_value_component_is_injected() -> None:
    @artifact
    def tokenizer() -> str:
        return "tok"

    @artifact
    def embeddings(tok=tokenizer) -> str:  # type: ignore[no-untyped-def]
        return f"emb({tok})"

    @predictor
    def embed(text: str, emb=embeddings) -> str:  # type: ignore[no-untyped-def]
        return f"{emb}:{text}"

    with ModelManager():
        assert embed("x") == "emb(tok):x"


def test_explicit_argument_wins_and_the_replaced_artifact_is_never_built() -> None:
    built: list[str] = []

    @artifact
    def client() -> str:
        built.append("client")
        return "real"

    @predictor
    def ask(message: str, c: Annotated[str, client]) -> str:
        return f"{message}:{c}"

    with ModelManager():
        assert ask("hi", c="fake") == "hi:fake"
        assert ask("hi", "positional-fake") == "hi:positional-fake"
        assert built == []
        assert ask("hi") == "hi:real"
        assert ask("hi", c="fake-again") == "hi:fake-again"
    assert built == ["client"]


def test_calling_an_artifact_with_configuration_builds_one_object_per_configuration() -> None:
    @artifact
    def load_model(model_path: str = "default.pkl") -> dict[str, str]:
        return {"path": model_path}

    with ModelManager():
        first = load_model(model_path="x")
        assert first == {"path": "x"}
        assert load_model(model_path="x") is first
        assert load_model("x") is first
        assert load_model(model_path="y") is not first
        assert load_model() == {"path": "default.pkl"}


def test_predictor_arguments_and_defaults_behave_like_the_plain_function() -> None:
    @artifact
    def prefix() -> str:
        return ">"

    @predictor
    def fmt(a: int, b: int = 2, *, p: Annotated[str, prefix], sep: str = "-", **extra: Any) -> str:
        return f"{p}{a}{sep}{b}{sorted(extra)}"

    with ModelManager():
        assert fmt(1) == ">1-2[]"
        assert fmt(1, 3, sep="+", z=1) == ">1+3['z']"
        assert fmt(a=4, b=5) == ">4-5[]"
        assert fmt(1, p="<") == "<1-2[]"
        with pytest.raises(TypeError):
            fmt()  # missing `a`, as the plain function would say
        with pytest.raises(TypeError):
            fmt(1, 2, 3)


def test_predictor_with_var_positional_parameters_works() -> None:
    @artifact
    def base() -> int:
        return 10

    @predictor
    def total(*values: int, b: Annotated[int, base]) -> int:
        return b + sum(values)

    with ModelManager():
        assert total(1, 2, 3) == 16
        assert total(1, 2, 3) == 16
        assert total(1, b=0) == 1


def test_components_pickle_by_reference() -> None:
    assert pickle.loads(pickle.dumps(components.square)) is components.square
    assert pickle.loads(pickle.dumps(components.counter)) is components.counter
    assert components.square(3) == 9 + components.OFFSET


def test_signature_and_metadata_are_those_of_the_user_function() -> None:
    assert components.square.__name__ == "square"
    assert components.square.__doc__ == "Square a number, plus the offset artifact."
    assert list(inspect.signature(components.square).parameters) == ["x", "offset"]


def test_a_predictor_can_be_injected_as_a_callable() -> None:
    @artifact
    def two() -> int:
        return 2

    @predictor
    def double(x: int, k: Annotated[int, two]) -> int:
        return x * k

    @predictor
    def quadruple(x: int, d: Annotated[Any, double]) -> int:
        return int(d(d(x)))

    with ModelManager():
        assert quadruple(3) == 12


def _opened(open_options: str) -> str:
    return f"def f(x: Annotated[TextIO, 'mem://x', {{'open_options': {open_options}}}]): ..."


def _chunks(size: str) -> str:
    options = f"{{'open_options': {{'chunk_size': {size}}}}}"
    return f"def f(x: Annotated[Generator[bytes, None, None], 'mem://x', {options}]): ..."


def _transfer(key: str, value: str) -> str:
    return f"def f(x: Annotated[bytes, 'mem://x', {{{key!r}: {value}}}]): ..."


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x: Annotated[int, a, b]): ...", "two dependency markers"),
        ("def f(x: Annotated[int, a] = b): ...", "two dependency markers"),
        ("def f(x: Annotated[int, 'mem://x']): ...", "must be typed as one of"),
        ("def f(x: a): ...", "is used as a type"),
        ("def f(x: Annotated[a, 's3://b/x']): ...", "is used as a type"),
        ("def f(x: Annotated[str, a, {'nope': 1}]): ...", "has no parameter 'nope'"),
        ("def f(x: Annotated[Path, 'mem://x', {'strategy': 'in_memory'}]): ...", "cannot hand"),
        ("def f(x: Annotated[bytes, 'mem://x', {'cache_strategy': 'fast'}]): ...", "unknown cache"),
        ("def f(x: Annotated[bytes, 'mem://x', {'colour': 'red'}]): ...", "unknown file option"),
        ("def f(x: Annotated[bytes, 'mem://x', {'checksum': 'md5:00'}]): ...", "'checksum' must"),
        ("def f(x: Annotated[int, a], /): ...", "positional-only"),
        ("def f(x: Annotated[int, 'mem://x', a]): ...", "two dependency markers"),
        ("def f(x: Annotated[int, plain]): ...", "plain is a plain function, not a component"),
        ("def f(x: Annotated[int, a, plain]): ...", "plain is a plain function"),
        ("def f(x: Annotated[int, lambda: 1]): ...", "is a plain function"),
        ("def f(x: Annotated[int, a] | None = None): ...", "marker is inside a union"),
        ("def f(x: Optional[Annotated[int, a]] = None): ...", "marker is inside a union"),
        ("def f(*x: Annotated[int, a]): ...", r"\*x cannot be injected"),
        ("def f(**x: Annotated[int, 'mem://x']): ...", r"\*\*x cannot be injected"),
        (_opened("{'encoding': 'no-such-codec'}"), "unknown text encoding 'no-such-codec'"),
        (_opened("{'encoding': 'rot13'}"), "unknown text encoding 'rot13'"),
        (_opened("{'encoding': 8}"), "unknown text encoding 8"),
        (_opened("{'errors': 'shrug'}"), "unknown error handler 'shrug'"),
        (_opened("{'newline': 'x'}"), "'newline' in open_options must be one of"),
        *(
            (_chunks(size), "'chunk_size' in open_options must be a positive number")
            for size in ("0", "-1", "'8'", "True", "1.5", "None")
        ),
        *(
            (_transfer(key, value), f"'{key}' must be")
            for key, values in {
                "connections": ("0", "-2", "True", "'8'", "2.0", "None"),
                "retries": ("-1", "False", "'5'", "1.5"),
                "read_timeout": ("0", "-1", "True", "'soon'", "'30'", "float('inf')", "None"),
            }.items()
            for value in values
        ),
    ],
)
def test_declaration_mistakes_fail_when_the_decorator_runs(source: str, message: str) -> None:
    @artifact
    def a() -> int:
        return 1

    @artifact
    def b() -> int:
        return 2

    def plain() -> int:
        return 3

    namespace: dict[str, Any] = {"Annotated": Annotated, "Path": Path, "a": a, "b": b}
    namespace.update(plain=plain, TextIO=TextIO, Optional=Optional, Generator=Generator)
    exec(source, namespace)
    with pytest.raises(DeclarationError, match=message) as info:
        predictor(namespace["f"])
    assert info.value.component is not None and info.value.component.endswith("f")
    assert info.value.parameter == "x"


def test_valid_open_options_and_other_libraries_metadata_pass_the_decorator() -> None:
    @artifact
    def two() -> int:
        return 2

    class Doc:  # metadata of another library, as typer's or pydantic's
        def __init__(self, text: str) -> None:
            self.text = text

    options = {"encoding": "latin-1", "errors": "replace", "newline": ""}

    @predictor
    def f(
        x: Annotated[int, Doc("the input"), two],
        text: Annotated[str, "mem://t.txt", {"open_options": options}] = "",
        y: Annotated[int, Doc("plain")] = 1,
        z: Annotated[int | None, two] = None,
    ) -> int:
        return x + y + (z or 0)

    with ModelManager(overrides={}):
        assert f(text="given") == 5


def test_transfer_options_and_chunk_size_pass_and_reach_every_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daidai.files import session

    source = tmp_path / "w.bin"
    source.write_bytes(b"abcdefgh")
    transfer = {"connections": 4, "retries": 0, "read_timeout": "2m"}
    chunks = {"chunk_size": 3}
    seen: list[Any] = []
    real_fetch = session.fetch

    def spy(request: Any, **kwargs: Any) -> Any:  # the real fetch, recording its request
        seen.append(request.transfer)
        return real_fetch(request, **kwargs)

    monkeypatch.setattr(session, "fetch", spy)

    @predictor
    def f(
        x: Annotated[bytes, str(source), transfer],
        y: Annotated[Generator[bytes, None, None], str(source), {"open_options": chunks}],
    ) -> tuple[bytes, list[bytes]]:
        return x, list(y)

    with ModelManager():
        assert f() == (b"abcdefgh", [b"abc", b"def", b"gh"])
    assert {"connections": 4, "retries": 0, "read_timeout": 120.0} in seen


def test_a_forward_reference_is_resolved_at_first_use() -> None:
    from tests import forward_components

    with ModelManager():
        assert forward_components.uses_later("x") == "x:later"


def test_an_undefined_name_in_an_annotation_fails_at_first_use_naming_it() -> None:
    @predictor
    def f(x: Annotated[int, not_defined_anywhere]) -> int:  # type: ignore[name-defined]  # noqa: F821
        return x

    with ModelManager(), pytest.raises(DeclarationError, match="not_defined_anywhere"):
        f()


def test_async_artifact_in_a_sync_component_is_a_declaration_error() -> None:
    @artifact
    async def remote() -> int:
        return 1

    with pytest.raises(DeclarationError, match="async artifact"):

        @predictor
        def sync_user(x: Annotated[int, remote]) -> int:
            return x


def test_decorating_twice_or_a_non_function_is_rejected() -> None:
    with pytest.raises(DeclarationError, match="already a component"):
        artifact(components.counter)
    with pytest.raises(DeclarationError, match="decorates functions"):
        artifact(42)  # type: ignore[call-overload]


def test_missing_artifact_parameter_names_component_and_parameter() -> None:
    @artifact
    def needs_path(model_path: str) -> str:
        return model_path

    with ModelManager(), pytest.raises(DaidaiError) as info:
        needs_path()
    assert info.value.parameter == "model_path"
    assert "needs_path" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_components_of_a_script_ship_by_value_and_build_once_per_process(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys, cloudpickle\n"
        "from typing import Annotated\n"
        "from daidai import artifact, predictor\n"
        "@artifact\n"
        "def model() -> int:\n"
        "    print('built', file=sys.stderr)\n"
        "    return 10\n"
        "@predictor\n"
        "def predict(x: int, m: Annotated[int, model]) -> int:\n"
        "    return x + m\n"
        "sys.stdout.buffer.write(cloudpickle.dumps(predict))\n"
    )
    import subprocess
    import sys

    payload = subprocess.run(
        [sys.executable, str(script)], capture_output=True, check=True, cwd=tmp_path
    ).stdout
    # A fresh process, like a worker: each task deserializes the function anew.
    worker = (
        "import pickle, sys\n"
        "payload = sys.stdin.buffer.read()\n"
        "print([pickle.loads(payload)(i) for i in range(3)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", worker], input=payload, capture_output=True, check=True
    )
    assert out.stdout.decode().strip() == "[10, 11, 12]"
    assert out.stderr.decode().split() == ["built"]
