"""The redactor against an oracle of its own: every spelling the README promises, derived
by tests/support/secret_forms.py from the secret alone (never from `Redactor.forms`), written into
a text, and looked for in the redactor's output with a plain substring search."""

from __future__ import annotations

import itertools
import secrets
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.secrets.redact import Redactor
from tests.support.secret_forms import (
    PLAIN_ENCODINGS,
    Written,
    any_case,
    base64_writings,
    encode,
    in_base64,
    plain_writings,
    url_parts,
)
from tests.support.strategies import urls


def endpoint() -> str:
    return (f"https://case:{secrets.token_hex(5)}@spark-{secrets.token_hex(3)}.internal:8443"
            f"/v1/?key={secrets.token_hex(8)}&org={secrets.token_urlsafe(9)}")


def redacted(redactor: Redactor, text: str, cuts: list[int]) -> tuple[str, str]:
    """The text redacted whole, and streamed in pieces cut at `cuts`."""
    data = text.encode("utf-8", "surrogatepass")
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    stream = redactor.stream()
    out = b"".join(stream.feed(data[a:b]) for a, b in itertools.pairwise(bounds))
    return redactor.redact(text), (out + stream.flush()).decode("utf-8")


def test_the_oracle_derives_what_the_readme_lists() -> None:
    """The oracle itself, on a URL whose every part is known."""
    url = "https://u:p%21ss@Host.lan:8443/v1/?key=a+b&x=%2F"
    assert url_parts(url) == [
        url, "u:p%21ss@Host.lan:8443/v1/?key=a+b&x=%2F",
        "https://u:p%21ss@Host.lan:8443/v1?key=a+b&x=%2F",
        "u:p%21ss@Host.lan:8443/v1?key=a+b&x=%2F",
        "Host.lan:8443", "p%21ss", "p!ss", "a+b", "a b", "%2F", "/"]
    assert encode("a/b é", "percent") == "a%2Fb%20%C3%A9"
    assert encode("a/b é", "percent_keep_slash") == "a/b%20%C3%A9"
    assert encode("é/\U0001f600", "json_ascii_slash") == "\\u00e9\\/\\ud83d\\ude00"
    assert any_case("abc-d", 0b101) == "AbC-d"
    written = in_base64("secret!!", b"\x00", b"", url=False, padded=True, width=4)
    assert written.text.replace("\n", "") == "AHNlY3JldCEh"  # base64 of b"\0secret!!"
    assert written.must_not_survive == "NlY3JldCEh"  # chars 2..11: bits of the secret alone


@pytest.mark.parametrize("width", [None, 16, 64, 76])
def test_every_promised_spelling_of_an_endpoint_is_masked(width: int | None) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    writings = [*plain_writings(secret), *plain_writings(secret, mask=secrets.randbits(61)),
                *base64_writings(secret, width)]
    for written in writings:
        text = f"before {written.text} after\n"
        whole, streamed = redacted(redactor, text, [secrets.randbelow(len(text))
                                                    for _ in range(4)])
        for out in (whole, streamed):
            assert not written.survives_in(out), f"survived: {written.text[:12]}…"


def test_every_promised_spelling_of_an_api_key_is_masked() -> None:
    secret = "sk-" + secrets.token_urlsafe(18) + "/é€😀"
    redactor = Redactor({"api_key": secret})
    for written in [*plain_writings(secret, mask=secrets.randbits(61)),
                    *base64_writings(secret, width=None), *base64_writings(secret, width=16)]:
        whole, streamed = redacted(redactor, f"key={written.text};", [3, 9])
        assert not written.survives_in(whole) and not written.survives_in(streamed)


@st.composite
def writing(draw: st.DrawFn, secret: str) -> Written:
    part = draw(st.sampled_from(url_parts(secret)))
    if draw(st.booleans()):
        text = any_case(encode(part, draw(st.sampled_from(PLAIN_ENCODINGS))),
                        draw(st.integers(0, 2**61 - 1)))
        return Written(text, text, caseless=True)
    return in_base64(part, draw(st.binary(max_size=70)), draw(st.binary(max_size=8)),
                     url=draw(st.booleans()), padded=draw(st.booleans()),
                     width=draw(st.one_of(st.none(), st.integers(16, 100))),
                     newline=draw(st.sampled_from(["\n", "\r\n"])))


FILLER = st.text(string.printable + "é日", max_size=30)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, str], list[Written], str]:
    named = {"endpoint": draw(urls()),
             "api_key": draw(st.one_of(st.text(min_size=8, max_size=24),
                                       st.text(string.ascii_letters + "-_.~/", min_size=8,
                                               max_size=24)))}
    written = [draw(writing(draw(st.sampled_from(list(named.values())))))
               for _ in range(draw(st.integers(1, 4)))]
    text = "".join(draw(FILLER) + w.text for w in written) + draw(FILLER)
    return named, written, text


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario(), st.lists(st.integers(0, 10_000), max_size=8))
def test_no_promised_spelling_survives(case: tuple[dict[str, str], list[Written], str],
                                       cuts: list[int]) -> None:
    named, writings, text = case
    redactor = Redactor(named)
    whole, streamed = redacted(redactor, text, cuts)
    assert streamed == whole
    for written in writings:
        assert not written.survives_in(whole), written
