"""HTTP endpoints through one shared ``httpx.AsyncClient``.

``{name}`` placeholders in the URL are filled from the arguments (URL-encoded, one path
segment each); the other arguments become the JSON body, or query parameters for GET and
DELETE. Credentials come from ``Settings.secrets`` at call time and are redacted from
everything the call returns. Redirects are not followed, so a credential never travels to
another host.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from toolrun.config import Settings
from toolrun.errors import NotExecutable
from toolrun.execution.runtimes.base import (
    RuntimeRunner,
    TemplateError,
    fill_template,
    render_value,
)
from toolrun.registry.runtimes import HttpAuth, HttpRuntime
from toolrun.registry.tool import Tool
from toolrun.response import AudioItem, BinaryItem, ImageItem, Response, to_jsonable

MAX_RESPONSE_BYTES = 10 << 20
ERROR_EXCERPT_CHARS = 500
_QUERY_METHODS = ("GET", "DELETE")


class _TooLarge(Exception):
    pass


def url_component(value: Any) -> str:
    """One path segment or query value: every reserved character encoded, ``..`` included."""
    text = quote(render_value(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def query_params(arguments: dict[str, Any]) -> dict[str, str | list[str]]:
    """Scalars as text (``true``, ``3``), lists repeated, objects as JSON; None is left out."""
    params: dict[str, str | list[str]] = {}
    for key, value in arguments.items():
        if value is None:
            continue
        params[key] = (
            [render_value(v) for v in value] if isinstance(value, list) else render_value(value)
        )
    return params


class _Redactor:
    """Replaces every known form of the secrets in text and JSON values with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        forms = set()
        for secret in secrets:
            forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
            forms.add(json.dumps(secret)[1:-1])
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, "***")
        return text

    def value(self, value: Any) -> Any:
        if not self.forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


class HttpRunner(RuntimeRunner):
    """Runs ``http`` runtimes; see the module docstring. Pass ``client`` to share or mock one."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.settings = settings
        self.max_response_bytes = max_response_bytes
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    def _secret(self, name: str) -> str | None:
        secrets = self.settings.secrets
        value = secrets.get(name)
        if value is None:  # environment names arrive lower-cased
            value = next((v for k, v in secrets.items() if k.lower() == name.lower()), None)
        return (value.get_secret_value() or None) if value is not None else None

    def _host_refusal(self, name: str, url: str) -> str | None:
        """Why the secret ``name`` may not go to ``url`` (None: it may).

        A tool definition names a secret but must not choose where it is sent, or anyone who
        can register a tool could send every credential to a host of their own: each secret
        goes only to the hosts the operator lists in ``TOOLRUN_SECRET_HOSTS__<NAME>``."""
        hosts = self.settings.secret_hosts
        allowed = hosts.get(name)
        if allowed is None:
            allowed = next((v for k, v in hosts.items() if k.lower() == name.lower()), [])
        host = (urlsplit(url).hostname or "").lower()
        if host and host in {h.lower() for h in allowed}:
            return None
        env = f"TOOLRUN_SECRET_HOSTS__{name.upper()}"
        return (
            f"the secret {name!r} may not be sent to {host or url!r}: "
            f"list the host in {env} (a JSON list, e.g. '[\"{host}\"]')"
        )

    async def run(self, tool: Tool, arguments: dict[str, Any], timeout_s: float) -> Response:
        runtime = tool.runtime
        if not isinstance(runtime, HttpRuntime):
            raise NotExecutable(f"tool {tool.id!r} does not have an http runtime")
        try:
            url, used = fill_template(runtime.url, arguments, url_component)
        except TemplateError as exc:
            return Response.error(f"cannot build the URL: {exc}")
        rest = {k: v for k, v in arguments.items() if k not in used}
        headers = dict(runtime.headers)
        params: dict[str, str | list[str]] = {}
        secrets: list[str] = []
        if runtime.auth is not None:
            secret = self._secret(runtime.auth.secret)
            if secret is None:
                env = f"TOOLRUN_SECRETS__{runtime.auth.secret.upper()}"
                return Response.error(
                    f"tool {tool.id} needs the secret {runtime.auth.secret!r}: set {env}"
                )
            refusal = self._host_refusal(runtime.auth.secret, url)
            if refusal is not None:
                return Response.error(f"tool {tool.id}: {refusal}")
            secrets.append(secret)
            _apply_auth(runtime.auth, secret, headers, params)
        body: dict[str, Any] | None = rest
        if runtime.method in _QUERY_METHODS:
            params = {**query_params(rest), **params}
            body = None
        redact = _Redactor(secrets)
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                request = self.client.build_request(
                    runtime.method,
                    url,
                    params=params,
                    json=body,
                    headers=headers,
                    timeout=timeout_s,
                )
                response = await self.client.send(request, stream=True)
                try:
                    content = await self._read(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, TimeoutError) and not deadline.expired():
                raise
            return Response.timed_out(timeout_s)
        except _TooLarge:
            return Response.error(
                f"the response of {runtime.method} {_where(url)} is larger than "
                f"{self.max_response_bytes} bytes"
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return Response.error(
                redact.text(f"{runtime.method} {_where(url)} failed: {type(exc).__name__}: {exc}")
            )
        return _to_response(runtime.method, url, response, content, redact)

    async def _read(self, response: httpx.Response) -> bytes:
        chunks = bytearray()
        async for chunk in response.aiter_bytes():
            chunks += chunk
            if len(chunks) > self.max_response_bytes:
                raise _TooLarge
        return bytes(chunks)


def _apply_auth(
    auth: HttpAuth, secret: str, headers: dict[str, str], params: dict[str, str | list[str]]
) -> None:
    if auth.scheme == "bearer":
        headers[auth.name] = f"Bearer {secret}"
    elif auth.scheme == "header":
        headers[auth.name] = secret
    else:
        params[auth.name] = secret


def _where(url: str) -> str:
    """The URL without its query string (which may hold a credential)."""
    return url.split("?", 1)[0]


def _to_response(
    method: str, url: str, response: httpx.Response, content: bytes, redact: _Redactor
) -> Response:
    mime = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not response.is_success:
        excerpt = content.decode(response.encoding or "utf-8", errors="replace").strip()
        excerpt = redact.text(excerpt)
        if len(excerpt) > ERROR_EXCERPT_CHARS:
            excerpt = excerpt[:ERROR_EXCERPT_CHARS] + "..."
        status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        message = f"{status} from {method} {_where(url)}"
        return Response.error(f"{message}: {excerpt}" if excerpt else message)
    if not content:
        return Response.from_value(None)
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return Response.from_value(redact.value(to_jsonable(json.loads(content))))
        except ValueError:
            pass
    elif mime.startswith("image/"):
        return Response.of(ImageItem.from_bytes(content, mime))
    elif mime.startswith("audio/"):
        return Response.of(AudioItem(base64.b64encode(content).decode("ascii"), mime))
    try:
        text = content.decode(response.encoding or "utf-8", errors="strict")
    except (UnicodeDecodeError, LookupError):
        return Response.of(BinaryItem.from_bytes(content, mime or "application/octet-stream"))
    return Response.from_value(redact.text(text))
