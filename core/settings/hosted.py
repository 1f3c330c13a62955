"""What a hosted model provider's key, base URL, variable or model name looks like: the one
place that knows, for every user of it (the fallback guard's variables and markers, the
Case-setup check, the settings' default fallback markers, `validate`'s hosted models).

Beside the settings, in core's bottom layer, because its lowest user (the settings' default
markers) sits there and `validate` (core.evidence) needs it too; before, four modules spelled
it, and `hosted` imported the guard for its variable pattern.

The user's own settings for a Case (`CTO_HARNESS_CASE_ENV`, the HOME template) are refused
when they name a hosted provider: a key there lets an agent fall back to it the moment the
relay says no, and a `.env` naming `anthropic/claude-sonnet-4-6` made mini-swe-agent call
Anthropic directly. Every finding is described by its kind, never by the text it matched
(that may be a key).
"""

from __future__ import annotations

import re

HOSTED_ENV = re.compile(
    r"^(ANTHROPIC_|CLAUDE_|AWS_BEDROCK|BEDROCK_|VERTEX_|GOOGLE_API_KEY|GEMINI_|MISTRAL_|"
    r"COHERE_|GROQ_|TOGETHER_|OPENROUTER_|AZURE_OPENAI|OPENAI_ORG)",
)
"""Environment variable names (upper case) that belong to a hosted provider."""

HOSTED_MODEL_MARKERS = ("anthropic", "claude-")
"""Words (lower case) that name a hosted model or its maker: the guard's default fallback
markers in a Case's output, and what `validate` looks for in the models the relay saw."""

HOSTED_HOSTS = (
    "api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com", "bedrock-runtime", "openai.azure.com", "openrouter.ai",
    "api.groq.com", "api.mistral.ai", "api.together.xyz", "api.together.ai",
    "api.deepseek.com", "api.x.ai", "api.cohere.com", "api.cohere.ai", "api.fireworks.ai",
    "dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "api.moonshot.ai",
)
"""Hosts of hosted model APIs (Qwen's own hosted service, DashScope, included)."""

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an Anthropic key (sk-ant-…)", re.compile(r"sk-ant-", re.IGNORECASE)),
    ("an OpenAI-style secret key (sk-…)", re.compile(r"\bsk-(?:proj-|or-)?[A-Za-z0-9_-]{20,}")),
    ("a Google API key (AIza…)", re.compile(r"\bAIza[0-9A-Za-z_-]{30,}")),
    ("a Groq key (gsk_…)", re.compile(r"\bgsk_[A-Za-z0-9]{20,}")),
    ("an xAI key (xai-…)", re.compile(r"\bxai-[A-Za-z0-9]{20,}")),
    ("a hosted provider's base URL",
     re.compile("|".join(re.escape(h) for h in HOSTED_HOSTS), re.IGNORECASE)),
    ("a hosted model (anthropic/…, claude-…)",
     re.compile(r"\banthropic/|\bclaude-[a-z0-9]", re.IGNORECASE)),
    ("a hosted provider's variable (ANTHROPIC_API_KEY, …)",
     re.compile(r"(?<![A-Z0-9_])(?:" + HOSTED_ENV.pattern.lstrip("^") + r")[A-Z0-9_]*",
                re.IGNORECASE)),
)


def hosted_finding(text: str) -> str | None:
    """What in `text` names a hosted provider (its kind, never the match), or None."""
    for kind, pattern in _PATTERNS:
        if pattern.search(text):
            return kind
    return None


def hosted_name(name: str) -> bool:
    """An environment variable name that belongs to a hosted provider."""
    return HOSTED_ENV.match(name.upper()) is not None
