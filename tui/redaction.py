"""The redacting filter applied again at display: whatever the run's files hold, the
dashboard never paints a secret it knows of."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from core.secrets.redact import Redactor
from core.settings import Resolved


def display_redactor(resolved: Resolved | None, typed: SecretStr | None) -> Callable[[str], str]:
    """A redact function built from the configured endpoint and key plus an endpoint typed
    in with `e`; the identity when no secret is known."""
    named = resolved.secrets() if resolved is not None else {}
    if typed is not None:
        named["typed_endpoint"] = typed.get_secret_value()
    if not named:
        return str
    return Redactor(named).redact
