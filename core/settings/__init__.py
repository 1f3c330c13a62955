"""Configuration from the environment (pydantic-settings), secrets held as SecretStr; the
defaults (profile, task, fallback markers); and, in `core.settings.hosted`, what a hosted
provider looks like (a package so that knowledge sits beside its lowest user, the default
fallback markers, in core's bottom layer).

The endpoint URL and API key are secrets from the moment they are read: their repr, str,
dumps and every error message here say only which variable or file is at fault.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import BadInput
from core.settings.gateway import (
    GATEWAY_FINGERPRINT_VAR,
    GATEWAY_TOKEN_FILE_VAR,
    GATEWAY_URL_VAR,
    GatewayTarget,
    gateway_problem,
    normalise_fingerprint,
    pinned_context,
)
from core.settings.hosted import HOSTED_MODEL_MARKERS

DEFAULT_PROFILE = "case-qwen"
"""The profile a run, a job, readiness and health use when none is named."""
PROFILES: dict[str, tuple[str, str]] = {DEFAULT_PROFILE: ("qwen-local", "qwen3.6-35b-a3b")}
"""Fixed, non-secret routing of each profile: (provider, model)."""
DEFAULT_TASK = "r1-string-slugify"
"""The task a run starts when none is named (a bundled one)."""

DEFAULT_CASE_ARGS = "--task-file {task_file} --workspace {workspace} --model {model}"
DEFAULT_FALLBACK_MARKERS = HOSTED_MODEL_MARKERS

ENDPOINT_VAR = "CTO_HARNESS_CASE_LOCAL_BASE_URL"
API_KEY_VAR = "CTO_HARNESS_CASE_LOCAL_API_KEY"
CASE_API_VAR = "CTO_HARNESS_CASE_API"
CASE_APIS = ("chat", "responses", "both")
"""Which generation route the Case calls, so readiness probes that one: `chat`
(POST /chat/completions: aider, mini-swe-agent, Qwen Code), `responses` (POST /responses:
Codex CLI), or `both`."""
RUNS_ROOT_VAR = "CTO_HARNESS_RUNS_ROOT"


class ConfigError(BadInput):
    """Bad configuration; the message names the variable or file and what to do."""


class HarnessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTO_HARNESS_", extra="ignore")

    case_local_base_url: SecretStr | None = None
    case_local_base_url_file: str | None = None
    case_local_api_key: SecretStr | None = None
    case_local_api_key_file: str | None = None
    case_bin: str | None = None
    case_args: str | None = None
    case_model_admission_file: str | None = None
    case_model_provider: str | None = None
    case_model: str | None = None
    runs_root: str = "./harness-runs"
    fallback_markers: str | None = None
    case_network: str | None = None
    """Retired (the sandbox decides the Case's network); set, it blocks the run saying so."""
    case_sandbox: str | None = None
    case_sandbox_ro: str | None = None
    case_sandbox_rw: str | None = None
    case_seccomp: str | None = None
    case_env: str | None = None
    case_stdin: str | None = None
    case_home_template: str | None = None
    case_api: str | None = None
    relay_max_n: str | None = None
    relay_remote_media: str | None = None
    gateway_url: str | None = None
    gateway_token_file: str | None = None
    gateway_fingerprint: str | None = None
    gateway_plain_http: str | None = None


def _read_secret_file(var: str, path: str) -> tuple[SecretStr | None, str | None]:
    """(value, None) or (None, what is wrong): a bad `_FILE` is missing config, not a crash."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, f"{var}_FILE names a file that does not exist: {path}"
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        return None, f"{var}_FILE: cannot read {path} ({reason})"
    if not value:
        return None, f"{var}_FILE: {path} is empty; put the value on its first line"
    return SecretStr(value), None


def endpoint_shape_problem(url: str) -> str | None:
    """What is wrong with the endpoint's shape, in words that never quote it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a URL (an unparseable host or port)"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if any(ch.isspace() for ch in url):
        return "contains white space"
    return None


@dataclass(frozen=True)
class Resolved:
    """Settings resolved for one run: secrets still wrapped, files read, profile applied."""

    endpoint: SecretStr | None
    endpoint_source: str | None
    endpoint_problem: str | None
    """Why the endpoint is unusable (bad shape, unreadable `_FILE`), never quoting it."""
    api_key: SecretStr | None
    api_key_problem: str | None
    case_bin: str | None
    case_args: str
    admission_file: Path | None
    provider: str
    model: str
    runs_root: Path
    fallback_markers: tuple[str, ...]
    case_network: str | None = None
    """The retired CTO_HARNESS_CASE_NETWORK, when still set (a run refuses it)."""
    case_sandbox: str = "on"
    """`on` (the default: bubblewrap) or `off` (the explicit opt-out)."""
    case_sandbox_ro: str | None = None
    case_sandbox_rw: str | None = None
    case_seccomp: str = "on"
    """CTO_HARNESS_CASE_SECCOMP: `on` (the default: the sandbox's seccomp filter) or `off`
    (the explicit opt-out, recorded and never evidence)."""
    case_env: str | None = None
    """CTO_HARNESS_CASE_ENV as written: `NAME=VALUE` shell words (core/run/caseconf.py)."""
    case_stdin: str | None = None
    """CTO_HARNESS_CASE_STDIN: `none` (the default) or `task`."""
    case_home_template: Path | None = None
    """CTO_HARNESS_CASE_HOME_TEMPLATE: a folder copied into the run's private HOME."""
    case_api: str = "chat"
    """One of CASE_APIS, as given (readiness judges a bad value, naming the variable)."""
    relay_max_n: int = 1
    """CTO_HARNESS_RELAY_MAX_N: the most answers (`n`, `best_of`) one request may ask for."""
    relay_remote_media: bool = False
    """CTO_HARNESS_RELAY_REMOTE_MEDIA=allow: image/file parts may name a URL or file id to
    fetch (the default forwards only inline `data:` media)."""
    gateway: GatewayTarget | None = None
    """CTO_HARNESS_GATEWAY_URL set: the relay's upstream is that gateway (then `endpoint`
    holds the gateway's address, not a secret, and `api_key` the gateway's token)."""
    local_endpoint: SecretStr | None = None
    """The endpoint variables' value when set beside a gateway: never used, only masked."""

    @property
    def endpoint_usable(self) -> bool:
        return self.endpoint is not None and self.endpoint_problem is None

    def secrets(self) -> dict[str, str]:
        """The configured secret values by the names a redactor reports them under."""
        endpoint = self.local_endpoint if self.gateway is not None else self.endpoint
        return {name: value.get_secret_value()
                for name, value in (("endpoint", endpoint), ("api_key", self.api_key))
                if value is not None}


def upstream_verify(endpoint: SecretStr, gateway: GatewayTarget | None) -> bool | ssl.SSLContext:
    """httpx's `verify` for the upstream: a gateway's pinned certificate, or the endpoint's
    own (`verifies_tls`)."""
    if gateway is not None and gateway.fingerprint is not None \
            and endpoint.get_secret_value().lower().startswith("https:"):
        return pinned_context(gateway.fingerprint)
    return verifies_tls(endpoint)


def verifies_tls(endpoint: SecretStr) -> bool:
    """httpx's `verify` for the upstream: only https has a certificate to check, and
    loading the CA bundle costs ~25 ms a client. Neither of our clients follows redirects,
    so a plain-http endpoint can never lead to an unverified https one."""
    return endpoint.get_secret_value().lower().startswith("https:")


def upstream_url(endpoint: SecretStr, route: str) -> str:
    """The endpoint's base joined with a route (`models`, `chat/completions`), the base's own
    path kept: the one join for the relay's forwarding and readiness's probes. The result is
    the secret itself: for the request only, never a message or a log."""
    return endpoint.get_secret_value().rstrip("/") + "/" + route


def upstream_headers(api_key: SecretStr | None, **headers: str) -> dict[str, str]:
    """`headers`, and the API key as `authorization: Bearer …` when one is set (the relay's
    and readiness's one way of presenting it)."""
    if api_key is not None:
        headers["authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers


def _both_set(var: str) -> str:
    return (f"both {var} and {var}_FILE are set: unset one, so which value a run uses is "
            "never a guess")


def resolve(profile: str = DEFAULT_PROFILE, *, gateway_url: str | None = None) -> Resolved:
    """Read the environment once; raise ConfigError for what cannot be read at all.
    `gateway_url`: a job's `--gateway`, in place of CTO_HARNESS_GATEWAY_URL (the driver
    checks the gateway its workers will use without setting a variable of its own process,
    where its other threads read the environment)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    settings = HarnessSettings(gateway_url=gateway_url) if gateway_url else HarnessSettings()
    endpoint = settings.case_local_base_url
    source: str | None = ENDPOINT_VAR
    if endpoint is None or not endpoint.get_secret_value().strip():
        endpoint, source = None, None
    problem = None
    if endpoint is None and settings.case_local_base_url_file:
        endpoint, problem = _read_secret_file(ENDPOINT_VAR, settings.case_local_base_url_file)
        source = f"{ENDPOINT_VAR}_FILE"
    api_key, api_key_problem = settings.case_local_api_key, None
    if api_key is None and settings.case_local_api_key_file:
        api_key, api_key_problem = _read_secret_file(API_KEY_VAR, settings.case_local_api_key_file)
    elif api_key is not None and settings.case_local_api_key_file:
        api_key_problem = _both_set(API_KEY_VAR)
    if endpoint is not None:
        endpoint = SecretStr(endpoint.get_secret_value().strip())
        shape = endpoint_shape_problem(endpoint.get_secret_value())
        problem = f"{source} {shape}" if shape else None
        if source == ENDPOINT_VAR and settings.case_local_base_url_file:
            problem = _both_set(ENDPOINT_VAR)
    if api_key is not None and api_key_problem is None and endpoint is not None and (
        problem is None and _has_userinfo(endpoint)
    ):
        api_key_problem = (f"{source} holds a user:password and {API_KEY_VAR} is set too: "
                           "the upstream would get the URL's Basic credentials and never the "
                           "key; keep the credentials in one of the two")
    gateway = None
    local_endpoint = None
    if settings.gateway_url and settings.gateway_url.strip():
        local_endpoint = endpoint if problem is None else None
        gateway, endpoint, problem, api_key, api_key_problem = _gateway(settings)
        source = GATEWAY_URL_VAR
    provider, model = PROFILES[profile]
    markers: tuple[str, ...] = DEFAULT_FALLBACK_MARKERS
    if settings.fallback_markers is not None:
        words = settings.fallback_markers.split(",")
        markers = tuple(m.strip().lower() for m in words if m.strip())
    return Resolved(
        endpoint=endpoint,
        endpoint_source=source,
        endpoint_problem=problem,
        api_key=api_key,
        api_key_problem=api_key_problem,
        case_bin=settings.case_bin or None,
        case_args=settings.case_args or DEFAULT_CASE_ARGS,
        admission_file=Path(settings.case_model_admission_file)
        if settings.case_model_admission_file
        else None,
        provider=settings.case_model_provider or provider,
        model=settings.case_model or model,
        # Absolute from here on: the Case and the checks run in folders of their own, so a
        # relative root (the default `./harness-runs`) named paths that did not exist there.
        runs_root=Path(settings.runs_root).absolute(),
        fallback_markers=markers,
        case_network=settings.case_network,
        case_sandbox=(settings.case_sandbox or "on").strip(),
        case_sandbox_ro=settings.case_sandbox_ro,
        case_sandbox_rw=settings.case_sandbox_rw,
        case_seccomp=(settings.case_seccomp or "on").strip(),
        case_env=settings.case_env,
        case_stdin=settings.case_stdin,
        case_home_template=Path(settings.case_home_template).expanduser()
        if settings.case_home_template else None,
        case_api=(settings.case_api or "chat").strip().lower(),
        relay_max_n=_max_n(settings.relay_max_n),
        relay_remote_media=_remote_media(settings.relay_remote_media),
        gateway=gateway,
        local_endpoint=local_endpoint,
    )


def _gateway(settings: HarnessSettings) -> tuple[GatewayTarget, SecretStr, str | None,
                                                 SecretStr | None, str | None]:
    """The gateway in place of the endpoint: (target, its address as the upstream, what is
    wrong with it, the token as the API key, what is wrong with the token)."""
    url = (settings.gateway_url or "").strip()
    plain = (settings.gateway_plain_http or "").strip().lower() == "allow"
    raw_pin = settings.gateway_fingerprint
    pin = normalise_fingerprint(raw_pin) if raw_pin else None
    problem = gateway_problem(url, pin, plain, endpoint_shape_problem(url))
    if problem is None and raw_pin and pin is None:
        problem = (f"{GATEWAY_FINGERPRINT_VAR} is not a sha256 (64 hex digits); copy the "
                   "fingerprint `cto-harness gateway serve` printed")
    token, token_problem = None, None
    if settings.gateway_token_file:
        token, token_problem = _read_secret_file(GATEWAY_TOKEN_FILE_VAR.removesuffix("_FILE"),
                                                 settings.gateway_token_file)
        token_problem = token_problem or _shared_file(settings.gateway_token_file)
    else:
        token_problem = (f"{GATEWAY_TOKEN_FILE_VAR} is not set: name the token file "
                         "`cto-harness gateway token --job NAME` wrote on the gateway's host")
    target = GatewayTarget(url=url, fingerprint=pin, plain_http=plain)
    return target, SecretStr(url), problem, token, token_problem


def _max_n(value: str | None) -> int:
    if value is None or not value.strip():
        return 1
    text = value.strip()
    if not text.isdigit() or not 1 <= int(text) <= 128:
        raise ConfigError("CTO_HARNESS_RELAY_MAX_N must be a whole number from 1 to 128 "
                          "(the most answers one request may ask for); unset it for 1")
    return int(text)


def _remote_media(value: str | None) -> bool:
    text = (value or "refuse").strip().lower()
    if text not in ("allow", "refuse"):
        raise ConfigError("CTO_HARNESS_RELAY_REMOTE_MEDIA must be `allow` or `refuse` (the "
                          "default: image/file parts must carry their data inline)")
    return text == "allow"


def _shared_file(path: str) -> str | None:
    """Why a token file other local accounts can read is refused (they are adversaries: a
    token reaches the model), or None."""
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return None  # reading it said so already
    if mode & 0o077:
        return (f"{GATEWAY_TOKEN_FILE_VAR}: {path} is readable by other accounts "
                f"(mode {mode:04o}); chmod 600 {path}")
    return None


def _has_userinfo(endpoint: SecretStr) -> bool:
    parts = urlsplit(endpoint.get_secret_value())
    return parts.username is not None or parts.password is not None
