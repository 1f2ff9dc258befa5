"""The README's gateway section cannot go stale: its Python snippets run against a real server
whose upstream is a scripted model without tool support, and print what the README says."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_helpers import text_reply
from tests.llm_server import ScriptedLLMServer, error
from tests.test_client import threaded_server
from toolrun.config import Settings

pytestmark = pytest.mark.e2e
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
START = README.index("\n## OpenAI-compatible gateway\n")
SECTION = README[START : README.index("\n## ", START + 1)]
SNIPPETS = re.findall(r"```python\n(.*?)```", SECTION, flags=re.S)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ScriptedLLMServer]]:
    with ScriptedLLMServer() as llm:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("gateway-readme") / "data",
            demo=True,
            workers=1,
            retrieval_embedder="none",
            llm_base_url=llm.url,
            llm_model="qwen2.5:7b",
            llm_max_retries=0,
            gateway_api_keys=["sk-local"],
        )
        with threaded_server(settings) as url:
            yield url, llm


def run(snippet: str, url: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = snippet.replace("http://localhost:8000", url)
        exec(compile(code, "README", "exec"), {"__name__": "readme"})
    return out.getvalue()


def printed_after(snippet: str) -> str:
    """What the README says ``snippet`` prints: ``prints `a` then `b``` after its block."""
    rest = SECTION[SECTION.index(snippet) + len(snippet) + 3 :]
    found = re.match(r"\s*prints `(.*?)`(?: then `(.*?)`)?", rest, flags=re.S)
    assert found is not None, rest[:80]
    return " ".join(" ".join(p for p in found.groups() if p is not None).split())


def test_the_section_has_its_snippets() -> None:
    assert len(SNIPPETS) == 3
    assert "```json" not in SECTION  # test_readme.py reads the README's last json block


def test_the_snippets_print_what_the_readme_shows(
    served: tuple[str, ScriptedLLMServer],
) -> None:
    url, llm = served
    llm.script(
        error(400, "qwen2.5:7b does not support tools"),  # auto mode: emulate from now on
        text_reply('Sure.\n```python\nget_weather(city="Paris")\n```'),
        text_reply('```python\nget_weather(city="Paris")\n```'),
        text_reply('```python\nweather_lookup(city="Delhi")\n```'),
        text_reply("It is 28 °C in Delhi."),
    )
    for snippet in SNIPPETS:
        assert " ".join(run(snippet, url).split()) == printed_after(snippet)
    assert llm.pending == 0
    assert "tools" in llm.requests[0].json() and "tools" not in llm.requests[1].json()
