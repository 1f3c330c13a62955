"""The redactor against the known holes of the maskers people trust, and its promises."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
from urllib.parse import quote

import pytest

from core.secrets.forms import MIN_FORM_LEN
from core.secrets.logfilter import RedactingFilter
from core.secrets.matcher import PREFILTER_MIN
from core.secrets.redact import Redactor
from tests.support.secret_forms import survivors


def endpoint() -> str:
    return (f"https://case:{secrets.token_hex(5)}@spark-{secrets.token_hex(3)}.internal:8443"
            f"/v1/?key={secrets.token_hex(8)}")


def stream_all(redactor: Redactor, pieces: list[bytes]) -> bytes:
    stream = redactor.stream()
    return b"".join(stream.feed(p) for p in pieces) + stream.flush()


def assert_clean(named: dict[str, str], text: str) -> None:
    """No promised spelling of any secret is left, wrapped or not: the oracle's forms
    (tests/support/secret_forms.py, derived without the redactor) looked for as plain substrings."""
    assert survivors(text, named) == []


# -- GitHub Actions: line by line, padded base64 only, over-masks short secrets ---------


def test_github_hole_base64_wrapped_at_76_columns_is_masked() -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    for lead in range(3):  # the secret at each byte alignment of the blob
        blob = os.urandom(40 + lead) + secret.encode() + os.urandom(30)
        wrapped = base64.encodebytes(blob).decode()  # 76 columns, as base64(1) and MIME
        out = redactor.redact(f"attachment:\n{wrapped}")
        assert "[REDACTED:endpoint]" in out
        assert_clean({"endpoint": secret}, out)
        assert stream_all(redactor, [c.encode() for c in f"attachment:\n{wrapped}"]) == out.encode()


def test_github_hole_base64_with_a_suffix_inside_the_blob_is_masked() -> None:
    secret = secrets.token_urlsafe(24)
    redactor = Redactor({"api_key": secret})
    for lead in range(3):
        for alphabet in (base64.b64encode, base64.urlsafe_b64encode):
            blob = alphabet(b"x" * lead + f"Bearer {secret} trailing".encode()).decode()
            for text in (blob, blob.rstrip("=")):
                out = redactor.redact(f"header={text};")
                assert "[REDACTED:api_key]" in out
                assert_clean({"api_key": secret}, out)


def test_github_hole_short_secret_is_reported_not_masked() -> None:
    redactor = Redactor({"api_key": "k3y", "endpoint": endpoint()})
    assert "api_key:full" in redactor.unmaskable
    assert "k3y" not in json.dumps(redactor.unmaskable)
    assert all(len(f.value) >= MIN_FORM_LEN for f in redactor.forms)
    assert redactor.redact("monkey k3y business") == "monkey k3y business"


# -- GitLab: across writes, but restarts badly after a failed partial match ---------------


def test_gitlab_hole_restart_after_failed_partial_match() -> None:
    # GitLab's `aab` written as `xaa` + `abx`, at the 8-byte minimum: the partial match
    # "aaaaaaa" fails on the 8th "a" and the secret starts one byte later.
    secret = "a" * 7 + "b"
    redactor = Redactor({"token": secret})
    text = b"x" + b"a" * 8 + b"bx"
    for split in range(len(text) + 1):
        out = stream_all(redactor, [text[:split], text[split:]])
        assert out == b"xa[REDACTED:token]x", split


# -- Jenkins: one alternation, longest first: an overlapping secret's tail survives --------


def test_jenkins_hole_overlapping_secrets_leave_no_tail() -> None:
    redactor = Redactor({"first": "abcd1234", "second": "1234wxyz"})
    assert redactor.redact("<abcd1234wxyz>") == "<[REDACTED:first]>"
    assert redactor.redact_counted("abcd1234wxyz and 1234wxyz") == (
        "[REDACTED:first] and [REDACTED:second]", 2)
    text = b"<abcd1234wxyz>"
    for split in range(len(text) + 1):
        assert stream_all(redactor, [text[:split], text[split:]]) == b"<[REDACTED:first]>"


def test_secrets_starting_alike_are_named_by_the_longer_on_every_path() -> None:
    # Whole text of PREFILTER_MIN bytes and more goes through Hyperscan, which sees both
    # forms at the same start; 7-byte pieces go through the regex and walk, which sees the
    # longest only: the marker must not depend on which path ran.
    short = secrets.token_hex(5)
    longer = short + secrets.token_hex(3)
    redactor = Redactor({"api_key": short, "relay_token": longer})
    text = ("x" * PREFILTER_MIN + f" {longer} ").encode()
    whole = redactor.redact(text.decode())
    assert whole.endswith(" [REDACTED:relay_token] ")
    assert stream_all(redactor, [text[i:i + 7] for i in range(0, len(text), 7)]) == (
        whole.encode())


# -- the forms ----------------------------------------------------------------------------


def test_every_form_of_a_url_is_derived_and_masked() -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    kinds = {f.kind for f in redactor.forms}
    for kind in ("full", "no_scheme", "no_slash", "host_port", "userinfo_password",
                 "query:key", "percent", "percent_every_byte", "hex", "json_slash",
                 "base64:0", "base64:1", "base64:2", "base64:1:padded"):
        assert kind in kinds, kind
    url_safe = {f.kind for f in Redactor({"api_key": "??>>??>>~~~~"}).forms}
    assert {"base64:0", "base64url:0", "base64:2:end", "base64url:2:end"} <= url_safe
    for form in redactor.forms:
        out = redactor.redact(f"see {form.value}\n")
        assert form.value not in out, form.kind
        assert out.startswith("see [REDACTED:endpoint]"), form.kind


def test_json_escaped_and_percent_encoded_forms_in_any_case() -> None:
    secret = 'http://Spark-Box.Internal:8000/v1?key=a"b\\c'
    redactor = Redactor({"endpoint": secret})
    every_byte = "".join(f"%{b:02x}" for b in secret.encode())
    for text in (json.dumps({"url": secret}), json.dumps({"url": secret}).replace("/", "\\/"),
                 quote(secret, safe=""), quote(secret, safe="").lower(), every_byte,
                 secret.encode().hex().upper(), b"Spark-Box.Internal:8000".hex(),
                 "http://spark-box.internal:8000/v1", "spark-box.internal:8000"):
        assert "[REDACTED:endpoint]" in redactor.redact(text), text


@pytest.mark.parametrize("spelling", ["SPARK-{h}.INTERNAL:8443", "Spark-{h}.internal:8443",
                                      "HTTPS://case:{p}@sPaRk-{h}.InTeRnAl:8443/v1/",
                                      "https%3A%2F%2Fcase%3A{p}%40SPARK-{h}.INTERNAL%3a8443"])
def test_a_host_in_any_ascii_case_is_masked_on_every_path(spelling: str) -> None:
    host, password = secrets.token_hex(3), secrets.token_hex(5)
    secret = f"https://case:{password}@spark-{host}.internal:8443/v1/?key={secrets.token_hex(8)}"
    redactor = Redactor({"endpoint": secret})
    leak = spelling.format(h=host.upper(), p=password)
    small = f"upstream said: {leak} (retrying)\n"
    big = "x" * PREFILTER_MIN + small  # Hyperscan's path, where it is installed
    for text in (small, big):
        whole = redactor.redact(text)
        assert "[REDACTED:endpoint]" in whole and host.upper() not in whole.upper(), text[-80:]
        data = text.encode()
        for size in (1, 3, 64):
            pieces = [data[i:i + size] for i in range(0, len(data), size)]
            assert stream_all(redactor, pieces) == whole.encode(), size
    assert redactor.redact("spark-box.internal") == "spark-box.internal"  # another host


def test_secret_form_repr_hides_the_value() -> None:
    secret = secrets.token_hex(16)
    redactor = Redactor({"api_key": secret})
    assert secret not in repr(redactor.forms) and "api_key" in repr(redactor.forms[0])


def test_empty_mapping_is_identity() -> None:
    redactor = Redactor({})
    assert redactor.forms == [] and redactor.redact("anything") == "anything"
    assert stream_all(redactor, [b"a\xff", b"\xc3", b"\xa9\n"]) == "a\ufffdé\n".encode()


# -- the stream ---------------------------------------------------------------------------


def test_a_line_without_a_possible_prefix_comes_out_at_once() -> None:
    stream = Redactor({"endpoint": endpoint()}).stream()
    assert stream.feed(b"hello\n") == b"hello\n"
    assert stream.feed(b"2026 INFO tool call ok 0.25\n") == b"2026 INFO tool call ok 0.25\n"


def test_only_a_possible_start_of_a_secret_is_held_back() -> None:
    secret = endpoint()
    stream = Redactor({"endpoint": secret}).stream()
    head = secret[:20].encode()
    assert stream.feed(b"url=" + head) == b"url="
    assert stream.feed(secret[20:].encode() + b" ok\n") == b"[REDACTED:endpoint] ok\n"
    assert stream.redactions == 1


def test_utf8_split_across_chunks_and_invalid_bytes() -> None:
    redactor = Redactor({"endpoint": endpoint()})
    data = "naïve 日本 ✓\n".encode()
    assert stream_all(redactor, [data[i:i + 1] for i in range(len(data))]) == data
    assert stream_all(redactor, [b"bad \xff\xfe x\n", b"\xe6\x97"]) == (
        "bad \ufffd\ufffd x\n\ufffd".encode())


def test_endless_overlapping_chain_is_emitted_in_bounded_pieces() -> None:
    secret = "abcdeabc"  # period 5: "abcde" repeated is one chain of overlapping matches
    redactor = Redactor({"token": secret})
    stream = redactor.stream()
    emitted = b"".join(stream.feed(b"abcde" * 3200) for _ in range(32))  # 512 KB, one chain
    assert emitted, "the stream must not hold an endless chain whole"
    out = emitted + stream.flush()
    assert secret.encode() not in out and b"[REDACTED:token]" in out


def test_big_input_takes_the_prefilter_and_agrees_with_small_pieces() -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    lines = [f"line {i} " + (redactor.forms[i % len(redactor.forms)].value if i % 7 == 0 else "")
             for i in range(3000)]
    wrapped = base64.encodebytes(b"z" + secret.encode() * 3).decode()
    text = "\n".join(lines) + "\n" + wrapped
    whole = redactor.redact(text)  # above the prefilter's threshold: Hyperscan's path
    pieces = text.encode()
    assert stream_all(redactor, [pieces[i:i + 1000] for i in range(0, len(pieces), 1000)]) == (
        whole.encode())
    assert_clean({"endpoint": secret}, whole)


# -- logging ------------------------------------------------------------------------------


def test_logging_filter_masks_args_and_tracebacks() -> None:
    secret = endpoint()
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.addFilter(RedactingFilter(Redactor({"endpoint": secret})))
    logger = logging.getLogger(f"test-redact-{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("upstream %s failed", secret)
    try:
        raise ConnectionError(f"cannot reach {secret}")
    except ConnectionError:
        logger.exception("relay error for %r", {"url": secret})
    written = sink.getvalue()
    assert secret not in written and "ConnectionError" in written
    assert written.count("[REDACTED:endpoint]") == 3


# -- a real process printing the secret -----------------------------------------------------

CASE = textwrap.dedent("""
    import base64, json, os, sys, time
    from urllib.parse import quote
    secret = os.environ["HANDED_OVER"]
    forms = [secret, secret.split("://", 1)[1], quote(secret, safe=""), json.dumps(secret),
             base64.b64encode(b"k" + secret.encode()).decode(),
             base64.encodebytes(b"q" * 60 + secret.encode()).decode()]
    for form in forms:
        for ch in ("leak: " + form + "\\n").encode():
            os.write(1, bytes([ch]))
            time.sleep(0.0005)
""")


def test_a_process_printing_the_secret_byte_by_byte_leaks_nothing() -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    child = subprocess.Popen([sys.executable, "-c", CASE], stdout=subprocess.PIPE,
                             env={**os.environ, "HANDED_OVER": secret})
    assert child.stdout is not None
    stream, out = redactor.stream(), []
    while chunk := os.read(child.stdout.fileno(), 4096):
        out.append(stream.feed(chunk))
    out.append(stream.flush())
    assert child.wait(timeout=30) == 0
    log = b"".join(out).decode()
    assert log.count("[REDACTED:endpoint]") == stream.redactions == 6
    assert_clean({"endpoint": secret}, log)


@pytest.mark.parametrize("name", ["endpoint", "relay_token"])
def test_marker_names_the_secret(name: str) -> None:
    value = secrets.token_urlsafe(16)
    assert Redactor({name: value}).redact(value) == f"[REDACTED:{name}]"
