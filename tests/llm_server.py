"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests of LLM clients.

It answers each request with the next :class:`Reply` of its script (status, JSON or raw body,
headers, a delay, an SSE stream, or a dropped connection) and records every request
(:class:`Recorded`: method, path, headers, body). A real server in a thread, so the client
under test makes real HTTP calls; nothing leaves loopback::

    with ScriptedLLMServer() as llm:
        llm.script(Reply(status=503), calls("weather", {"city": "Paris"}))
        client = LLMClient(llm.url, "m")
        ...
        assert llm.requests[1].json()["tools"]

When the script runs out the server answers 418 saying so (not retried by clients, so a test
fails instead of passing by luck).
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[["Recorded"], "Reply"]


@dataclass
class Reply:
    """One scripted answer. ``text`` (str or bytes) wins over ``json``; ``stream`` sends its
    chunks as they are, one write each (see :func:`sse`), then closes the connection;
    ``drop`` closes the connection without answering; ``delay_s`` waits first."""

    status: int = 200
    json: Any = None
    text: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stream: list[str | bytes] | None = None
    chunk_delay_s: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Recorded:
    """A request as the server received it; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# -- OpenAI chat-completion bodies ------------------------------------------------------------


def tool_call(
    name: str, arguments: Mapping[str, Any] | str, *, id: str = "call_1"
) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    return {"id": id, "type": "function", "function": {"name": name, "arguments": text}}


def completion(
    content: str | None = None,
    *,
    tool_calls: Iterable[Mapping[str, Any]] = (),
    model: str = "scripted-model",
    finish_reason: str | None = None,
) -> dict[str, Any]:
    calls = [dict(c) for c in tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def calls(name: str, arguments: Mapping[str, Any] | str, **reply: Any) -> Reply:
    """A 200 whose assistant message calls ``name`` with ``arguments``."""
    return Reply(json=completion(tool_calls=[tool_call(name, arguments)]), **reply)


def says(content: str, **reply: Any) -> Reply:
    """A 200 whose assistant message is the text ``content``."""
    return Reply(json=completion(content), **reply)


def error(status: int, message: str, **reply: Any) -> Reply:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    return Reply(status=status, json=body, **reply)


def sse(*events: Mapping[str, Any] | str, done: bool = True) -> list[str | bytes]:
    """Server-sent events: each object as a ``data:`` line, then ``data: [DONE]``."""
    chunks: list[str | bytes] = [
        f"data: {e if isinstance(e, str) else json.dumps(dict(e))}\n\n" for e in events
    ]
    return [*chunks, "data: [DONE]\n\n"] if done else chunks


# -- the server -------------------------------------------------------------------------------


class ScriptedLLMServer:
    """A threaded HTTP server replaying :meth:`script`; ``responder`` answers when the script
    is empty (default: 418 "no scripted reply left")."""

    def __init__(self, responder: Responder | None = None, *, prefix: str = "/v1") -> None:
        self.prefix = prefix
        self.responder = responder
        self.requests: list[Recorded] = []
        self._script: deque[Reply | Responder] = deque()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL a client is configured with (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def script(self, *replies: Reply | Responder) -> ScriptedLLMServer:
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Recorded]:
        """Block until ``count`` requests have arrived; the requests so far."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"{len(self.requests)} request(s) after {timeout_s}s")
            return list(self.requests)

    def start(self) -> ScriptedLLMServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers in a delay
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            self._lock.notify_all()
            item = self._script.popleft() if self._script else self.responder
        if item is None:
            n = len(self.requests)
            return error(418, f"scripted server: no scripted reply left for request {n}")
        return item if isinstance(item, Reply) else item(recorded)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server._next(Recorded(self.command, self.path, headers, body))
                if reply.delay_s and server._stopping.wait(reply.delay_s):
                    self.close_connection = True
                    return
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    self._answer(reply)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout, ...)

            def _answer(self, reply: Reply) -> None:
                self.send_response(reply.status)
                names = {k.lower() for k in reply.headers}
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.stream is not None:
                    if "content-type" not in names:
                        self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    for chunk in reply.stream:
                        if reply.chunk_delay_s and server._stopping.wait(reply.chunk_delay_s):
                            return
                        self.wfile.write(chunk.encode() if isinstance(chunk, str) else chunk)
                        self.wfile.flush()
                    return
                if reply.text is not None:
                    raw = reply.text.encode() if isinstance(reply.text, str) else reply.text
                    kind = "text/plain; charset=utf-8"
                else:
                    raw = json.dumps(reply.json).encode() if reply.json is not None else b""
                    kind = "application/json"
                if "content-type" not in names and raw:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return Handler
