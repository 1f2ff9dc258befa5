"""Embeddings by the hash of the text embedded, kept on disk so that a restart re-embeds only
tools whose indexed text changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from toolrun.retrieval.embedder import Embedder

log = logging.getLogger(__name__)


class EmbeddingCache:
    def __init__(self, embedder: Embedder, path: Path | None = None) -> None:
        self.embedder = embedder
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.embedded = 0  # texts sent to the embedder (tests and the bench read it)

    def key(self, text: str) -> str:
        data = f"{self.embedder.name}\x00{self.embedder.dim}\x00{text}".encode()
        return hashlib.sha256(data).hexdigest()[:32]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts``, embedding only those not cached (in one batch)."""
        keys = [self.key(t) for t in texts]
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}
        if missing:
            fresh = self.embedder.embed(list(missing.values()))
            self.embedded += len(missing)
            for row, k in enumerate(missing):
                self.vectors[k] = fresh[row]
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        for row, k in enumerate(keys):
            out[row] = self.vectors[k]
        return out

    def load(self) -> int:
        if self.path is None:
            return 0
        keys_file, array_file = self._files(self.path)
        try:
            keys = json.loads(keys_file.read_text())
            matrix = np.load(array_file)
        except (OSError, ValueError) as exc:
            if keys_file.exists():
                log.warning("ignoring unreadable embedding cache %s: %s", keys_file, exc)
            return 0
        if matrix.shape != (len(keys), self.embedder.dim):
            return 0
        self.vectors.update(zip(keys, matrix, strict=True))
        return len(keys)

    def save(self, keep: Collection[str] | None = None) -> None:
        """Write the cache (only the ``keep`` keys when given), atomically."""
        if self.path is None:
            return
        keys = [k for k in self.vectors if keep is None or k in keep]
        matrix = np.zeros((len(keys), self.embedder.dim), dtype=np.float32)
        for row, k in enumerate(keys):
            matrix[row] = self.vectors[k]
        keys_file, array_file = self._files(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for target, write in (
            (array_file, lambda f: np.save(f, matrix)),
            (keys_file, lambda f: f.write(json.dumps(keys).encode())),
        ):
            tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                write(handle)
            os.replace(tmp, target)

    @staticmethod
    def _files(path: Path) -> tuple[Path, Path]:
        return path.with_suffix(".keys.json"), path.with_suffix(".npy")
