"""Readiness: can the harness run the real model right now? (`cto-harness readiness`)

Each check has a state and a detail a user can act on, and none ever holds a secret: the
endpoint is judged by shape, reached with httpx, and described by latency, HTTP status or
error class, with any error text passed through the redactor.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import httpx

from core.evidence.models import AdmissionStatus, Readiness, ReadinessCheck
from core.evidence.rundir import utcnow
from core.run.admission import check_admission
from core.run.caseconf import check_case_setup
from core.settings import (
    API_KEY_VAR,
    CASE_API_VAR,
    CASE_APIS,
    ENDPOINT_VAR,
    Resolved,
    upstream_headers,
    upstream_url,
    upstream_verify,
)
from core.settings.gateway import GATEWAY_TOKEN_FILE_VAR, GATEWAY_URL_VAR
from core.term import visible

EXIT_READY, EXIT_BLOCKED = 0, 3
MAX_MODELS_SHOWN = 5

State = Literal["ok", "missing", "invalid", "blocked", "error", "skipped"]
_ADMISSION_STATE: dict[AdmissionStatus, State] = {
    "admitted": "ok",
    "missing_file": "missing",
    "invalid_file": "invalid",
    "not_admitted": "blocked",
    "pending": "blocked",
    "revoked": "blocked",
    "expired": "blocked",
}
HOW_TO_SUPPLY = (
    f"supply it as {ENDPOINT_VAR}=http://HOST:PORT/v1, or in a file named by "
    f"{ENDPOINT_VAR}_FILE, or in the dashboard (cto-harness-tui)"
)


def _check(name: str, state: State, detail: str, latency_ms: float | None = None) -> ReadinessCheck:
    return ReadinessCheck(name=name, state=state, detail=detail, latency_ms=latency_ms)


def check_endpoint_config(resolved: Resolved) -> ReadinessCheck:
    """Present and well-shaped; the value itself is never looked at beyond its shape."""
    if resolved.gateway is not None:
        return _check_gateway_config(resolved)
    if resolved.endpoint_problem is not None:
        return _check("endpoint_config", "invalid",
                      f"{resolved.endpoint_problem}; {HOW_TO_SUPPLY}")
    if resolved.endpoint is None:
        return _check("endpoint_config", "missing", f"{ENDPOINT_VAR} is not set; {HOW_TO_SUPPLY}")
    if resolved.api_key_problem is not None:
        return _check("endpoint_config", "invalid", resolved.api_key_problem)
    key = f", API key from {API_KEY_VAR}" if resolved.api_key is not None else ""
    return _check("endpoint_config", "ok", f"set via {resolved.endpoint_source}{key}")


def _check_gateway_config(resolved: Resolved) -> ReadinessCheck:
    """A gateway stands in for the endpoint: its address, pin and token file, each named."""
    gateway = resolved.gateway
    assert gateway is not None
    problem = resolved.endpoint_problem or resolved.api_key_problem
    if problem is not None:
        return _check("endpoint_config", "invalid", f"gateway: {problem}")
    how = ("plain http (opted out of TLS)" if gateway.plain_http
           else f"TLS pinned to sha256 {gateway.fingerprint}")
    return _check("endpoint_config", "ok", f"a gateway at {gateway.url} via {GATEWAY_URL_VAR}, "
                  f"{how}, token from {GATEWAY_TOKEN_FILE_VAR}")


def _reach_name(resolved: Resolved) -> str:
    """The reachability check's name: `gateway` when one stands in for the endpoint, so a
    run it refuses is blocked with a `gateway:` reason."""
    return "gateway" if resolved.gateway is not None else "endpoint_reachable"


def _gateway_refusal(response: httpx.Response) -> str:
    """The gateway's own one-line reason for a 401/403 (it never holds the endpoint)."""
    try:
        said = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        said = ""
    said = " ".join(str(said).split())[:300]
    return (f"the gateway refused the token in {GATEWAY_TOKEN_FILE_VAR}"
            + (f" ({visible(said)})" if said else "")
            + "; ask the gateway's host for a fresh one: cto-harness gateway token --job NAME")


def check_case_bin(case_bin: str | None) -> ReadinessCheck:
    if not case_bin:
        return _check("case_bin", "missing",
                      "CTO_HARNESS_CASE_BIN is not set; point it at the Case executable")
    found = case_bin if os.sep in case_bin else shutil.which(case_bin)
    if found is None or not Path(found).exists():
        return _check("case_bin", "missing", f"CTO_HARNESS_CASE_BIN: {case_bin} not found")
    if Path(found).is_dir():
        return _check("case_bin", "invalid", f"CTO_HARNESS_CASE_BIN: {found} is a directory")
    if not os.access(found, os.X_OK):
        return _check("case_bin", "invalid",
                      f"CTO_HARNESS_CASE_BIN: {found} is not executable (chmod +x {found})")
    return _check("case_bin", "ok", found)


def _model_ids(data: Any) -> list[str] | None:
    """The ids of an OpenAI model list, or None when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return [m["id"] for m in data["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _status_hint(status: int, has_key: bool) -> str:
    if status in (401, 403):
        return (f"the endpoint refused the API key in {API_KEY_VAR}" if has_key else
                f"the endpoint wants an API key; set {API_KEY_VAR} or {API_KEY_VAR}_FILE")
    if status == 404:
        return "no /models under this base URL; it should end in /v1"
    return "the endpoint is up but failing"


def _call(resolved: Resolved, method: str, route: str, timeout: float,
          redact: Callable[[str], str], name: str,
          body: dict[str, Any] | None = None) -> tuple[httpx.Response | ReadinessCheck, float]:
    """One request to {base}/{route} with the API key when set: the response, or the check
    that says why none came; and the latency in ms."""
    assert resolved.endpoint is not None
    url = upstream_url(resolved.endpoint, route)
    headers = upstream_headers(resolved.api_key, accept="application/json")
    started = time.monotonic()
    try:
        # trust_env=False: no proxy variable or .netrc may reroute the secret URL.
        with httpx.Client(timeout=httpx.Timeout(timeout), trust_env=False,
                          verify=upstream_verify(resolved.endpoint,
                                                 resolved.gateway)) as client:
            response = client.request(method, url, headers=headers, json=body)
    except httpx.TimeoutException as exc:
        return _check(name, "error", f"timed out after {timeout:g} s ({type(exc).__name__})"), 0
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        text = " ".join(redact(str(exc)).split())
        return _check(name, "error",
                      f"{type(exc).__name__}: {text}" if text else type(exc).__name__), 0
    return response, round((time.monotonic() - started) * 1000, 1)


def probe_endpoint(
    resolved: Resolved, timeout: float, redact: Callable[[str], str]
) -> tuple[ReadinessCheck, list[str] | None]:
    """GET {base}/models: the reachability check, and the served model ids when readable."""
    name = _reach_name(resolved)
    response, latency = _call(resolved, "GET", "models", timeout, redact, name)
    if isinstance(response, ReadinessCheck):
        return response, None
    status = response.status_code
    if status != 200:
        hint = _status_hint(status, resolved.api_key is not None)
        if resolved.gateway is not None and status in (401, 403):
            hint = _gateway_refusal(response)
        return _check(name, "error", f"HTTP {status} in {latency:g} ms: {hint}",
                      latency), None
    try:
        ids = _model_ids(response.json())
    except ValueError:
        ids = None
    if ids is None:
        return _check(name, "invalid",
                      f"HTTP 200 in {latency:g} ms, but the answer is not an OpenAI model list",
                      latency), None
    return _check(name, "ok", f"HTTP 200 in {latency:g} ms", latency), ids


ROUTE_PROBES: dict[str, tuple[str, str]] = {
    "chat": ("chat/completions", "messages"),
    "responses": ("responses", "input"),
}
"""The route each API's Case calls, and the field the probe gives a value of the wrong
type, so a server that has the route refuses it (400/422) and generates nothing."""


def probe_routes(resolved: Resolved, timeout: float,
                 redact: Callable[[str], str]) -> ReadinessCheck:
    """POST a deliberately invalid body to the route(s) the Case uses (CTO_HARNESS_CASE_API):
    404/405 means the endpoint does not serve it; 401/403 that it wants another key; any
    other answer (400/422 from vLLM or SGLang, 500 from llama-cpp-python) that it has it."""
    if resolved.case_api not in CASE_APIS:
        return _check("route_served", "invalid",
                      f"{CASE_API_VAR} must be one of {', '.join(CASE_APIS)}, "
                      f"not {visible(resolved.case_api)!r}")
    apis = ["chat", "responses"] if resolved.case_api == "both" else [resolved.case_api]
    found = []
    for api in apis:
        route, field = ROUTE_PROBES[api]
        response, latency = _call(resolved, "POST", route, timeout, redact, "route_served",
                                  {"model": resolved.model, field: 0})
        if isinstance(response, ReadinessCheck):
            return response
        status = response.status_code
        if status in (404, 405):
            return _check("route_served", "missing",
                          f"POST /{route} is not served (HTTP {status}); the Case's "
                          f"{CASE_API_VAR}={resolved.case_api} needs it: serve it, or set "
                          f"{CASE_API_VAR} to the API your Case speaks", latency)
        if status in (401, 403):
            return _check("route_served", "error", f"POST /{route}: HTTP {status} in "
                          f"{latency:g} ms: {_status_hint(status, resolved.api_key is not None)}",
                          latency)
        # Any other answer comes from the route's own handler: llama-cpp-python's server
        # answers a body that fails its validation with a 500, vLLM and SGLang with 400/422.
        found.append(f"POST /{route} is served (HTTP {status} to a deliberately invalid "
                     f"request, {latency:g} ms)")
    return _check("route_served", "ok", "; ".join(found))


def check_model_served(model: str, ids: list[str], redact: Callable[[str], str]) -> ReadinessCheck:
    if model in ids:
        return _check("model_served", "ok", f"{model} is served")
    shown = ", ".join(redact(i) for i in ids[:MAX_MODELS_SHOWN]) or "nothing"
    more = f" and {len(ids) - MAX_MODELS_SHOWN} more" if len(ids) > MAX_MODELS_SHOWN else ""
    return _check("model_served", "missing",
                  f"{model} is not served; the endpoint lists {shown}{more}")


def _secret_redactor(resolved: Resolved) -> Callable[[str], str]:
    from core.secrets.redact import Redactor

    return Redactor(resolved.secrets()).redact


def check_readiness(
    resolved: Resolved,
    *,
    timeout: float = 3.0,
    redact: Callable[[str], str] | None = None,
) -> Readiness:
    """Every check, in order; a check that cannot run says which earlier one stopped it.

    `redact` defaults to a redactor of the resolved endpoint and API key."""
    redact = redact or _secret_redactor(resolved)
    config = check_endpoint_config(resolved)
    admission = check_admission(resolved.admission_file, resolved.provider, resolved.model)
    checks = [
        config,
        check_case_bin(resolved.case_bin),
        check_case_setup(resolved.case_args, resolved.case_env, resolved.case_stdin,
                         resolved.case_home_template, redact),
        _check("admission", _ADMISSION_STATE[admission.status], admission.detail),
    ]
    ids: list[str] | None = None
    if config.state == "ok":
        reachable, ids = probe_endpoint(resolved, timeout, redact)
    else:
        reachable = _check(_reach_name(resolved), "skipped",
                           f"endpoint config is {config.state}")
    checks.append(reachable)
    if ids is not None:
        checks.append(check_model_served(resolved.model, ids, redact))
        checks.append(probe_routes(resolved, timeout, redact))
    else:
        why = "no model list was read" if reachable.state != "skipped" else reachable.detail
        checks.append(_check("model_served", "skipped", why))
        checks.append(_check("route_served", "skipped", why))
    return Readiness(
        ready=all(c.state == "ok" for c in checks),
        checked_at=utcnow(),
        checks=checks,
        admission_status=admission.status,
        provider=resolved.provider,
        model=resolved.model,
    )
