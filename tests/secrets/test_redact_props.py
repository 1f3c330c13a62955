"""Property: whatever the secrets, the text and the chunking, the stream writes what the
whole text redacts to, and no form of any secret survives in it."""

from __future__ import annotations

import base64
import itertools

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.secrets.matcher import PREFILTER_MIN
from core.secrets.redact import Redactor
from tests.support.secret_forms import survivors
from tests.support.strategies import TOKEN, urls

SECRET = st.one_of(urls(), st.text(min_size=8, max_size=24), TOKEN.filter(lambda t: len(t) >= 8))


@st.composite
def scenario(draw: st.DrawFn) -> tuple[Redactor, bytes, dict[str, str]]:
    named = {"endpoint": draw(urls()), "api_key": draw(SECRET)}
    if draw(st.booleans()):  # an overlapping pair: the second starts with the first's tail
        first = named["api_key"]
        overlap = draw(st.integers(1, len(first)))
        named["relay_token"] = first[-overlap:] + draw(st.text(min_size=8, max_size=12))
    redactor = Redactor(named)
    markers = [f"[REDACTED:{name}]" for name in named]
    assume(not any(f.value in m for f in redactor.forms for m in markers))
    pieces: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        pieces.append(draw(st.text(max_size=40)).encode())
        choice = draw(st.integers(0, 9))
        if choice < 6 and redactor.forms:
            pieces.append(draw(st.sampled_from(redactor.forms)).value.encode())
        elif choice == 6:
            lead = draw(st.binary(max_size=70))
            pieces.append(base64.encodebytes(lead + named["endpoint"].encode() + b"!").rstrip())
        elif choice == 7 and "relay_token" in named:
            pieces.append((named["api_key"] + named["relay_token"]).encode())
        elif choice == 8:
            pieces.append(draw(st.binary(max_size=4)))  # often invalid UTF-8
        elif plain := [f for f in redactor.forms if "base64" not in f.kind]:
            pieces.append(draw(st.sampled_from(plain)).value.encode().swapcase())  # ASCII only
    return redactor, b"".join(pieces), named


def chunked(data: bytes, cuts: list[int], bytewise: bool) -> list[bytes]:
    """Random cuts, or every byte alone (for inputs short enough to keep the run quick)."""
    if bytewise and len(data) <= 400:
        return [data[i:i + 1] for i in range(len(data))]
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(scenario(), st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_stream_equals_whole_text_and_no_form_survives(
    case: tuple[Redactor, bytes, dict[str, str]], cuts: list[int], bytewise: bool
) -> None:
    redactor, data, named = case
    whole = redactor.redact(data.decode("utf-8", "replace"))
    stream = redactor.stream()
    streamed = b"".join(stream.feed(c) for c in chunked(data, cuts, bytewise)) + stream.flush()
    assert streamed == whole.encode()
    assert redactor.redact(whole) == whole
    assert survivors(whole, named) == []  # the oracle's forms, derived without the redactor
    assert stream.redactions == redactor.redact_counted(data.decode("utf-8", "replace"))[1]


PAD = b"".join(b"%05d INFO case: tool call passed 0.25\n" % i for i in range(120))


def sized(data: bytes, sizes: list[int]) -> list[bytes]:
    """Pieces of the given sizes in turn: small ones take the regex and walk, pieces of
    PREFILTER_MIN bytes and more take Hyperscan where it is installed."""
    pieces, pos, turn = [], 0, 0
    while pos < len(data):
        pieces.append(data[pos:pos + sizes[turn % len(sizes)]])
        pos, turn = pos + sizes[turn % len(sizes)], turn + 1
    return pieces


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(scenario(), st.lists(st.integers(32, 3 * PREFILTER_MIN), min_size=1, max_size=6),
       st.integers(0, len(PAD)))
def test_large_inputs_agree_whatever_the_search_path(
    case: tuple[Redactor, bytes, dict[str, str]], sizes: list[int], tail: int
) -> None:
    redactor, data, _named = case
    data = PAD + data + PAD[:tail]
    assert len(data) >= PREFILTER_MIN
    whole = redactor.redact(data.decode("utf-8", "replace"))
    stream = redactor.stream()
    streamed = b"".join(stream.feed(c) for c in sized(data, sizes)) + stream.flush()
    assert streamed == whole.encode()
    assert stream.redactions == redactor.redact_counted(data.decode("utf-8", "replace"))[1]


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.filter_too_much])
@given(scenario(), st.booleans())
def test_a_stream_fed_whole_lines_agrees_with_the_whole_text(
    case: tuple[Redactor, bytes, dict[str, str]], crlf: bool
) -> None:
    """What the relay feeds it (whole SSE lines, one read at a time): every chunk ends with
    a line break, so the quiet path (`Matcher.quiet`) is taken wherever it may be; a
    wrapped base64 form crossing those breaks is still masked whole."""
    redactor, data, named = case
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    lines = data.splitlines(keepends=True)
    whole = redactor.redact(data.decode("utf-8", "replace"))
    stream = redactor.stream()
    streamed = b"".join(stream.feed(line) for line in lines) + stream.flush()
    assert streamed == whole.encode()
    assert survivors(whole, named) == []
    assert stream.redactions == redactor.redact_counted(data.decode("utf-8", "replace"))[1]
