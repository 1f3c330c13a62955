"""What a request body may carry on each route: the fields the OpenAI API defines for it,
the few vLLM extras agents really send, and nothing else.

Why strict, and not "forward what the upstream ignores": users put a router (LiteLLM,
OpenRouter, a vendor gateway) in front of vLLM, and a router *acts* on fields a plain server
ignores — `fallbacks`, `models`, `route`, `provider.order`, `extra_body`, metadata tags —
reaching a hosted model the guard would only notice after the fact, if at all. And a
remote `image_url`/`file` part makes the upstream fetch a URL the Case chose (an SSRF from
the upstream's network: `http://169.254.169.254/…`, `file://`). So each route has an
allowlist of top-level fields; a field not on it is refused with an OpenAI-style 400 naming
it, and recorded. Nested rules where a defined field can still route or fetch:
`chat_template_kwargs` (thinking switches only), content parts (inline `data:` only, unless
the user allows remote media), tools (the function kinds an agent defines itself; the
hosted kinds — `mcp`'s server URL, web or file search — refused) and `n`/`best_of`
(bounded: each is the upstream's cost times N).

`judge_body(route, body, rules)` is a pure function of its arguments, importable without
the relay: the gateway (core/relay/gateway*.py) applies the same rules at its own door.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.relay.rules import clip

# -- the fields each route forwards ----------------------------------------------------
# From the OpenAI API reference (2025): chat completions, Responses, legacy completions,
# embeddings. Fields that make OpenAI's own servers do hosted work (web_search_options)
# are left out: an admitted local model has none to do, and a router may send them on.
_CHAT_OPENAI = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
    "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
})
_SAMPLING_EXTRAS = frozenset({
    # vLLM's (and SGLang's, llama.cpp's) sampling extras that agents send through
    # litellm's or their own settings: they shape the one answer, they route nothing.
    "top_k", "min_p", "repetition_penalty", "min_tokens", "stop_token_ids",
    "skip_special_tokens", "include_stop_str_in_output", "ignore_eos",
    "spaces_between_special_tokens",
    # Structured output, vLLM's spellings.
    "guided_json", "guided_regex", "guided_choice", "guided_grammar",
    "guided_whitespace_pattern", "structured_outputs",
})
_CHAT_VLLM = _SAMPLING_EXTRAS | {"chat_template_kwargs"}
_RESPONSES = frozenset({
    "model", "input", "instructions", "background", "conversation", "include",
    "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls",
    "previous_response_id", "prompt", "prompt_cache_key", "reasoning", "safety_identifier",
    "service_tier", "store", "stream", "stream_options", "temperature", "text",
    "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    "client_metadata",  # Codex CLI's: its session and turn ids, strings only
}) | _SAMPLING_EXTRAS
_COMPLETIONS = frozenset({
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
    "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
    "suffix", "temperature", "top_p", "user",
}) | _SAMPLING_EXTRAS
_EMBEDDINGS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})

FIELDS: dict[str, frozenset[str]] = {
    "chat/completions": _CHAT_OPENAI | _CHAT_VLLM,
    "responses": _RESPONSES,
    "completions": _COMPLETIONS,
    "embeddings": _EMBEDDINGS,
}
"""The top-level fields each body-taking route forwards (the README lists them)."""

ROUTING_FIELDS = frozenset({
    "fallbacks", "fallback", "models", "route", "provider", "extra_body", "extra_headers",
    "extra_query", "transforms", "plugins", "api_base", "base_url", "api_key",
    "custom_llm_provider", "model_list", "context_window_fallbacks",
    "content_policy_fallbacks", "mock_response", "user_config", "deployment_id",
    "chat_template", "add_generation_prompt", "continue_final_message", "documents",
    "mm_processor_kwargs", "logits_processors", "vllm_xargs", "kv_transfer_params",
    "request_id", "priority", "cache_salt", "tags",
})
"""Fields a router or server acts on to send the request elsewhere, or to change how the
prompt is built: named as such in the refusal (any unlisted field is refused too)."""

THINKING_KWARGS = frozenset({"enable_thinking", "thinking"})
"""What `chat_template_kwargs` may hold: Qwen3's and DeepSeek's thinking switches. Anything
else is an argument to the server's chat template, which a Case must not steer."""

LOCAL_TOOLS = frozenset({"function", "custom", "local_shell", "namespace"})
"""Tool kinds the agent runs itself. The hosted kinds (`mcp` with its server URL, web and
file search, computer use, code interpreter) would make a provider reach out on the
Case's behalf. (`namespace` is Codex CLI's group of its own function tools, judged
tool by tool.)"""

METADATA_ROUTING = frozenset({"tags", "model", "model_group", "fallbacks", "deployment"})
"""Keys of `metadata` a router reads to choose a deployment (LiteLLM's tag routing)."""

_MEDIA_PARTS: dict[str, tuple[str, ...]] = {
    # part type -> the keys under which it names what to fetch
    "image_url": ("image_url",),
    "video_url": ("video_url",),
    "audio_url": ("audio_url",),
    "file": ("file",),
    "input_image": ("image_url", "file_id"),
    "input_file": ("file_url", "file_id"),
}


@dataclass(frozen=True)
class BodyRules:
    """The user's settings the rules depend on."""

    max_n: int = 1
    """The most choices (`n`, `best_of`) one request may ask for: each is paid in full."""
    remote_media: bool = False
    """Whether image/file parts may name something to fetch (an http(s) URL, a file id)
    rather than carry it inline as `data:`."""


def judge_body(route: str, body: Mapping[str, Any], rules: BodyRules = BodyRules()) -> str | None:
    """None when `body` may be forwarded on `route` (a key of FIELDS); otherwise why not,
    naming the field and never quoting a value the Case chose."""
    allowed = FIELDS.get(route)
    if allowed is None:
        return f"/v1/{clip(route)} takes no body"
    for name in body:
        if name not in allowed:
            return _unknown(name, route)
    for name in ("n", "best_of"):
        if name in body and (problem := _bounded(name, body[name], rules.max_n)):
            return problem
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, Mapping):
            return "chat_template_kwargs must be an object"
        for name in kwargs:
            if name not in THINKING_KWARGS:
                return (f"chat_template_kwargs.{clip(str(name), 64)} is not forwarded: only "
                        f"{', '.join(sorted(THINKING_KWARGS))} may steer the chat template")
    for name in ("metadata", "client_metadata"):
        if name in body and (problem := _metadata(name, body[name])) is not None:
            return problem
    if (problem := _tools(body.get("tools"), "tools")) is not None:
        return problem
    if not rules.remote_media:
        for field in ("messages", "input"):
            if (problem := _media(body.get(field), field)) is not None:
                return problem
    return None


def _unknown(name: str, route: str) -> str:
    shown = clip(str(name), 64)
    if name in ROUTING_FIELDS:
        return (f"field {shown!r} is not forwarded: it routes the request or changes its "
                "prompt (a router in front of the model acts on it)")
    return (f"field {shown!r} is not one /v1/{route} forwards (the relay forwards the "
            "fields the OpenAI API defines for it and a few vLLM sampling extras; see "
            "the README)")


def _bounded(name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer"
    if value > limit:
        return (f"{name}={value} asks for more than {limit} answers at once (each is paid in "
                "full); set CTO_HARNESS_RELAY_MAX_N to allow more")
    return None


def _metadata(name: str, value: Any) -> str | None:
    """Metadata is the client's labels, strings to strings; a router reads some labels as
    routing (LiteLLM's `metadata.tags`)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
            isinstance(v, str) for v in value.values()):
        return f"{name} must be an object of strings"
    for key in value:
        if key in METADATA_ROUTING:
            return (f"{name}.{clip(str(key), 64)} is not forwarded: a router in front of "
                    "the model reads it to choose where the request goes")
    return None


def _tools(tools: Any, where: str) -> str | None:
    if not isinstance(tools, list):
        return None
    for index, tool in enumerate(tools):
        kind = tool.get("type", "function") if isinstance(tool, Mapping) else None
        if kind not in LOCAL_TOOLS:
            shown = clip(str(kind), 64)
            return (f"{where}[{index}] has type {shown!r}: only tools the agent runs itself "
                    f"({', '.join(sorted(LOCAL_TOOLS))}) are forwarded, never a hosted one "
                    "that reaches out for the Case")
        inner = tool.get("tools") if kind == "namespace" and isinstance(tool, Mapping) else None
        if (problem := _tools(inner, f"{where}[{index}].tools")) is not None:
            return problem
    return None


def _media(value: Any, where: str) -> str | None:
    """The first content part (in `messages[].content` or Responses `input`) that names
    something to fetch rather than carrying it inline."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (problem := _media(item, f"{where}[{index}]")) is not None:
                return problem
        return None
    if not isinstance(value, Mapping):
        return None
    kind = value.get("type")
    keys = _MEDIA_PARTS.get(kind) if isinstance(kind, str) else None
    for key in keys or ():
        if key in value and not _inline(value[key]):
            return (f"{where}.{key} names something to fetch; the relay forwards only inline "
                    "`data:` media (set CTO_HARNESS_RELAY_REMOTE_MEDIA=allow to change that)")
    content = value.get("content")
    return _media(content, f"{where}.content") if isinstance(content, list) else None


def _inline(ref: Any) -> bool:
    """Whether a part's reference carries its data: a `data:` URL (alone or as `url`), or
    a file part's `file_data`. Anything else — http(s), file://, a provider's file id, a
    relative name — would be fetched."""
    if isinstance(ref, str):
        return ref.lstrip()[:5].lower() == "data:"
    if isinstance(ref, Mapping):
        return all(
            key in ("detail", "format", "filename") or (
                key == "file_data" and isinstance(val, str)) or (
                key == "url" and _inline(val))
            for key, val in ref.items()) and ("url" in ref or "file_data" in ref)
    return False
