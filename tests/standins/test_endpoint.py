"""The scripted endpoint over real HTTP: the OpenAI wire format, and each hostile knob."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from core.standins.endpoint import ScriptedEndpoint, tokens

MODEL = "qwen3.6-35b-a3b"
ANSWER = "def slugify(text):\n    return text.lower()\n"


def body(stream: bool = False, usage: bool = False, model: str = MODEL) -> dict:
    data: dict = {"model": model, "messages": [{"role": "user", "content": "write slugify"}]}
    if stream:
        data["stream"] = True
    if usage:
        data["stream_options"] = {"include_usage": True}
    return data


def events(response: httpx.Response) -> list[dict | str]:
    out: list[dict | str] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


@pytest.fixture
def endpoint() -> Iterator[ScriptedEndpoint]:
    with ScriptedEndpoint(lambda messages: ANSWER, model_id=MODEL) as ep:
        yield ep


def test_models_lists_its_model(endpoint: ScriptedEndpoint) -> None:
    assert endpoint.base_url.startswith("http://127.0.0.1:")
    response = httpx.get(f"{endpoint.base_url}/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == [MODEL]


def test_non_streaming_answer_with_usage(endpoint: ScriptedEndpoint) -> None:
    response = httpx.post(f"{endpoint.base_url}/chat/completions", json=body())
    data = response.json()
    assert data["model"] == MODEL
    assert data["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": len(tokens(ANSWER)),
                             "total_tokens": 2 + len(tokens(ANSWER))}


def test_streaming_token_by_token_with_usage_and_done(endpoint: ScriptedEndpoint) -> None:
    with httpx.stream("POST", f"{endpoint.base_url}/chat/completions",
                      json=body(stream=True, usage=True)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        got = events(response)
    assert got[-1] == "[DONE]"
    chunks = [e for e in got[:-1] if isinstance(e, dict)]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(c for c in contents if c) == ANSWER
    assert len([c for c in contents if c]) == len(tokens(ANSWER)) == 5
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(tokens(ANSWER))
    assert {c["model"] for c in chunks} == {MODEL}


def test_streaming_without_include_usage_sends_no_usage(endpoint: ScriptedEndpoint) -> None:
    with httpx.stream("POST", f"{endpoint.base_url}/chat/completions",
                      json=body(stream=True)) as response:
        got = events(response)
    assert got[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "usage" in e for e in got)


def test_token_delay_paces_the_stream(endpoint: ScriptedEndpoint) -> None:
    endpoint.token_delay = 0.05
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{endpoint.base_url}/chat/completions",
                      json=body(stream=True)) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == len(tokens(ANSWER))
    assert arrivals[-1] >= 0.05 * len(arrivals)
    assert arrivals[0] < arrivals[-1] - 0.05 * (len(arrivals) - 2)


def test_answer_model_swaps_the_model_it_claims(endpoint: ScriptedEndpoint) -> None:
    endpoint.answer_model = "claude-sonnet-4-6"
    plain = httpx.post(f"{endpoint.base_url}/chat/completions", json=body()).json()
    assert plain["model"] == "claude-sonnet-4-6"
    with httpx.stream("POST", f"{endpoint.base_url}/chat/completions",
                      json=body(stream=True)) as response:
        models = {e["model"] for e in events(response) if isinstance(e, dict)}
    assert models == {"claude-sonnet-4-6"}
    listed = httpx.get(f"{endpoint.base_url}/models").json()
    assert [m["id"] for m in listed["data"]] == [MODEL]


def test_an_unknown_model_is_404_like_vllm(endpoint: ScriptedEndpoint) -> None:
    response = httpx.post(f"{endpoint.base_url}/chat/completions", json=body(model="gpt-4o"))
    assert response.status_code == 404
    assert "gpt-4o" in response.json()["error"]["message"]


def test_api_key_required_and_accepted() -> None:
    key = secrets.token_hex(12)
    with ScriptedEndpoint(api_key=key) as ep:
        url = f"{ep.base_url}/models"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(url, headers={"authorization": f"Bearer {key}"}).status_code == 200
        assert ep.received[-1].authorization == f"Bearer {key}"


def test_fail_status_echoes_the_url_it_was_called_on(endpoint: ScriptedEndpoint) -> None:
    endpoint.fail_status = 500
    response = httpx.post(f"{endpoint.base_url}/chat/completions", json=body())
    assert response.status_code == 500
    assert f"127.0.0.1:{endpoint.port}" in response.json()["error"]["message"]


def test_garbage_is_a_200_that_is_not_json(endpoint: ScriptedEndpoint) -> None:
    endpoint.garbage = True
    response = httpx.get(f"{endpoint.base_url}/models")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_hang_never_answers_and_stop_is_still_prompt() -> None:
    ep = ScriptedEndpoint().start()
    ep.hang = True
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{ep.base_url}/models", timeout=0.3)
    started = time.monotonic()
    ep.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{ep.base_url}/models", timeout=1)


def test_stop_is_prompt_mid_stream() -> None:
    ep = ScriptedEndpoint(lambda m: "word " * 200, token_delay=0.05).start()
    with httpx.stream("POST", f"{ep.base_url}/chat/completions",
                      json=body(stream=True)) as response:
        next(response.iter_lines())
        started = time.monotonic()
        ep.stop()
        assert time.monotonic() - started < 1.0
