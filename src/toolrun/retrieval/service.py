"""The platform's search index, kept in step with the :class:`ToolStore`.

``start()`` subscribes to the store's change events and rebuilds the index from the store in a
background thread (embeddings come from the on-disk cache unless a tool's indexed text changed).
Writes made while it rebuilds are queued and applied before it reports ready; afterwards each
write updates the index at once, in the writer's thread. Searches wait for the first build.
Only this process's writes are seen: other API replicas' writes show up at their next start.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from toolrun.errors import InfrastructureError, ToolNotFound
from toolrun.registry.query import Filter, parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS

if TYPE_CHECKING:
    from toolrun.config import Settings
    from toolrun.retrieval.embedder import Embedder
    from toolrun.retrieval.index import Hit, Mode, ToolIndex
    from toolrun.storage.tool_store import ToolStore

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 60.0


@functools.cache
def shared_minilm() -> Embedder:
    """One model per process (read-only weights, about 90 MB)."""
    from toolrun.retrieval.embedder import MiniLMEmbedder

    return MiniLMEmbedder()


def make_embedder(kind: str) -> Embedder | None:
    if kind == "none":
        return None
    if kind == "hashing":
        from toolrun.retrieval.embedder import HashingEmbedder

        return HashingEmbedder()
    try:
        return shared_minilm()
    except InfrastructureError as exc:
        log.warning("dense retrieval off, BM25 only: %s", exc)
        return None


class RetrievalService:
    def __init__(
        self, settings: Settings, store: ToolStore, *, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self._embedder = embedder
        self.index: ToolIndex | None = None
        self.error: BaseException | None = None
        self.build_s: float | None = None
        self._ready = threading.Event()
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._subscribed = False

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self, *, background: bool = True) -> None:
        if not self._subscribed:
            self.store.on_change(self._on_change)
            self._subscribed = True
        if background:
            self._thread = threading.Thread(
                target=self._build_safely, name="toolrun-retrieval", daemon=True
            )
            self._thread.start()
        else:
            self.rebuild()

    def _build_safely(self) -> None:
        try:
            self.rebuild()
        except Exception as exc:  # reported to every search, never lost
            log.exception("building the search index failed")
            self.error = exc
            self._ready.set()

    def rebuild(self) -> None:
        """Index every stored tool; embeds only texts the cache has not seen."""
        from toolrun.retrieval.cache import EmbeddingCache
        from toolrun.retrieval.index import Entry, ToolIndex
        from toolrun.retrieval.text import tool_text

        started = time.perf_counter()
        embedder = self._embedder or make_embedder(self.settings.retrieval_embedder)
        cache = None
        if embedder is not None:
            path = self.settings.data_dir / "retrieval" / f"{embedder.name}-{embedder.dim}"
            cache = EmbeddingCache(embedder, path)
            cache.load()
        index = ToolIndex(cache=cache, alpha=self.settings.retrieval_alpha)
        tools = self.store.query(None)
        index.upsert_many([Entry(t.id, tool_text(t), t.to_document()) for t in tools])
        with self._lock:
            self.index = index
            pending, self._pending = self._pending, []
            for tool_id in dict.fromkeys(pending):
                self._apply(tool_id)
            self._ready.set()
        self.build_s = time.perf_counter() - started
        if cache is not None:
            cache.save(keep=index.used_keys())
        log.info(
            "search index: %d tool(s) in %.2f s (%d embedded)",
            len(index),
            self.build_s,
            cache.embedded if cache else 0,
        )

    def _on_change(self, tool_id: str) -> None:
        with self._lock:
            if self.index is None:
                self._pending.append(tool_id)
                return
        try:
            self._apply(tool_id)
        except Exception:  # the write itself succeeded; a stale index must not undo it
            log.exception("updating the search index for %s failed", tool_id)

    def _apply(self, tool_id: str) -> None:
        from toolrun.retrieval.text import tool_text

        assert self.index is not None
        try:
            tool = self.store.get(tool_id)
        except ToolNotFound:
            self.index.remove(tool_id)
            return
        self.index.upsert(tool.id, tool_text(tool), tool.to_document())

    def wait(self, timeout: float = READY_TIMEOUT_S) -> ToolIndex:
        if not self._ready.wait(timeout):
            raise InfrastructureError(f"the search index is still being built after {timeout} s")
        if self.error is not None or self.index is None:
            raise InfrastructureError(f"the search index could not be built: {self.error}")
        return self.index

    def search(
        self,
        query: str,
        k: int = 10,
        filter: Filter | Mapping[str, Any] | None = None,
        *,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """The ``k`` best tools for ``query`` among those matching ``filter`` (a parsed filter,
        or a Mongo-style one in toolrun's field names), as ``(tool_id, score, parts)``."""
        where = filter
        if isinstance(filter, Mapping):
            where = parse_filter(dict(filter), roots=DOCUMENT_FIELDS) if filter else None
        return self.wait().search(query, k, cast("Filter | None", where), mode=mode)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        index = self.index
        if index is not None and index.cache is not None and self.ready:
            try:
                index.cache.save(keep=index.used_keys())
            except OSError as exc:
                log.warning("could not save the embedding cache: %s", exc)
