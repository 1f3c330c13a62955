"""What a gateway keeps in its state folder: its TLS certificate (made on first use) and the
hashes of the tokens it issued, one job each, expiring, revocable.

Why a folder of files and no database: the host that holds the endpoint runs one gateway,
and `gateway token` / `gateway revoke` are other processes that must take effect on a
running gateway at once — it re-reads `tokens.json` whenever the file changed. The folder is
0700 and every file in it 0600; the token itself is written only to the file `gateway token`
names (for the job's workers), never kept here, never printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from core.errors import BadInput
from core.settings.gateway import fingerprint_of

STATE_VAR = "CTO_HARNESS_GATEWAY_STATE"
TOKENS = "tokens.json"
LEDGER = "ledger.jsonl"
CERT, KEY = "tls/cert.pem", "tls/key.pem"
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
CERT_DAYS = 3650
"""The certificate is pinned by fingerprint, not trusted by date: a long life saves
re-pinning every worker; rotate it by deleting tls/ (a new fingerprint is printed)."""


class GatewayStateError(BadInput):
    """A state folder or token request the gateway cannot use; the message says how to fix."""


def default_state_dir() -> Path:
    """`$CTO_HARNESS_GATEWAY_STATE`, else `$XDG_STATE_HOME/cto-harness/gateway`, else
    `~/.local/state/cto-harness/gateway`."""
    if os.environ.get(STATE_VAR):
        return Path(os.environ[STATE_VAR]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cto-harness" / "gateway"


def prepare_state(folder: Path) -> Path:
    """The state folder, made 0700 (and tightened if ours and looser): it holds the TLS
    key and the ledger."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
    except OSError as exc:
        raise GatewayStateError(f"gateway state folder {folder}: {exc.strerror}; pass "
                                "--state DIR with a folder you can write") from None
    return folder


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` 0600, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def ensure_certificate(folder: Path, host: str) -> tuple[Path, Path, str]:
    """(certificate, key, fingerprint): made on first use (ECDSA P-256, self-signed), then
    the same every start, so the workers' pin holds."""
    cert_path, key_path = folder / CERT, folder / KEY
    if not cert_path.exists() or not key_path.exists():
        _make_certificate(cert_path, key_path, host)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise GatewayStateError(f"{cert_path} is not a readable certificate ({exc}); delete "
                                f"{cert_path.parent} to make a new one (re-pin the workers)"
                                ) from None
    return cert_path, key_path, fingerprint_of(cert.public_bytes(Encoding.DER))


def _make_certificate(cert_path: Path, key_path: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cto-harness gateway")])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(socket.gethostname() or "localhost")]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))


# -- tokens ---------------------------------------------------------------------------

class TokenEntry(BaseModel):
    job: str
    sha256: str
    issued: str
    expires: str
    revoked: str | None = None


class TokenBook(BaseModel):
    tokens: list[TokenEntry] = []


def parse_ttl(text: str) -> dt.timedelta:
    """`90s`, `30m`, `24h`, `7d` (a bare number is hours)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if match is None or int(match.group(1)) == 0:
        raise GatewayStateError(f"--ttl {text!r} is not a duration; write e.g. 90s, 30m, 24h, 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "hours"}
    return dt.timedelta(**{unit[match.group(2)]: int(match.group(1))})


def check_job_name(job: str) -> str:
    if not JOB_NAME.fullmatch(job):
        raise GatewayStateError(f"--job {job!r}: a job name is letters, digits, `.`, `_` and "
                                "`-` (at most 100), starting with a letter or digit")
    return job


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class Issued:
    path: Path
    job: str
    expires: str


class Tokens:
    """The issued tokens' hashes (`tokens.json`), re-read when the file changes, so a token
    issued or revoked by another process counts at the next request."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / TOKENS
        self._seen: tuple[int, int, int] | None = None
        self._book = TokenBook()

    def _load(self) -> TokenBook:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._seen, self._book = None, TokenBook()
            return self._book
        # Every write replaces the file (a new inode): that, not a coarse mtime, tells a
        # change made within the same clock tick.
        mark = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if mark != self._seen:
            try:
                self._book = TokenBook.model_validate_json(self._path.read_bytes())
            except (OSError, ValidationError, ValueError):
                raise GatewayStateError(f"{self._path} is not a token book the gateway wrote; "
                                        "move it aside and issue the tokens again") from None
            self._seen = mark
        return self._book

    def _save(self, book: TokenBook) -> None:
        _write_private(self._path, book.model_dump_json(indent=1).encode())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: two `gateway token` (or `revoke`) at once must not lose
        each other's change (each reads the book, changes it, writes it whole)."""
        fd = os.open(self._path.with_name(".tokens.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._seen = None  # read the book again under the lock
            yield
        finally:
            os.close(fd)

    def issue(self, job: str, ttl: dt.timedelta, out: Path) -> Issued:
        """A new token for `job`, written to `out` (0600); only its hash is kept here."""
        check_job_name(job)
        token = "ctogw_" + secrets.token_urlsafe(32)
        now = _now()
        entry = TokenEntry(job=job, sha256=_hash(token), issued=_iso(now),
                           expires=_iso(now + ttl))
        with self._locked():
            book = self._load()
            self._save(TokenBook(tokens=[*book.tokens, entry]))
        try:
            _write_private(out, (token + "\n").encode())
        except OSError as exc:
            raise GatewayStateError(f"--out {out}: {exc.strerror}; name a file you can "
                                    "write") from None
        return Issued(path=out, job=job, expires=entry.expires)

    def revoke(self, job: str) -> int:
        """Revoke every live token of `job`; how many."""
        with self._locked():
            book = self._load()
            now = _iso(_now())
            count = 0
            for entry in book.tokens:
                if entry.job == job and entry.revoked is None:
                    entry.revoked, count = now, count + 1
            if count:
                self._save(book)
        return count

    def admit(self, authorization: str) -> tuple[str | None, str | None]:
        """(job, None) for a live token; (None, the one-line reason) otherwise."""
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, ("no bearer token; send the one `cto-harness gateway token --job "
                          "NAME` wrote (CTO_HARNESS_GATEWAY_TOKEN_FILE)")
        digest = _hash(token.strip())
        found = None
        for entry in self._load().tokens:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        if found is None:
            return None, "the token is not one this gateway issued"
        if found.revoked is not None:
            return None, f"the token for job {found.job} was revoked at {found.revoked}"
        if found.expires <= _iso(_now()):
            return None, f"the token for job {found.job} expired at {found.expires}"
        return found.job, None
