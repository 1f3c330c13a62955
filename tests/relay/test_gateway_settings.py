"""The run side's gateway settings as `resolve()` and readiness read them, without a gateway
running: each missing or malformed piece blocks with one line naming its variable, the
endpoint is not needed beside a gateway (and only masked when it is there anyway), and the
gateway's address is not treated as a secret (a report may name it)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from core.relay.gateway_state import GatewayStateError, Tokens, parse_ttl
from core.run.readiness import check_readiness
from core.settings import resolve
from tests.support.readiness import detail, states

PIN = "ab" * 32


def _token(tmp_path: Path) -> Path:
    path = tmp_path / "job.token"
    path.write_text("ctogw_" + secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("given", "names"), [
    ({"gateway_url": "https://gw.lan:7443/v1"}, "CTO_HARNESS_GATEWAY_FINGERPRINT"),
    ({"gateway_url": "https://gw.lan:7443/v1", "gateway_fingerprint": "not-hex"},
     "CTO_HARNESS_GATEWAY_FINGERPRINT"),
    ({"gateway_url": "http://gw.lan:7443/v1", "gateway_fingerprint": PIN},
     "CTO_HARNESS_GATEWAY_PLAIN_HTTP=allow"),
    ({"gateway_url": "gw.lan:7443", "gateway_fingerprint": PIN}, "CTO_HARNESS_GATEWAY_URL"),
    ({"gateway_url": "https://gw.lan:7443/v1", "gateway_fingerprint": PIN,
      "gateway_token_file": "/nonexistent/job.token"}, "CTO_HARNESS_GATEWAY_TOKEN_FILE"),
])
def test_each_bad_gateway_setting_blocks_with_one_line_naming_it(
        env: Callable[..., None], tmp_path: Path, given: dict[str, str], names: str) -> None:
    env(**{"gateway_token_file": str(_token(tmp_path)), **given})
    readiness = check_readiness(resolve(), timeout=1.0)
    assert states(readiness)["endpoint_config"] == "invalid"
    said = detail(readiness, "endpoint_config")
    assert said.startswith("gateway: ") and names in said and "\n" not in said
    assert states(readiness)["gateway"] == "skipped"


def test_a_token_file_other_accounts_can_read_is_refused(
        env: Callable[..., None], tmp_path: Path) -> None:
    token = _token(tmp_path)
    token.chmod(0o644)
    env(gateway_url="https://gw.lan:7443/v1", gateway_fingerprint=PIN,
        gateway_token_file=str(token))
    readiness = check_readiness(resolve(), timeout=1.0)
    said = detail(readiness, "endpoint_config")
    assert states(readiness)["endpoint_config"] == "invalid"
    assert "readable by other accounts (mode 0644)" in said and "chmod 600" in said


def test_a_gateway_needs_no_endpoint_and_masks_one_that_is_there(
        env: Callable[..., None], tmp_path: Path) -> None:
    token = _token(tmp_path)
    env(gateway_url="https://gw.lan:7443/v1", gateway_fingerprint=PIN.upper(),
        gateway_token_file=str(token))
    res = resolve()
    assert res.endpoint_usable and res.gateway is not None
    assert res.gateway.fingerprint == PIN and res.endpoint_source == "CTO_HARNESS_GATEWAY_URL"
    assert res.secrets() == {"api_key": token.read_text().strip()}  # the address is no secret

    secret = f"http://box:{secrets.token_hex(8)}@10.1.2.3:8000/v1"
    env(gateway_url="https://gw.lan:7443/v1", gateway_fingerprint=PIN,
        gateway_token_file=str(token), case_local_base_url=secret)
    res = resolve()
    assert res.endpoint is not None and res.endpoint.get_secret_value() == \
        "https://gw.lan:7443/v1"
    assert res.secrets()["endpoint"] == secret


def test_tokens_issued_at_once_are_all_kept(tmp_path: Path) -> None:
    """Each `gateway token` reads the book, adds one and writes it whole: under the lock,
    none of many at once is lost."""
    import concurrent.futures

    def issue(n: int) -> Path:
        return Tokens(tmp_path).issue(f"job{n}", parse_ttl("1h"), tmp_path / f"{n}.token").path

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(issue, range(24)))
    tokens = Tokens(tmp_path)
    assert [tokens.admit(f"Bearer {p.read_text().strip()}")[0] for p in paths] == [
        f"job{n}" for n in range(24)]


def test_tokens_expire_revoke_and_are_kept_only_as_hashes(tmp_path: Path) -> None:
    tokens = Tokens(tmp_path)
    issued = tokens.issue("nightly", parse_ttl("1h"), tmp_path / "out" / "t.token")
    token = issued.path.read_text().strip()
    assert tokens.admit(f"Bearer {token}") == ("nightly", None)
    assert token not in (tmp_path / "tokens.json").read_text()
    assert tokens.admit("Bearer nope")[1] == "the token is not one this gateway issued"
    assert "no bearer token" in (tokens.admit("")[1] or "")
    assert Tokens(tmp_path).revoke("nightly") == 1  # another process: read back at once
    assert "was revoked" in (tokens.admit(f"Bearer {token}")[1] or "")
    for bad in ("0", "soon", "5w"):
        with pytest.raises(GatewayStateError, match="--ttl"):
            parse_ttl(bad)
    with pytest.raises(GatewayStateError, match="--job"):
        tokens.issue("../escape", parse_ttl("1h"), tmp_path / "x.token")
