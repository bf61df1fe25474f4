"""Every example of the seed README, run as written with a local stand-in for OpenAI.

The network parts point at servers on loopback: the picture at nginx, the model at the S3
server. The stand-in mimics the part of the OpenAI client the examples touch.
"""

from __future__ import annotations

import base64
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import pytest

from daidai import ModelManager, artifact, predictor
from tests.servers import NginxServer, S3Server


class APITimeoutError(Exception):
    """What the OpenAI client raises when a request times out."""


class FakeOpenAI:
    """`openai.OpenAI` as far as the seed uses it: `chat.completions.create(...)`."""

    instances = 0

    def __init__(self, timeout: float = 600, **configuration: Any) -> None:
        FakeOpenAI.instances += 1
        self.timeout = timeout
        self.chat = self
        self.completions = self

    def create(self, *, messages: list[dict[str, Any]], model: str) -> Any:
        if self.timeout < 1:
            raise APITimeoutError("Request timed out.")
        content = messages[0]["content"]
        image = content[1]["image_url"]["url"]
        assert image.startswith("data:image/jpeg;base64,")
        size = len(base64.b64decode(image.split(",", 1)[1]))
        reply = f"{model} saw {size} bytes: {content[0]['text']}"
        message = type("Message", (), {"content": reply})
        choice = type("Choice", (), {"message": message})
        return type("Response", (), {"choices": [choice]})


def test_quick_start(http_server: NginxServer) -> None:
    picture = b"\xff\xd8\xff" + bytes(range(256)) * 40
    url = http_server.put("photos/pexels-photo-220938.jpeg", picture)

    @artifact
    def openai_client(**configuration: dict[str, Any]) -> FakeOpenAI:
        return FakeOpenAI(**configuration)  # type: ignore[arg-type]

    @artifact
    def dogo_picture(
        picture: Annotated[bytes, url, {"cache_strategy": "no_cache"}],
    ) -> str:
        return base64.b64encode(picture).decode("utf-8")

    @predictor
    def ask(
        message: str,
        dogo_picture: Annotated[str, dogo_picture],
        client: Annotated[FakeOpenAI, openai_client, {"timeout": 5}],
        model: str = "gpt-4o-mini",
    ) -> str:
        response = client.chat.completions.create(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": message},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": f"data:image/jpeg;base64,{dogo_picture}",
                                "detail": "low",
                            },
                        },
                    ],
                }
            ],
            model=model,
        )
        return str(response.choices[0].message.content)

    expected = f"gpt-4o-mini saw {len(picture)} bytes: Hello, what's in the picture ?"
    assert ask("Hello, what's in the picture ?") == expected

    with ModelManager(preload=[ask]):
        assert ask("Hello, what's in the picture ?") == expected

    my_other_openai_client = FakeOpenAI(timeout=0.1)
    with pytest.raises(APITimeoutError, match="Request timed out"):
        ask("Hello, what's in the picture ?", client=my_other_openai_client)


class Model:
    """What the seed's `pickle.load` returns: a sentiment model."""

    def predict(self, text: str) -> str:
        return "positive" if "good" in text else "negative"


@pytest.fixture
def model_uri(s3_server: S3Server) -> str:
    bucket = s3_server.make_bucket()
    return s3_server.put(f"{bucket}/model.pkl", pickle.dumps(Model()))


def sentiment_components(model_uri: str, storage_options: dict[str, Any]) -> Any:
    loads: list[int] = []

    @artifact
    def model(
        model_path: Annotated[Path, model_uri, {"storage_options": storage_options}],
    ) -> Model:
        loads.append(threading.get_ident())
        with model_path.open("rb") as fh:
            return pickle.load(fh)  # type: ignore[no-any-return]

    @predictor
    def sentiment_classifier(text: str, model: Annotated[Model, model]) -> str:
        return model.predict(text)

    return sentiment_classifier, loads


def test_concurrency_approach_one_shared_preloaded_manager(
    model_uri: str, s3_server: S3Server
) -> None:
    sentiment_classifier, loads = sentiment_components(model_uri, s3_server.storage_options)
    data_chunks = [["good day", "bad day"], ["good"], ["meh"], ["so good"]]

    def worker_function(chunk: list[str]) -> list[str]:
        return [sentiment_classifier(text) for text in chunk]

    with (
        ModelManager(preload=[sentiment_classifier]),
        ThreadPoolExecutor(max_workers=4) as executor,
    ):
        results = list(executor.map(worker_function, data_chunks))
    assert results == [["positive", "negative"], ["positive"], ["negative"], ["positive"]]
    assert len(loads) == 1


def test_concurrency_approach_two_one_manager_per_thread(
    model_uri: str, s3_server: S3Server
) -> None:
    sentiment_classifier, loads = sentiment_components(model_uri, s3_server.storage_options)
    barrier = threading.Barrier(4)

    def worker_function(data: str) -> str:
        with ModelManager(namespace=str(threading.get_ident())):
            barrier.wait()
            return str(sentiment_classifier(data))

    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(executor.map(worker_function, ["good", "bad", "good", "bad"]))
    assert results == ["positive", "negative", "positive", "negative"]
    assert len(set(loads)) == 4  # one model per thread, from one shared disk cache


def test_file_dependencies_with_strategies(http_server: NginxServer) -> None:
    embeddings_url = http_server.put("bucket/embeddings.npy", b"\x93NUMPY fake embeddings")
    vocab_url = http_server.put("bucket/vocab.txt", b"orange\nlemon\nyuzu")

    @artifact
    def load_embeddings(
        embeddings: Annotated[Path, embeddings_url, {"strategy": "on_disk"}],
        vocab: Annotated[str, vocab_url, {"strategy": "in_memory"}],
    ) -> dict[str, Any]:
        return {"embeddings": embeddings.read_bytes(), "vocab": vocab.split()}

    with ModelManager():
        loaded = load_embeddings()
    assert loaded == {
        "embeddings": b"\x93NUMPY fake embeddings",
        "vocab": ["orange", "lemon", "yuzu"],
    }


def test_dependency_resolution_with_default_values(http_server: NginxServer) -> None:
    vocab_url = http_server.put("bucket/tok-vocab.txt", b"a b c")

    class Tokenizer:
        def __init__(self, vocab: str) -> None:
            self.vocab = vocab.split()

        @classmethod
        def from_file(cls, path: Path) -> Tokenizer:
            return cls(path.read_text())

    @artifact
    def tokenizer(vocab_file: Annotated[Path, vocab_url]) -> Tokenizer:
        return Tokenizer.from_file(vocab_file)

    @artifact
    def embeddings(tokenizer=tokenizer) -> dict[str, int]:  # type: ignore[no-untyped-def]
        return {word: i for i, word in enumerate(tokenizer.vocab)}

    @predictor
    def embed_text(text: str, embeddings=embeddings) -> list[int]:  # type: ignore[no-untyped-def]
        return [embeddings[w] for w in text.split()]

    assert embed_text("c a") == [2, 0]


def test_namespace_management() -> None:
    @artifact
    def model_a() -> str:
        return "a"

    @artifact
    def model_b() -> str:
        return "b"

    @predictor
    def predict_a(x: str, m: Annotated[str, model_a]) -> str:
        return m + x

    @predictor
    def predict_b(x: str, m: Annotated[str, model_b]) -> str:
        return m + x

    with (
        ModelManager([model_a], namespace="prod") as prod,
        ModelManager([model_b], namespace="staging") as staging,
    ):
        assert predict_a("test") == "atest"
        assert predict_b("test") == "btest"
    assert "namespace='prod'" in repr(prod) and "namespace='staging'" in repr(staging)


def test_custom_configuration() -> None:
    @artifact
    def load_model(model_path: str) -> str:
        return f"model from {model_path}"

    @predictor
    def predict(x: str, model: Annotated[str, load_model]) -> str:
        return f"{model}: {x}"

    result = predict("input", model=load_model(model_path="local/path/model.pkl"))
    assert result == "model from local/path/model.pkl: input"
    with ModelManager({load_model: {"model_path": "local/path/model.pkl"}}):
        assert predict("input") == "model from local/path/model.pkl: input"


def test_generator_based_cleanup() -> None:
    events: list[str] = []

    class Connection:
        def close(self) -> None:
            events.append("closed")

    def create_connection(url: str) -> Connection:
        events.append(f"connected to {url}")
        return Connection()

    @artifact
    def database_connection(url: str) -> Iterator[Connection]:
        conn = create_connection(url)
        try:
            yield conn
        finally:
            conn.close()

    with ModelManager({database_connection: {"url": "postgres://db"}}):
        assert isinstance(database_connection(), Connection)
        assert events == ["connected to postgres://db"]
    assert events == ["connected to postgres://db", "closed"]
