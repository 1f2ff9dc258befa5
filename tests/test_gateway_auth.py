"""API keys, the per-key rate limit and the request log: 401 and 429 in OpenAI's shape, logs
readable over the API with paging, and no secret in what is stored (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from tests.gateway_helpers import FIXED, TOOLS, USER, Served, served_gateway, text_reply
from toolrun.gateway.auth import KeyRing, RateLimiter, key_id
from toolrun.gateway.errors import AuthenticationFailed, RateLimited
from toolrun.gateway.log import LogEntry, RequestLog, redact
from toolrun.storage.engine import make_engine, upgrade
from toolrun.storage.tables import gateway_log

KEY = "sk-test-0123456789abcdefghij"
OTHER = "sk-other-0123456789abcdefgh"
UPSTREAM_SECRET = "upstream-secret-value-42"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("gateway-auth")
    settings = {"gateway_api_keys": [KEY, OTHER], "secrets": {"UP": UPSTREAM_SECRET}}
    with served_gateway(tmp, **settings) as served:
        yield served


def client_for(gw: Served, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)


@pytest.mark.e2e
def test_a_key_is_required_and_checked(gw: Served) -> None:
    answer = httpx.post(f"{gw.v1}/chat/completions", json={"model": "emu", "messages": USER})
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    with (
        client_for(gw, "sk-wrong-key-000000000") as wrong,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        wrong.models.list()
    assert raised.value.code == "invalid_api_key"
    assert "sk-wrong-key" not in str(raised.value.body)  # never echoed whole
    with client_for(gw, KEY) as right:
        assert next(m.id for m in right.models.list()) == "emu"
    assert gw.llm.requests == []  # nothing reached the upstream


@pytest.mark.e2e
def test_logs_are_stored_redacted_and_readable_per_key(gw: Served) -> None:
    gw.llm.script(text_reply(FIXED), text_reply(f"your key {KEY} is safe"), text_reply("hi"))
    with client_for(gw, KEY) as client:
        made = client.chat.completions.create(
            model="emu",
            messages=[{"role": "user", "content": f"my key is {KEY}, and {UPSTREAM_SECRET}"}],
            tools=TOOLS,
            extra_body={"api_key": "sk-live-abcdefghijklmnopqrstu", "password": "hunter2"},
        )
        client.chat.completions.create(model="emu", messages=USER)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=USER)
    with client_for(gw, OTHER) as other:
        other.chat.completions.create(model="emu", messages=USER)
    headers = {"Authorization": f"Bearer {KEY}"}
    page = httpx.get(f"{gw.v1}/logs", params={"limit": 2}, headers=headers).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [e["status"] for e in page["data"]] == [404, 200]
    rest = httpx.get(
        f"{gw.v1}/logs", params={"before": page["next_before"]}, headers=headers
    ).json()
    assert [e["request_id"] for e in rest["data"]] == [made.id] and not rest["has_more"]
    entry = rest["data"][0]
    assert entry["key_id"] == key_id(KEY) and entry["model"] == "emu" and entry["mode"] == "emulate"
    assert entry["rounds"] == 1 and entry["duration_ms"] > 0
    assert entry["response"]["choices"][0]["finish_reason"] == "tool_calls"
    request = entry["request"]
    assert request["api_key"] == "[REDACTED]" and request["password"] == "[REDACTED]"
    assert request["messages"][0]["content"] == "my key is [REDACTED], and [REDACTED]"
    one = httpx.get(f"{gw.v1}/logs/{made.id}", headers=headers).json()
    assert one["request_id"] == made.id
    theirs = httpx.get(f"{gw.v1}/logs/{made.id}", headers={"Authorization": f"Bearer {OTHER}"})
    assert theirs.status_code == 404
    assert httpx.get(f"{gw.v1}/logs").status_code == 401
    assert httpx.get(f"{gw.v1}/logs", params={"limit": 0}, headers=headers).status_code == 400
    stored = _all_rows(gw)
    for secret in (KEY, OTHER, UPSTREAM_SECRET, "sk-live-abcdefghijklmnopqrstu", "hunter2"):
        assert secret not in stored


def _all_rows(gw: Served) -> str:
    """Every stored log row as text (the server's SQLite store, read directly)."""
    engine = make_engine(f"sqlite:///{gw.data_dir / 'toolrun.db'}")
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(gateway_log))]
    engine.dispose()
    assert rows
    return json.dumps(rows, default=str)


@pytest.mark.e2e
def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with served_gateway(tmp_path, gateway_api_keys=[KEY], gateway_rate_limit=2) as gw:
        gw.llm.script(text_reply("a"), text_reply("b"))
        with client_for(gw, KEY) as client:
            for _ in range(2):
                client.chat.completions.create(model="emu", messages=USER)
            with pytest.raises(openai.RateLimitError) as raised:
                client.chat.completions.create(model="emu", messages=USER)
        assert raised.value.code == "rate_limit_exceeded"
        assert int(raised.value.response.headers["retry-after"]) == 30
        assert len(gw.llm.requests) == 2


# -- units ---------------------------------------------------------------------------------------


def test_key_ring() -> None:
    ring = KeyRing([KEY])
    assert ring.check(f"Bearer {KEY}") == key_id(KEY) and KEY not in key_id(KEY)
    for header in (None, "", "Basic abc", f"Bearer {KEY}x", "Bearer "):
        with pytest.raises(AuthenticationFailed):
            ring.check(header)
    assert KeyRing([]).check(None) == "anonymous"


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        limiter.take("k")
    with pytest.raises(RateLimited) as raised:
        limiter.take("k")
    assert raised.value.headers["Retry-After"] == "1"
    limiter.take("other")  # buckets are per key
    now[0] += 1.0
    limiter.take("k")
    RateLimiter(None).take("k")


def test_redaction() -> None:
    value: Any = {
        "Authorization": "Bearer abcdefghijkl",
        "nested": [{"x_api_key": "v", "text": "use sk-abcdefghijklmnopqrst now"}],
        "max_tokens": 5,
        "prompt_tokens": 3,
        "note": "the word secret alone is fine, KNOWN-SECRET-1 is not",
    }
    assert redact(value, ["KNOWN-SECRET-1"]) == {
        "Authorization": "[REDACTED]",
        "nested": [{"x_api_key": "[REDACTED]", "text": "use [REDACTED] now"}],
        "max_tokens": 5,
        "prompt_tokens": 3,
        "note": "the word secret alone is fine, [REDACTED] is not",
    }


def test_the_log_store_pages_and_caps_on_every_backend(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    store = RequestLog(engine, secrets=["s3cr3t-value"], body_bytes=1024)
    try:
        for i in range(5):
            store.add(
                LogEntry(f"chatcmpl-{i}", "key_a" if i % 2 else "key_b", "chat.completions",
                         200, 1.5, request={"i": i, "token": "s3cr3t-value"},
                         response={"big": "x" * 5000})
            )  # fmt: skip
        page, more = store.list(key_id=None, limit=3)
        assert [e["request_id"] for e in page] == ["chatcmpl-4", "chatcmpl-3", "chatcmpl-2"]
        assert more
        rest, more = store.list(key_id=None, limit=3, before=page[-1]["id"])
        assert [e["request_id"] for e in rest] == ["chatcmpl-1", "chatcmpl-0"] and not more
        mine, _ = store.list(key_id="key_a")
        assert {e["request_id"] for e in mine} == {"chatcmpl-1", "chatcmpl-3"}
        got = store.get("chatcmpl-1", key_id="key_a")
        assert got is not None and got["request"] == {"i": 1, "token": "[REDACTED]"}
        assert got["response"]["truncated"] is True and got["response"]["bytes"] > 5000
        assert store.get("chatcmpl-1", key_id="key_b") is None
    finally:
        store.close()
        engine.dispose()


@pytest.mark.e2e
def test_the_gateway_command_serves_the_v1_routes_alone(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.llm_server import ScriptedLLMServer, calls
    from tests.servers import free_port

    with ScriptedLLMServer() as llm:
        llm.script(calls("get_weather", {"city": "Paris"}))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLRUN_")}
        env.update(TOOLRUN_LLM_BASE_URL=llm.url, TOOLRUN_LLM_MODEL="tiny-model")
        args = [sys.executable, "-m", "toolrun.cli.main", "gateway", "--api-key", KEY]
        args += ["--port", str(port), "--data-dir", str(tmp_path / "data")]
        args += ["--log-level", "warning", "--workers", "1"]
        process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.05)
            with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as client:
                assert [m.id for m in client.models.list()] == ["tiny-model"]
                reply = client.chat.completions.create(
                    model="tiny-model", messages=USER, tools=TOOLS
                )
            assert reply.choices[0].message.tool_calls
            assert llm.requests[0].json()["tools"] == TOOLS  # auto mode tries native first
            assert httpx.get(f"{url}/v1/models").status_code == 401
            assert httpx.get(f"{url}/tools").status_code == 404  # only the gateway
        finally:
            process.terminate()
            process.wait(timeout=15)
