"""The signing key: an Ed25519 key outside the runs root that only the harness's user holds.

Why a key at all: the hash chain and the artifact hashes catch an edit, but anyone who can
write a run folder can re-hash it after editing. A signature by a key the Case, the run
folder and other local accounts cannot read is what they cannot rebuild.

Where: `CTO_HARNESS_SIGNING_KEY_FILE`, else `~/.config/cto-harness/signing-key` (made on
first use, 0600 in a 0700 folder). The key file must be a regular file of ours that nobody
else can read or write; anything else (missing when named, unreadable, not an Ed25519 PEM,
loose modes, someone else's) is a `KeyProblem`: one line naming the file and what to do,
and the run is blocked, never silently unsigned. `CTO_HARNESS_SIGNING=off` opts out, which
is recorded and such a run is never real-model evidence.

The key's id is the one securesystemslib computes (SHA-256 of the canonical JSON of
`{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": <hex>}}`), so its
`dsse.Envelope.verify` matches our signatures by `keyid`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from core.errors import BadInput
from core.evidence.models import Signing

SIGNING_VAR = "CTO_HARNESS_SIGNING"
KEY_FILE_VAR = "CTO_HARNESS_SIGNING_KEY_FILE"
MAX_KEY_BYTES = 16 * 1024
"""A PEM Ed25519 key is ~120 bytes: anything much larger is not one (and is not read)."""


class KeyProblem(BadInput):
    """The signing key (or a public key given to verify with) cannot be used; the message
    is one line naming the file and what to do."""


def signing_off(environ: Mapping[str, str]) -> bool:
    """CTO_HARNESS_SIGNING=off (or 0/false/no): the recorded opt-out."""
    return environ.get(SIGNING_VAR, "").strip().lower() in ("off", "0", "false", "no")


def check_signing_setting(environ: Mapping[str, str]) -> None:
    """A CTO_HARNESS_SIGNING that is neither on nor off is a typo, not a choice."""
    value = environ.get(SIGNING_VAR, "").strip().lower()
    if value not in ("", "on", "1", "true", "yes", "off", "0", "false", "no"):
        raise KeyProblem(f"{SIGNING_VAR}={environ[SIGNING_VAR]!r} is neither on nor off: "
                         "unset it (signed runs) or set it to off (unsigned, never "
                         "real-model evidence)")


def default_key_path(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".config" / "cto-harness" / "signing-key"


def key_path(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The key file and whether the user named it (a named file is never made for them: a
    typo in the name would otherwise sign with a new key nobody trusts)."""
    named = environ.get(KEY_FILE_VAR, "").strip()
    if named:
        return Path(named).expanduser(), True
    return default_key_path(environ), False


def keyid_of(public: Ed25519PublicKey) -> str:
    """securesystemslib's default keyid for an Ed25519 key (its compute_default_keyid over
    OLPC canonical JSON; for these ASCII-only fields that is sorted keys, no spaces)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw.hex()}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class SigningKey:
    """The private key held in memory for one run or job, its public half and id."""

    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def keyid(self) -> str:
        return keyid_of(self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


@dataclass(frozen=True)
class VerifyKey:
    """A public key to verify with, and where it came from (said in validate's detail)."""

    public: Ed25519PublicKey
    source: str

    @property
    def keyid(self) -> str:
        return keyid_of(self.public)


def _read_own_file(path: Path, what: str, fix: str) -> bytes:
    """The bytes of `path` if it is a regular file owned by us that no one else can read or
    write; else KeyProblem naming the file. Judged on the opened file (no race with a swap)
    and never through a link at its last component."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyProblem(f"{what} {path} does not exist: {fix}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise KeyProblem(f"{what} {path} is a symbolic link: point {KEY_FILE_VAR} at "
                             "the file itself") from None
        raise KeyProblem(f"{what} {path} cannot be read ({exc.strerror}): {fix}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyProblem(f"{what} {path} is not a regular file: {fix}")
        if st.st_uid != os.geteuid():
            raise KeyProblem(f"{what} {path} is owned by uid {st.st_uid}, not you (uid "
                             f"{os.geteuid()}): use a key file of your own")
        if st.st_mode & 0o077:
            raise KeyProblem(f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}, "
                             f"readable or writable by others: chmod 600 {path} (and make "
                             "a new key if others may have read it)")
        data = fh.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise KeyProblem(f"{what} {path} is larger than {MAX_KEY_BYTES} bytes, not an "
                         f"Ed25519 PEM key: {fix}")
    return data


def _parse_private(data: bytes, path: Path, fix: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyProblem(f"signing key {path} is encrypted: the harness signs unattended; "
                         f"use an unencrypted key in a 0600 file, or {fix}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem(f"signing key {path} is not a PEM private key: {fix}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"signing key {path} is not an Ed25519 key: {fix}")
    return key


def _create(path: Path) -> None:
    """A new key at `path`, its folder 0700: written whole to a temp file beside it, then
    linked into place, so two runs starting at once agree on one key (the loser of the
    race reads the winner's)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=".signing-key-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_signing_key(environ: Mapping[str, str], create: bool = True) -> SigningKey:
    """The key runs are signed with; made at the default place on first use (`create`).
    KeyProblem (one line) when it cannot be used."""
    path, named = key_path(environ)
    if named:
        fix = (f"point {KEY_FILE_VAR} at an Ed25519 private key (PEM, 0600), or unset it "
               f"to use {default_key_path(environ)}")
    else:
        fix = (f"move it aside and run `cto-harness key` to make a new one, or set "
               f"{KEY_FILE_VAR}")
    if create and not named and not os.path.lexists(path):
        try:
            _create(path)
        except OSError as exc:
            raise KeyProblem(f"signing key {path} cannot be made ({exc.strerror}): fix "
                             f"{path.parent}'s permissions or set {KEY_FILE_VAR}") from None
    data = _read_own_file(path, "signing key", fix)
    return SigningKey(private=_parse_private(data, path, fix), path=path)


def load_public_key(path: Path) -> VerifyKey:
    """A public key given with `--key PUB`: an Ed25519 public key in PEM (what
    `cto-harness key` prints). A public key need not be private, so only its form is
    checked."""
    fix = "give the PEM that `cto-harness key` prints on the signing machine"
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise KeyProblem(f"--key {path} cannot be read ({exc.strerror}): {fix}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyProblem(f"--key {path} is not a PEM public key: {fix}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"--key {path} is not an Ed25519 public key: {fix}")
    return VerifyKey(public=key, source=f"the key given ({path.name})")


def verify_key(given: VerifyKey | None,
               environ: Mapping[str, str]) -> tuple[VerifyKey | None, str | None]:
    """The key to verify with: `given` (--key), else the public half of the local signing
    key, never made here (validate must not mint a key that would then vouch for nothing);
    with why there is none instead."""
    if given is not None:
        return given, None
    try:
        key = load_signing_key(environ, create=False)
    except KeyProblem as exc:
        return None, str(exc)
    return VerifyKey(public=key.public, source="the local key"), None


def signing_setup(environ: Mapping[str, str]) -> tuple[Signing, SigningKey | None, str | None]:
    """A run's signing: (what the report records, the key, why the run is blocked). The
    opt-out is recorded; a key that cannot be used blocks with `config: <one line>`."""
    if signing_off(environ):
        return Signing(mode="off", detail=f"{SIGNING_VAR}=off: unsigned, never real-model "
                       "evidence"), None, None
    try:
        check_signing_setting(environ)
        key = load_signing_key(environ)
    except KeyProblem as exc:
        return Signing(mode="on", detail=f"config: {exc}"), None, f"config: {exc}"
    return Signing(mode="on", keyid=key.keyid, detail="Ed25519; attestation.intoto.jsonl "
                   "written last, over every other file"), key, None
