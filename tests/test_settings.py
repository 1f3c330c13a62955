"""Where the endpoint comes from (core/settings.py), as readiness reports it: missing, malformed,
the file form, a value and its file both set, an unreadable file, userinfo beside an API key;
no form of the value ever quoted."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from core.run.readiness import check_readiness
from core.settings import resolve
from core.standins.endpoint import ScriptedEndpoint
from tests.support.readiness import check, detail, states


def test_missing_url_says_every_way_to_supply_it(env: Callable[..., None], case_bin: Path,
                                                 admission: Path) -> None:
    env(case_bin=str(case_bin), case_model_admission_file=str(admission))
    readiness = check_readiness(resolve())
    assert not readiness.ready
    assert states(readiness)["endpoint_config"] == "missing"
    text = detail(readiness, "endpoint_config")
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE" in text and "dashboard" in text
    assert states(readiness)["endpoint_reachable"] == "skipped"
    assert states(readiness)["model_served"] == "skipped"
    assert "missing" in detail(readiness, "endpoint_reachable")


@pytest.mark.parametrize("url", ["ftp://box.lan/v1", "http://:8000/v1", "http://box.lan:99999/v1",
                                 "box.lan:8000"])
def test_malformed_url_is_invalid_and_never_quoted(env: Callable[..., None], url: str) -> None:
    env(case_local_base_url=url)
    readiness = check_readiness(resolve())
    assert states(readiness)["endpoint_config"] == "invalid"
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL" in detail(readiness, "endpoint_config")
    assert url not in readiness.model_dump_json()
    assert states(readiness)["endpoint_reachable"] == "skipped"


def test_the_file_form_is_read(env: Callable[..., None], tmp_path: Path, case_bin: Path,
                               admission: Path, upstream: ScriptedEndpoint) -> None:
    secret_file = tmp_path / "endpoint.url"
    secret_file.write_text(upstream.base_url + "\n")
    env(case_local_base_url_file=str(secret_file), case_bin=str(case_bin),
        case_model_admission_file=str(admission))
    readiness = check(upstream.base_url)
    assert readiness.ready
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE" in detail(readiness, "endpoint_config")


@pytest.mark.parametrize("var", ["base_url", "api_key"])
def test_a_value_and_its_file_both_set_is_invalid_not_a_silent_choice(
        env: Callable[..., None], tmp_path: Path, var: str) -> None:
    secret_file = tmp_path / "secret"
    value = f"http://box-{secrets.token_hex(3)}.lan:8000/v1"
    secret_file.write_text(value + "\n")
    endpoint = {"case_local_base_url": "http://box.lan:8000/v1"} if var == "api_key" else {}
    env(**endpoint, **{f"case_local_{var}": value, f"case_local_{var}_file": str(secret_file)})
    readiness = check_readiness(resolve())
    assert states(readiness)["endpoint_config"] == "invalid"
    text = detail(readiness, "endpoint_config")
    name = f"CTO_HARNESS_CASE_LOCAL_{var.upper()}"
    assert f"both {name} and {name}_FILE are set" in text
    assert value not in readiness.model_dump_json()


def test_unreadable_url_file_is_invalid(env: Callable[..., None], tmp_path: Path) -> None:
    env(case_local_base_url_file=str(tmp_path / "absent"))
    readiness = check_readiness(resolve())
    assert states(readiness)["endpoint_config"] == "invalid"
    assert "does not exist" in detail(readiness, "endpoint_config")


def test_userinfo_and_an_api_key_both_set_is_named_as_the_conflict(
        env: Callable[..., None], case_bin: Path, admission: Path,
        upstream: ScriptedEndpoint) -> None:
    user, password, key = secrets.token_hex(4), secrets.token_hex(8), secrets.token_hex(16)
    url = f"http://{user}:{password}@127.0.0.1:{upstream.port}/v1"
    env(case_local_base_url=url, case_local_api_key=key, case_bin=str(case_bin),
        case_model_admission_file=str(admission))
    readiness = check(url)
    assert not readiness.ready and states(readiness)["endpoint_config"] == "invalid"
    said = detail(readiness, "endpoint_config")
    assert "CTO_HARNESS_CASE_LOCAL_BASE_URL" in said and "CTO_HARNESS_CASE_LOCAL_API_KEY" in said
    assert "user:password" in said and "refused the API key" not in said
    dumped = readiness.model_dump_json()
    assert all(v not in dumped for v in (user, password, key))
    assert upstream.received == []  # judged by shape, never sent
