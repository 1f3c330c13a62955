"""The signing key every test signs and validates with, instead of the account's own
(`~/.config/cto-harness/signing-key` is never made or read by the suite).

Fixed (derived from a constant), so fixture runs, their report.json and the snapshots that
show them are the same on every machine; it signs nothing but test runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.evidence.keys import KEY_FILE_VAR, SigningKey

FIXTURE_PRIVATE = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"cto-harness test suite signing key").digest())


def write_key(path: Path, key: Ed25519PrivateKey = FIXTURE_PRIVATE) -> Path:
    """`key` as a PEM file at `path`, 0600 in a 0700 folder (what the harness accepts)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def fixture_key(path: Path = Path("fixture-signing-key")) -> SigningKey:
    return SigningKey(private=FIXTURE_PRIVATE, path=path)


def harness_setting(name: str) -> bool:
    """A CTO_HARNESS_ variable a test clears for a bare environment: all but the suite's
    signing key, which stands for the account's own key and is never a test's setting."""
    return name.startswith("CTO_HARNESS_") and name != KEY_FILE_VAR
