"""Retrieval: the numpy MiniLM, BM25, the index (incremental, filtered), the start-up rebuild
with its embedding cache, and the HTTP routes (``POST /search``, ``GET /functions?q=``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from toolrun.config import Settings
from toolrun.registry.query import parse_filter
from toolrun.registry.tool import DOCUMENT_FIELDS, Tool
from toolrun.retrieval import text as rtext
from toolrun.retrieval.bm25 import BM25
from toolrun.retrieval.embedder import HashingEmbedder, MiniLMEmbedder
from toolrun.retrieval.index import Entry, ToolIndex
from toolrun.retrieval.service import RetrievalService, shared_minilm
from toolrun.retrieval.text import document_text, split_name, tokenize, tool_text
from toolrun.server.app import create_app
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.tool_store import ToolStore


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    model = shared_minilm()
    assert isinstance(model, MiniLMEmbedder)
    return model


def make_tool(name: str, description: str, tags: list[str] | None = None, **kw: Any) -> Tool:
    return Tool(name=name, description=description, tags=tags or [], **kw)


TOOLS = [
    make_tool("get_weather", "Current temperature and conditions in a city.", ["weather"]),
    make_tool("send_email", "Send an email message to a recipient.", ["mail"]),
    make_tool("convert_currency", "Convert an amount of money between currencies.", ["finance"]),
    make_tool("calculate_triangle_area", "Area of a triangle from base and height.", ["math"]),
    make_tool("translateText", "Translate text from one language into another.", ["language"]),
]


def test_minilm_paraphrases_are_closer_than_unrelated_sentences(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ]
    )
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    # sentence-transformers gives 0.755 for the first pair with the same weights
    assert similar == pytest.approx(0.755, abs=0.01)
    assert similar > unrelated + 0.5


def test_minilm_is_deterministic_and_batch_independent(minilm: MiniLMEmbedder) -> None:
    texts = ["what is the weather in Paris", "send a mail to Bob about the meeting tomorrow", "x"]
    batch = minilm.embed(texts)
    for row, text in enumerate(texts):
        assert np.allclose(minilm.embed([text])[0], batch[row], atol=1e-5)
    assert np.array_equal(minilm.embed(texts), batch)
    assert minilm.embed([]).shape == (0, 384)


def test_onnx_and_numpy_forward_passes_agree(minilm: MiniLMEmbedder) -> None:
    """The ONNX graph is built from the same weights: same vectors, padded batch or not."""
    assert minilm.backend == "onnx"
    reference = MiniLMEmbedder(backend="numpy")
    texts = ["get the weather forecast for Paris", "x", "convert 20 euros " * 40]
    assert np.allclose(minilm.embed(texts), reference.embed(texts), atol=1e-5)
    assert np.allclose(minilm.embed(texts[:1]), reference.embed(texts[:1]), atol=1e-5)


def test_text_splits_names_and_reads_parameters() -> None:
    assert split_name("getWeatherForecast_v2.now") == "get Weather Forecast v2 now"
    text = document_text(
        "math.hypot",
        "Hypotenuse.",
        {"type": "object", "properties": {"side_a": {"description": "first leg"}}},
        ["geometry"],
    )
    assert "math hypot" in text and "side a first leg" in text and "geometry" in text


def test_tokens_are_words_without_stopwords_and_their_stems() -> None:
    assert tokenize("Forecasts for the getWeatherForecast cities") == [
        *("forecasts", "get", "weather", "forecast", "cities"),
        *("forecast", "citi"),  # the stems that differ
    ]
    bm25 = BM25()
    bm25.add(0, "Returns the forecasted temperatures")
    bm25.add(1, "Sends an email")
    bm25.add(2, "Returns a product")
    bm25.add(3, "Lists the products")
    scores = bm25.scores("temperature forecasting", 4)
    assert scores[0] > 0 and scores[1] == 0
    scores = bm25.scores("products", 4)  # both match; the word as written matches better
    assert scores[3] > scores[2] > 0


def test_remembered_stems_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtext, "MAX_STEMS", 4)
    for _ in range(3):
        assert rtext.stem(["cities", "running", "forecasts"]) == ["citi", "run", "forecast"]
        assert rtext.stem(["boxes", "walked", "cities"]) == ["box", "walk", "citi"]
    assert len(rtext._local.stems) <= 4


def test_bm25_reused_slots_keep_no_stale_postings() -> None:
    bm25 = BM25(tokenizer=str.split)
    for slot in range(3):
        bm25.add(slot, f"common word{slot}")
    bm25.add(1, "other text")  # replaced in place
    bm25.remove(0)
    bm25.add(0, "fresh")  # the slot is reused
    assert bm25.scores("word0", 3).tolist() == [0, 0, 0]
    assert bm25.scores("word1", 3).tolist() == [0, 0, 0]
    assert bm25.scores("common", 3)[2] > 0 and bm25.scores("common", 3)[:2].tolist() == [0, 0]
    assert bm25.scores("fresh", 3)[0] > 0
    assert bm25.stats() == {"documents": 3, "terms": 5}  # common word2 other text fresh


def test_bm25_ranks_by_term_rarity_and_supports_remove() -> None:
    bm25 = BM25()
    bm25.add(0, "weather in a city")
    bm25.add(1, "send email to a city council")
    bm25.add(2, "weather weather forecast")
    scores = bm25.scores("weather forecast", 3)
    assert scores[2] > scores[0] > scores[1] == 0
    bm25.remove(2)
    scores = bm25.scores("weather forecast", 3)
    assert scores[2] == 0 and scores[0] > 0
    assert bm25.stats()["documents"] == 2


@pytest.fixture
def index() -> ToolIndex:
    idx = ToolIndex(HashingEmbedder())
    for tool in TOOLS:
        idx.upsert(tool.id, tool_text(tool), tool.to_document())
    return idx


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_index_finds_the_right_tool(index: ToolIndex, mode: Any) -> None:
    hits = index.search("what is the weather in Paris", 3, mode=mode)
    assert hits[0].tool_id == "get_weather"
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_index_updates_and_deletes_are_seen_at_once(index: ToolIndex) -> None:
    index.upsert("send_email", "Forecast of the weather for the next days.", None)
    assert {h.tool_id for h in index.search("weather forecast", 2)} == {
        "get_weather",
        "send_email",
    }
    index.remove("get_weather")
    assert "get_weather" not in {h.tool_id for h in index.search("weather", 5)}
    assert len(index) == len(TOOLS) - 1
    index.upsert("get_weather", "weather again", {})  # reuses a free slot
    assert index.search("weather again", 1)[0].tool_id == "get_weather"


def test_filter_combines_with_search(index: ToolIndex) -> None:
    where = parse_filter({"tags": {"$in": ["math", "finance"]}}, roots=DOCUMENT_FIELDS)
    hits = index.search("weather in a city", 5, where)
    assert {h.tool_id for h in hits} == {"convert_currency", "calculate_triangle_area"}
    none = parse_filter({"tags": "nothing-has-this"}, roots=DOCUMENT_FIELDS)
    assert index.search("weather", 5, none) == []


def test_dense_scores_are_measured_from_the_centroid(index: ToolIndex) -> None:
    """``q . (d - m) / |d - m|`` with ``m`` the mean of the live rows, kept in step."""

    def expected(query: str) -> dict[str, float]:
        q = index.query_vector(query)
        live = {t: index.matrix[s] for t, s in index.slots.items()}
        centroid = np.mean(list(live.values()), axis=0)
        return {
            t: float(q @ (d - centroid) / np.linalg.norm(d - centroid)) for t, d in live.items()
        }

    for change in (None, "update", "remove", "twice in a batch"):
        if change == "update":
            index.upsert("send_email", "Send a weather report by email.", None)
        elif change == "remove":
            index.remove("convert_currency")
        elif change == "twice in a batch":  # the last entry wins
            index.upsert_many([Entry("new", "money"), Entry("new", "a weather station")])
            assert index.search("weather station", 1)[0].tool_id == "new"
        hits = index.search("weather report", 10, mode="dense")
        assert {h.tool_id: h.parts["dense"] for h in hits} == pytest.approx(
            expected("weather report"), abs=1e-5
        )
    lonely = ToolIndex(HashingEmbedder())
    lonely.upsert("only", "weather in a city")
    (hit,) = lonely.search("weather", 5, mode="dense")  # one tool: the plain cosine
    assert hit.parts["dense"] == pytest.approx(
        float(lonely.query_vector("weather") @ lonely.matrix[0]), abs=1e-6
    )


def test_query_embeddings_are_cached_apart_from_documents() -> None:
    embedder = HashingEmbedder()
    idx = ToolIndex(embedder, query_cache=2)
    for tool in TOOLS:
        idx.upsert(tool.id, tool_text(tool), tool.to_document())
    assert idx.cache is not None
    documents = len(idx.cache.vectors)
    calls = embedder.calls
    for query in ("weather", "email", "weather", "money", "weather"):
        idx.search(query, 1)
    assert embedder.calls == calls + 3  # weather, email, money; weather stayed in the LRU
    assert list(idx._queries) == ["money", "weather"]
    assert len(idx.cache.vectors) == documents  # queries never reach the on-disk cache
    idx.query_cache = 0
    idx._queries.clear()
    idx.search("weather", 1)
    idx.search("weather", 1)
    assert embedder.calls == calls + 5 and not idx._queries


def test_index_with_the_real_model(minilm: MiniLMEmbedder) -> None:
    idx = ToolIndex(minilm)
    for tool in TOOLS:
        idx.upsert(tool.id, tool_text(tool), tool.to_document())
    assert idx.search("how many dollars is 20 euros", 1)[0].tool_id == "convert_currency"
    assert idx.search("say it in French", 1, mode="dense")[0].tool_id == "translateText"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ToolStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    yield ToolStore(engine)
    engine.dispose()


def test_rebuild_embeds_only_changed_tools(tmp_path: Path, store: ToolStore) -> None:
    settings = Settings(data_dir=tmp_path / "data", retrieval_embedder="hashing")
    for tool in TOOLS:
        store.create(tool)
    first = HashingEmbedder()
    service = RetrievalService(settings, store, embedder=first)
    service.start(background=False)
    assert first.texts_embedded == len(TOOLS)
    store.update("send_email", {"description": "Post a letter."})  # seen incrementally
    assert first.texts_embedded == len(TOOLS) + 1
    assert service.search("post a letter", 1)[0].tool_id == "send_email"
    service.close()

    store._listeners.clear()  # a restart: a new process, a new service
    store.update("get_weather", {"description": "Rain or shine."})
    store.delete("translateText")
    second = HashingEmbedder()
    restarted = RetrievalService(settings, store, embedder=second)
    restarted.start(background=False)
    assert second.texts_embedded == 1  # only get_weather's text changed
    assert len(restarted.wait()) == len(TOOLS) - 1
    assert restarted.search("rain or shine", 1)[0].tool_id == "get_weather"


def test_writes_during_the_build_are_not_lost(tmp_path: Path, store: ToolStore) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    service = RetrievalService(settings, store, embedder=HashingEmbedder())
    service.store.on_change(service._on_change)
    service._subscribed = True
    store.create(TOOLS[0])  # before the index exists: queued
    service.start(background=True)
    assert service.search("weather", 1)[0].tool_id == "get_weather"
    service.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("search") / "data"
    settings = Settings(data_dir=data, demo=True, workers=1, ws_port=None)
    with TestClient(create_app(settings)) as client:
        yield client


def test_post_search_ranks_tools_with_scores(client: TestClient, minilm: MiniLMEmbedder) -> None:
    reply = client.post("/search", json={"query": "will it rain in Berlin tomorrow", "k": 3})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == 3
    assert results[0]["tool_id"] == "weather_showForecast"
    first = results[0]
    assert set(first["scores"]) == {"bm25", "dense"}
    assert first["tool"]["tool_id"] == first["tool_id"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)

    filtered = client.post(
        "/search", json={"query": "weather", "filter": {"tool_search_tags": "math"}, "k": 5}
    ).json()["results"]
    assert filtered and all("math" in r["tool"]["tool_search_tags"] for r in filtered)


def test_search_sees_new_and_deleted_tools(client: TestClient) -> None:
    body = {
        "tool_id": "zebra_counter",
        "tool_description": "Counts zebras in a savanna photo.",
        "tool_search_tags": ["animals"],
        "tool_metadata": {"input_schema": {"type": "object", "properties": {}}},
    }
    assert client.post("/tool", json=body).status_code == 201
    top = client.post("/search", json={"query": "count zebras", "k": 1}).json()["results"]
    assert top[0]["tool_id"] == "zebra_counter"
    assert client.delete("/tool/zebra_counter").status_code == 200
    top = client.post("/search", json={"query": "count zebras", "k": 1}).json()["results"]
    assert top[0]["tool_id"] != "zebra_counter"


def test_get_functions_with_q_ranks_by_search(client: TestClient) -> None:
    ranked = client.get("/functions", params={"q": "order a product for delivery", "k": 2})
    assert ranked.status_code == 200
    assert ranked.json()[0]["function_id"] == "delivery_orderProduct"
    assert len(ranked.json()) == 2
    everything = client.get("/functions").json()  # without q: unchanged, every function
    assert len(everything) == 9
    assert client.get("/tools", params={"q": "increment"}).json()[0]["tool_id"] in (
        "increment",
        "binary-increment-tool",
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": ""},
        {"query": "x", "k": 0},
        {"query": "x", "k": 1000},
        {"query": "x", "filter": {"tags": {"$bogus": 1}}},
        {"query": "x", "filter": {"no_such_field": 1}},
        {"query": "x", "extra": True},
        {"query": 3},
    ],
)
def test_bad_search_requests_are_4xx_with_the_error_shape(
    client: TestClient, body: dict[str, Any]
) -> None:
    reply = client.post("/search", json=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert set(reply.json()["error"]) == {"type", "message", "detail"}


def test_bad_q_is_4xx(client: TestClient) -> None:
    cases: list[dict[str, str | int]] = [{"q": ""}, {"q": "x", "k": 0}, {"q": "x", "k": 101}]
    for params in cases:
        reply = client.get("/functions", params=params)
        assert reply.status_code == 422
        assert reply.json()["error"]["type"] == "invalid_request"


def test_service_search_takes_a_filter_dict_and_returns_tuples(
    tmp_path: Path, store: ToolStore
) -> None:
    """The shape ``/execute``'s router relies on: ``(tool_id, score, parts)``."""
    for tool in TOOLS:
        store.create(tool)
    settings = Settings(data_dir=tmp_path / "data")
    service = RetrievalService(settings, store, embedder=HashingEmbedder())
    service.start(background=False)
    hits = service.search("money", 3, {"tags": {"$in": ["finance", "math"]}})
    tool_id, score, parts = hits[0]
    assert tool_id == "convert_currency" and score > 0 and set(parts) == {"bm25", "dense"}
    assert {h[0] for h in hits} == {"convert_currency", "calculate_triangle_area"}


def test_rerank_adds_idf_weighted_word_match_over_the_top_hits() -> None:
    """The second stage (off by default): each query stem a candidate's text uses, weighted by
    ``log(1 + n / df)`` over the ``n`` candidates, a name word counting double; chat words and
    stopwords don't count."""
    from toolrun.retrieval.rerank import RERANK, Rerank, query_terms

    radius = {"properties": {"radius": {"description": "Its radius."}}}
    idx = ToolIndex(HashingEmbedder())
    idx.upsert_many(
        [
            Entry("area", document_text("circle_area", "Area of a circle.", radius)),
            Entry("rim", document_text("circle_perimeter", "Length around a circle.", radius)),
            Entry("mail", document_text("send_email", "Send an email message.")),
        ]
    )
    query = "I need the area of a circle"
    assert query_terms(query) == ["area", "circl"]
    assert idx.rerank is None
    plain = {h.tool_id: h for h in idx.search(query, 3)}
    assert all(set(h.parts) == {"bm25", "dense"} for h in plain.values())
    hits = {h.tool_id: h for h in idx.search(query, 3, rerank=Rerank(1.0, 1.0))}
    best = 2 * np.log(4)  # two query words, three candidates
    expected = {
        "area": (2 * np.log(4) + 2 * np.log(2.5), np.log(4) + np.log(2.5)),
        "rim": (2 * np.log(2.5), np.log(2.5)),
        "mail": (0.0, 0.0),
    }
    for tool_id, (match, name) in expected.items():
        hit = hits[tool_id]
        assert hit.parts["match"] == pytest.approx(match / best, abs=1e-6)
        assert hit.parts["name"] == pytest.approx(name / best, abs=1e-6)
        assert hit.score == pytest.approx(plain[tool_id].score + (match + name) / best, abs=1e-5)
    assert idx.search(query, 1, rerank=RERANK)[0].tool_id == "area"
    assert "match" not in idx.search(query, 1, mode="bm25", rerank=RERANK)[0].parts
    idx.remove("area")
    assert idx.names[idx.slots["rim"]] == frozenset({"circl", "perimet"})
    assert None in idx.names  # the freed slot
    on = ToolIndex(HashingEmbedder(), rerank=RERANK)
    on.upsert("rim", document_text("circle_perimeter", "Length around a circle."))
    assert set(on.search("circle", 1)[0].parts) == {"bm25", "dense", "match", "name"}
    assert set(on.search("circle", 1, rerank=False)[0].parts) == {"bm25", "dense"}
