"""The Quick Start of daidai's original README, runnable with no network and no API key.

Two stand-ins keep it local: `LocalChat` answers like `openai.OpenAI` (same call shape:
`client.chat.completions.create(...).choices[0].message.content`), and the picture is a file
next to this one. Swap in `openai.OpenAI` and an `https://` URI and nothing else changes.

    python examples/quickstart.py
    daidai graph examples/quickstart.py
    daidai run examples/quickstart.py:ask --message "What is in the picture?"
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from daidai import ModelManager, artifact, predictor

PICTURE = Path(__file__).resolve().with_name("data") / "orange.png"


class APITimeoutError(TimeoutError):
    """What `openai.APITimeoutError` is to the real client."""


@dataclass
class _Message:
    content: str


@dataclass
class _Choice:
    message: _Message


@dataclass
class _Response:
    choices: list[_Choice]


class LocalChat:
    """A local stand-in for `openai.OpenAI`: describes the picture it is sent.

    Args:
        timeout: seconds; below the 0.5 s that this "server" takes, calls time out.
        **options: accepted and ignored, as the real client's other options would be.
    """

    latency = 0.5

    def __init__(self, timeout: float = 60.0, **options: Any) -> None:
        self.timeout = timeout
        self.chat = self
        self.completions = self

    def create(self, *, messages: list[dict[str, Any]], model: str) -> _Response:
        """Answer the last user message, like `client.chat.completions.create`."""
        if self.timeout < self.latency:
            raise APITimeoutError("Request timed out.")
        parts = messages[-1]["content"]
        text = next(p["text"] for p in parts if p["type"] == "text")
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        width, height = _png_size(base64.b64decode(url.split(",", 1)[1]))
        answer = f"[{model}] You asked {text!r}: the picture is a {width}x{height} orange square."
        return _Response([_Choice(_Message(answer))])


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# Define artifacts which are long-lived objects
# that can be used by multiple predictors, or other artifacts


@artifact
def openai_client(**configuration: Any) -> LocalChat:
    return LocalChat(**configuration)


# Fetch a file: here a local path, but it can be from any source: HTTPS, S3, GCS, Azure, HF...
@artifact
def dogo_picture(
    picture: Annotated[bytes, str(PICTURE), {"cache_strategy": "no_cache"}],
) -> str:
    return base64.b64encode(picture).decode("utf-8")


# Define a predictor that depends on the previous artifacts
# which are automatically loaded and passed as an argument


@predictor
def ask(
    message: str,
    dogo_picture: Annotated[str, dogo_picture],
    client: Annotated[LocalChat, openai_client, {"timeout": 5}],
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
                            "url": f"data:image/png;base64,{dogo_picture}",
                            "detail": "low",
                        },
                    },
                ],
            }
        ],
        model=model,
    )
    return response.choices[0].message.content


def main() -> None:
    """The Quick Start's three steps."""
    # daidai takes care of loading dependencies & injecting artifacts!
    print(ask("Hello, what's in the picture ?"))

    # Or manage lifecycle with context manager for production usage
    # all predictors, artifacts and files are automatically loaded and cleaned up
    with ModelManager(preload=[ask]):
        print(ask("Hello, what's in the picture ?"))

    # or manually pass dependencies
    my_other_openai_client = LocalChat(timeout=0.1)
    try:
        print(ask("Hello, what's in the picture ?", client=my_other_openai_client))
    except APITimeoutError as exc:
        # OOOPS, the new client timed out, of course :-)
        print(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
