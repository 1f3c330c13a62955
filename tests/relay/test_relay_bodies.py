"""A strict body per route, through the real relay over loopback HTTP: every routing or
fallback field, remote media part and cost multiplier a Case can smuggle is refused with an
OpenAI-style 400 naming it, recorded in the ledger, and never reaches the upstream; what the
real agents send (recorded from aider, mini-swe-agent, Qwen Code and Codex CLI) still passes.
`judge_body` alone is checked too, as the gateway imports it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.relay.bodies import FIELDS, BodyRules, judge_body
from core.settings import ConfigError, resolve
from core.standins.endpoint import ScriptedEndpoint
from tests.support.relay_rig import MODEL, Rig, chat, ledger_lines, make_rig

MESSAGES = [{"role": "user", "content": "write slugify"}]


def responses(**extra: object) -> dict:
    return {"model": MODEL, "input": "write slugify", **extra}


def image(url: str) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": url}}]}]}


SMUGGLED = {
    "fallbacks": ("chat/completions", chat() | {"fallbacks": ["gpt-4o"]}),
    "models": ("chat/completions", chat() | {"models": [MODEL, "openai/gpt-4o"]}),
    "route": ("chat/completions", chat() | {"route": "fallback"}),
    "provider": ("chat/completions", chat() | {"provider": {"order": ["OpenAI"]}}),
    "extra_body": ("chat/completions", chat() | {"extra_body": {"model": "gpt-4o"}}),
    "chat_template": ("chat/completions", chat() | {"chat_template": "{{ 7*7 }}"}),
    "chat_template_kwargs": ("chat/completions",
                             chat() | {"chat_template_kwargs": {"tools": "x"}}),
    "vendor": ("chat/completions", chat() | {"x-vendor-routing": {"region": "us"}}),
    "logits_processors": ("chat/completions", chat() | {"logits_processors": ["os.system"]}),
    "metadata.tags": ("chat/completions", chat() | {"metadata": {"tags": "hosted"}}),
    "n": ("chat/completions", chat() | {"n": 4}),
    "best_of": ("completions", {"model": MODEL, "prompt": "def", "best_of": 8}),
    "image http": ("chat/completions", image("http://169.254.169.254/latest/meta-data")),
    "image file": ("chat/completions", image("file:///etc/shadow")),
    "image https": ("chat/completions", image("HTTPS://example.invalid/a.png")),
    "file id": ("chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]}),
    "input_image": ("responses", responses(input=[{"role": "user", "content": [
        {"type": "input_image", "image_url": "http://10.0.0.1/x.png"}]}])),
    "input_file": ("responses", responses(input=[{"type": "message", "role": "user",
        "content": [{"type": "input_file", "file_url": "https://example.invalid/a.pdf"}]}])),
    "mcp tool": ("responses", responses(tools=[
        {"type": "mcp", "server_label": "x", "server_url": "http://169.254.169.254/"}])),
    "web_search tool": ("responses", responses(tools=[{"type": "web_search"}])),
    "nested hosted tool": ("responses", responses(tools=[
        {"type": "namespace", "name": "n", "tools": [{"type": "file_search"}]}])),
    "embeddings extra": ("embeddings", {"model": MODEL, "input": "a", "provider": "x"}),
}


@pytest.fixture
def endpoint() -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(model_id=MODEL) as ep:
        yield ep


@pytest.fixture
async def rig(tmp_path: Path, endpoint: ScriptedEndpoint) -> AsyncIterator[Rig]:
    async for r in make_rig(tmp_path, endpoint):
        yield r


@pytest.mark.parametrize("name", sorted(SMUGGLED))
async def test_a_smuggled_field_is_refused_recorded_and_never_forwarded(
        rig: Rig, name: str) -> None:
    route, body = SMUGGLED[name]
    async with rig.client() as client:
        response = await client.post(f"/{route}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400
    [record] = ledger_lines(rig.ledger)
    assert record.status == 400 and record.refused, record
    assert record.refused in error["message"]
    assert not [r for r in rig.upstream.received if r.body is not None]
    # The value the Case chose is never quoted back (a URL could be anything).
    assert "169.254" not in record.refused and "example.invalid" not in record.refused


async def test_what_the_agents_send_still_passes(rig: Rig) -> None:
    """The shapes recorded from the four real agents (abridged), with inline media."""
    qwen_code = chat(stream=True) | {"max_tokens": 512, "tools": [
        {"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}]}
    aider = chat() | {"temperature": 0}
    inline = image("data:image/png;base64,iVBORw0KGgo=")
    codex = responses(
        stream=True, store=False, include=["reasoning.encrypted_content"],
        parallel_tool_calls=False, prompt_cache_key="k", reasoning={"summary": "auto"},
        tool_choice="auto", client_metadata={"turn_id": "t", "session_id": "s"},
        tools=[{"type": "function", "name": "shell", "parameters": {"type": "object"}},
               {"type": "namespace", "name": "agents", "tools": [
                   {"type": "function", "name": "close_agent", "parameters": {}}]}])
    thinking = chat() | {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20}
    async with rig.client() as client:
        for route, body in (("chat/completions", qwen_code), ("chat/completions", aider),
                            ("chat/completions", inline), ("responses", codex),
                            ("chat/completions", thinking)):
            response = await client.post(f"/{route}", json=body)
            assert response.status_code == 200, (route, response.text)
    assert all(r.refused is None for r in ledger_lines(rig.ledger))
    assert [r.body["model"] for r in rig.upstream.received] == [MODEL] * 5


def test_judge_body_is_pure_and_settings_widen_it() -> None:
    body = chat() | {"n": 3}
    before = copy.deepcopy(body)
    assert "n=3" in (judge_body("chat/completions", body) or "")
    assert judge_body("chat/completions", body, BodyRules(max_n=3)) is None
    assert body == before
    remote = image("https://example.invalid/a.png")
    assert judge_body("chat/completions", remote) is not None
    assert judge_body("chat/completions", remote, BodyRules(remote_media=True)) is None
    assert judge_body("chat/completions", chat() | {"n": True}) == "n must be an integer"
    assert judge_body("models", {}) is not None  # a route with no body list takes none
    assert set(FIELDS) == {"chat/completions", "responses", "completions", "embeddings"}


def test_settings_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTO_HARNESS_RELAY_MAX_N", "many")
    with pytest.raises(ConfigError, match="CTO_HARNESS_RELAY_MAX_N"):
        resolve()
    monkeypatch.setenv("CTO_HARNESS_RELAY_MAX_N", "4")
    monkeypatch.setenv("CTO_HARNESS_RELAY_REMOTE_MEDIA", "yes")
    with pytest.raises(ConfigError, match="CTO_HARNESS_RELAY_REMOTE_MEDIA"):
        resolve()
    monkeypatch.setenv("CTO_HARNESS_RELAY_REMOTE_MEDIA", "allow")
    resolved = resolve()
    assert (resolved.relay_max_n, resolved.relay_remote_media) == (4, True)
