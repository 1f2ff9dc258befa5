"""The README's "Python SDK" and "Messages" sections cannot go stale: each of their Python
snippets runs here (the SDK's against a real server, uvicorn in a thread) and prints what the
README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_client import demo_settings, threaded_server

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()

pytestmark = pytest.mark.e2e


def section(title: str) -> str:
    """From the heading ``## title`` to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n") + 1
    end = README.find("\n## ", start)
    return README[start : end if end >= 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


SDK = section("Python SDK")
MESSAGES = section("Messages")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with threaded_server(demo_settings(tmp_path_factory.mktemp("readme-sdk") / "data")) as url:
        yield url


def run(snippet: str, server_url: str | None = None) -> list[str]:
    if server_url is not None:
        snippet = snippet.replace("http://127.0.0.1:8000", server_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README", "exec"), {"__name__": "readme"})
    return out.getvalue().splitlines()


def test_the_sections_have_their_snippets() -> None:
    assert len(blocks(SDK, "python")) == 3 and len(blocks(MESSAGES, "python")) == 1
    assert "```json" not in SDK + MESSAGES  # test_readme.py reads the last json block


def test_sdk_snippet_prints_what_the_readme_shows(server_url: str) -> None:
    snippet = blocks(SDK, "python")[0]
    shown = blocks(SDK, "text")[0].splitlines()
    assert run(snippet, server_url) == shown


def test_async_snippet(server_url: str) -> None:
    snippet = blocks(SDK, "python")[1]
    assert "AsyncClient" in snippet
    lines = run(snippet, server_url)
    assert lines[-1].endswith(" succeeded") and lines[-1].split()[0].isdigit()


def test_local_snippet() -> None:
    snippet = blocks(SDK, "python")[2]
    assert "Client.local" in snippet
    assert run(snippet) == ["['math_add'] 5", "{'result': 42}"]
    assert "prints `['math_add'] 5` then `{'result': 42}`" in SDK


def test_messages_snippet_prints_what_the_readme_shows() -> None:
    snippet = blocks(MESSAGES, "python")[0]
    shown = blocks(MESSAGES, "text")[0].splitlines()
    assert run(snippet) == shown
