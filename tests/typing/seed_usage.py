"""Checked by mypy and pyright in tests/test_typing.py: the seed's calls type-check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from daidai import ModelManager, artifact, predictor


class Client:
    def __init__(self, **configuration: Any) -> None:
        self.configuration = configuration

    def complete(self, prompt: str) -> str:
        return prompt


@artifact
def openai_client(**configuration: Any) -> Client:
    return Client(**configuration)


@artifact
def connection() -> Iterator[Client]:
    yield Client()


@artifact
async def remote() -> AsyncIterator[Client]:
    yield Client()


@artifact
def weights(path: Annotated[Path, "s3://bucket/model.pt"]) -> bytes:
    return path.read_bytes()


@predictor
def ask(
    message: str,
    client: Annotated[Client, openai_client, {"timeout": 5}],
    model: str = "gpt-4o-mini",
) -> str:
    return client.complete(message)


@predictor
async def aask(message: str, client: Annotated[Client, remote]) -> str:
    return client.complete(message)


answer: str = ask("Hello, what's in the picture ?")
explicit: str = ask("Hello", client=Client(timeout=0.1))
client: Client = openai_client(timeout=5)
conn: Client = connection()

with ModelManager(preload=[ask]):
    again: str = ask("Hello")


async def main() -> str:
    remote_client: Client = await remote()
    return await aask("hi") + remote_client.complete("x")


reveal_type(ask("x"))  # expect: str
reveal_type(openai_client())  # expect: Client
reveal_type(connection())  # expect: Client
pending = aask("x")
_seen = reveal_type(pending)  # expect: Coroutine
pending.close()
