"""The run side of a gateway: the settings that point a run's relay at `cto-harness gateway`
instead of the endpoint, and the TLS client context that pins the gateway's certificate.

Why here, in the bottom layer: readiness (core/run) and the relay (core/relay) both reach the
upstream, and must reach a gateway the same way — pinned to the fingerprint its host printed,
with the bearer token from a file — so the one definition sits below both.

The gateway's address and fingerprint are not secrets (a worker may print them); the token
is: it is read from a file, held as the run's API key (so the run's redactor masks it), and
never printed.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from typing import Any

GATEWAY_URL_VAR = "CTO_HARNESS_GATEWAY_URL"
GATEWAY_TOKEN_FILE_VAR = "CTO_HARNESS_GATEWAY_TOKEN_FILE"
GATEWAY_FINGERPRINT_VAR = "CTO_HARNESS_GATEWAY_FINGERPRINT"
GATEWAY_PLAIN_HTTP_VAR = "CTO_HARNESS_GATEWAY_PLAIN_HTTP"
"""`allow`: the explicit opt-out for a gateway served with `--insecure-plain-http`."""

JOB_HEADER = "x-cto-job"
RUN_HEADER = "x-cto-run"
"""The trial identity a run's relay sends the gateway with each request (non-secret)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class GatewayTarget:
    """Where a run's relay forwards when a gateway is set: its address (not a secret), the
    certificate fingerprint it is pinned to, and whether plain http was opted into."""

    url: str
    fingerprint: str | None
    """Lower-case hex sha256 of the gateway's DER certificate; None only over plain http."""
    plain_http: bool = False


def fingerprint_of(der: bytes) -> str:
    """The fingerprint a gateway prints and a worker pins: sha256 of the DER certificate."""
    return hashlib.sha256(der).hexdigest()


def normalise_fingerprint(text: str) -> str | None:
    """`text` as 64 lower-case hex digits (colons and spaces, as `openssl` prints them,
    dropped), or None when it is not a sha256."""
    clean = re.sub(r"[\s:]", "", text).lower().removeprefix("sha256")
    return clean if _HEX64.fullmatch(clean) else None


class PinMismatch(ssl.SSLError):
    """The gateway presented a certificate whose fingerprint is not the pinned one."""


class _PinnedObject(ssl.SSLObject):
    """An SSLObject (asyncio/anyio TLS: the relay) that checks the pin once the handshake
    is complete, before a byte of the request — the token included — is written."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_pin(self.context, self.getpeercert(binary_form=True))


class _PinnedSocket(ssl.SSLSocket):
    """The same check for a blocking socket (httpx's sync client: readiness)."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_pin(self.context, self.getpeercert(binary_form=True))


def _check_pin(context: Any, der: bytes | None) -> None:
    pin = getattr(context, "cto_pin", None)
    seen = fingerprint_of(der) if der else "none"
    if pin is not None and seen != pin:
        # errno, strerror: anyio reads `strerror` of an SSLError it passes on.
        raise PinMismatch(1, f"{GATEWAY_FINGERPRINT_VAR} does not match the gateway's "
                             f"certificate (it presents sha256 {seen[:16]}…); set it to the "
                             "fingerprint `cto-harness gateway serve` printed on its host")


class _PinnedContext(ssl.SSLContext):
    sslobject_class = _PinnedObject
    sslsocket_class = _PinnedSocket
    cto_pin: str | None = None


def pinned_context(fingerprint: str) -> ssl.SSLContext:
    """A client context that accepts exactly the certificate with this sha256 fingerprint.
    The chain and host name are not checked (the gateway's certificate is self-signed and
    its address may be any LAN name): the pin is a stronger check than both."""
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.cto_pin = fingerprint
    return context


def gateway_problem(url: str, fingerprint: str | None, plain_http: bool,
                    shape: str | None) -> str | None:
    """What is wrong with the gateway settings, in one line naming the variable."""
    if shape is not None:
        return f"{GATEWAY_URL_VAR} {shape}"
    if url.lower().startswith("http:") and not plain_http:
        return (f"{GATEWAY_URL_VAR} is plain http://: the token and every prompt would cross "
                "the network unencrypted; use the gateway's https:// address, or set "
                f"{GATEWAY_PLAIN_HTTP_VAR}=allow to opt out (recorded in the report)")
    if url.lower().startswith("https:") and fingerprint is None:
        return (f"{GATEWAY_FINGERPRINT_VAR} is not set or not a sha256 (64 hex digits): set it "
                "to the fingerprint `cto-harness gateway serve` printed on its host")
    return None
