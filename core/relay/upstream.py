"""How the harness addresses the upstream (the user's endpoint): one URL join and one
`Bearer` header, for the relay's forwarding and readiness's probes alike.

The endpoint is a secret: these return the secret text only for the request itself, never
for a message or a log (callers redact whatever an error says).
"""

from __future__ import annotations

from pydantic import SecretStr


def upstream_url(endpoint: SecretStr, route: str) -> str:
    """The endpoint's base joined with a route (`models`, `chat/completions`): the base's
    own path kept, one slash between."""
    return endpoint.get_secret_value().rstrip("/") + "/" + route


def upstream_headers(api_key: SecretStr | None, **headers: str) -> dict[str, str]:
    """`headers`, and the API key as `authorization: Bearer …` when one is set."""
    if api_key is not None:
        headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers
