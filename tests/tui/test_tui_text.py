"""The dashboard's pure parts: making Case output inert, following a run by offset, and
what the Live panels say about each kind of run."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from core.evidence.follow import RunTail
from core.secrets.redact import Redactor
from tests.support.tui_fixtures import QWEN, make_running, make_runs_root
from tui.live_state import RunView
from tui.terminal_text import MAX_LINE, clean_line, clean_lines


def test_escape_sequences_never_survive() -> None:
    raw = (b"\x1b[31mred\x1b[0m \x1b]52;c;aGk=\x07copy \x1b]0;title\x1b\\t \x1b[2J\x1b[10;4Hcur"
           b" \xc2\x9b2Jc1 \x1bPdcs\x1b\\end")
    text = clean_line(raw)
    assert text == "red copy t cur c1 end"
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def test_bare_control_bytes_become_visible_symbols() -> None:
    assert clean_line("bell\x07 nul\x00 bs\x08") == "bell␇ nul␀ bs␈"


def test_invisible_format_characters_that_reorder_or_hide_text_become_visible() -> None:
    # "trojan source": a bidi override makes the terminal show text in another order
    text = clean_line("ok \u202eevil\u202c \u2066x\u2069 zero\u200bwidth line\u2028sep\ufeff")
    assert text == "ok �evil� �x� zero�width line�sep�"


def test_carriage_return_progress_keeps_its_last_state() -> None:
    assert clean_line(b"10%\r50%\r100% done\r\n") == "100% done"


def test_long_lines_are_cut_with_a_marker_saying_how_much() -> None:
    text = clean_line("y" * (MAX_LINE + 500))
    assert text.startswith("y" * MAX_LINE)
    assert text.endswith("[cut: 500 more characters]")
    huge = clean_line("z" * 10_000_000)
    assert len(huge) < MAX_LINE + 60 and "9,998,000 more" in huge


def test_redaction_comes_before_the_cut_so_no_start_of_a_secret_shows() -> None:
    key = secrets.token_hex(16)
    redact = Redactor({"api_key": key}).redact
    [cut] = clean_lines([("x" * (MAX_LINE - 10) + key).encode()], redact)
    assert key[:6] not in cut and "REDACTED" in cut and cut.endswith("more characters]")
    batch = clean_lines([b"a " + key.encode(), b"plain", b"\x1b[31m" + key.encode() + b"\x1b[0m"],
                        redact)
    assert len(batch) == 3 and batch[1] == "plain"
    assert all(key[:6] not in text and "REDACTED" in text for text in (batch[0], batch[2]))
    assert clean_lines([b"\x07" + key.encode()], str) == ["␇" + key]  # no secrets known


def view_of(run_dir: Path) -> RunView:
    view = RunView()
    tail = RunTail(run_dir)
    while batch := tail.poll():
        view.apply(batch)
    return view


def test_panels_of_a_passed_run(tmp_path: Path) -> None:
    view = view_of(make_runs_root(tmp_path)["passed"])
    assert view.readiness_panel().state == "ready"
    assert view.admission_panel().state == "admitted"
    guard = view.guard_panel()
    assert (guard.state, guard.tone, guard.reason) == ("clear", "ok", f"3 requests, all {QWEN}")
    # zero counts left out: cut at 80 columns, the panel still says what matters
    assert view.relay_panel().reason.startswith("3 requests · ")
    assert "refused" not in view.relay_panel().reason
    assert "error" not in view.relay_panel().reason
    assert view.readiness_panel().reason == "1 check ok"  # said as a person would
    assert view.results_line() == ("checks 3/3 passed · fake baseline failed (0/3) · "
                                   "discriminating: real passed, fake failed")
    stages = view.timeline(now=0)
    assert stages[0].event == "run_started" and stages[-1].event == "run_finished"
    assert all(s.mark == "done" for s in stages)


def test_panels_of_a_tripped_run_name_the_refused_model_and_time(tmp_path: Path) -> None:
    view = view_of(make_runs_root(tmp_path)["tripped"])
    guard = view.guard_panel()
    assert (guard.state, guard.tone) == ("tripped", "bad")
    assert guard.reason == "relay refused claude-sonnet-4-6 at 02:23:07"
    assert view.relay_panel().state == "refused", "finished: the relay is down, not refusing"
    assert " · 1 refused · " in view.relay_panel().reason  # a count that is not zero stays
    assert any(s.mark == "alarm" and s.event == "guard_tripped" for s in view.timeline(0))


def test_panels_of_a_blocked_run_say_what_is_missing(tmp_path: Path) -> None:
    view = view_of(make_runs_root(tmp_path)["blocked"])
    readiness = view.readiness_panel()
    assert (readiness.state, readiness.tone) == ("blocked", "bad")
    assert readiness.reason == "CTO_HARNESS_CASE_LOCAL_BASE_URL is not set"
    assert view.guard_panel().reason == "the Case never started"
    assert "case_process_started" not in [s.event for s in view.timeline(0)]


def test_a_run_in_flight_marks_its_current_stage_and_what_is_to_come(tmp_path: Path) -> None:
    view = view_of(make_running(tmp_path).paths.root)
    stages = view.timeline(now=10**10)
    current = [s for s in stages if s.mark == "current"]
    # the stage under way is the one still to come: the Case runs until case_process_exited
    assert [s.event for s in current] == ["case_process_exited"]
    assert current[0].duration_s is not None and current[0].duration_s > 0
    started = next(s for s in stages if s.event == "case_process_started")
    assert started.mark == "done" and started.duration_s == pytest.approx(0.1)
    assert stages[-1] == stages[-1].__class__("run_finished", "", None, "todo")
    view.alive = False
    assert view.status == "interrupted"
    assert not [s for s in view.timeline(now=10**10) if s.mark in ("current", "todo")]
