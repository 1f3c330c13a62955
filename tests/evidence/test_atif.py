"""`cto-harness transcript` and `job --export atif` on real runs the harness made (the test
Case's tool loop against the scripted endpoint answering with a tool call), validated by
Harbor's own models; and a hand-edited, hostile exchanges folder shown as what it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.evidence.exchange_store import ExchangeStore, Recorded
from core.evidence.exchanges import ExchangeFolder
from core.evidence.transcript import Transcript
from core.relay.recording import reassemble
from core.standins.endpoint import ScriptedEndpoint, tool_then_answer
from tests.support.case_runs import mode
from tests.support.harbor import assert_valid_atif
from tests.support.harness import Harness
from tests.support.secret_forms import survivors

SOLUTION = ('import re\nimport unicodedata\n\n\ndef slugify(text: str) -> str:\n'
            '    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore")'
            '.decode("ascii")\n    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")\n')
FINAL = "Done: slugify.py now passes."


def tool_run(harness: Harness, upstream: ScriptedEndpoint) -> Path:
    upstream.responder = tool_then_answer(
        "write_file", {"path": "slugify.py", "content": SOLUTION}, FINAL)
    mode(harness, "tools")
    code, out = harness.run_json("run")
    assert code == 0, harness.report(out["run_dir"])["reasons"]
    return Path(out["run_dir"])


def test_a_tool_loop_run_is_rebuilt_and_exports_atif_harbor_accepts(
        harness: Harness, upstream: ScriptedEndpoint, tmp_path: Path) -> None:
    run_dir = tool_run(harness, upstream)
    report = harness.report(run_dir)
    assert any(k.startswith("backend/exchanges/e/") for k in report["artifacts"])
    for path in (run_dir / "backend" / "exchanges").rglob("*"):
        if path.is_file():
            assert survivors(path.read_text(), {"endpoint": upstream.base_url}) == [], path
    validated = harness.run("validate", str(run_dir))
    assert validated.returncode == 0, validated.stdout + validated.stderr

    out = tmp_path / "trajectory.json"
    proc = harness.run("transcript", str(run_dir), "--format", "atif", "--output", str(out))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert_valid_atif(out)
    doc = json.loads(out.read_text())
    steps = doc["steps"]
    assert [s["source"] for s in steps] == ["system", "user", "agent", "agent"]
    assert steps[1]["message"] == "Make slugify() in slugify.py pass its tests."
    [call] = steps[2]["tool_calls"]
    assert call["function_name"] == "write_file"
    assert call["arguments"] == {"path": "slugify.py", "content": SOLUTION}
    [result] = steps[2]["observation"]["results"]
    assert result["source_call_id"] == call["tool_call_id"]
    assert result["content"] == f"wrote {len(SOLUTION)} characters to slugify.py"
    assert steps[2]["reasoning_content"] == "I should call write_file first."
    assert steps[3]["message"] == FINAL and steps[3]["model_name"] == upstream.model_id
    assert doc["final_metrics"]["total_steps"] == 4
    assert doc["final_metrics"]["total_prompt_tokens"] > 0
    assert doc["extra"]["unrebuilt"] == []

    markdown = harness.run("transcript", str(run_dir))
    assert markdown.returncode == 0
    assert "**tool call** `write_file`" in markdown.stdout and FINAL in markdown.stdout
    as_json = json.loads(harness.run("transcript", str(run_dir), "--format", "json").stdout)
    assert [s["source"] for s in as_json["steps"]] == ["system", "user", "agent", "agent"]


def test_a_job_exports_every_trial_as_atif(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "export"
    proc = harness.run("job", "--demo", "--task", "r1-string-slugify", "--export", "atif",
                       str(out), timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    index = json.loads((out / "index.json").read_text())
    [trial] = index["trials"]
    assert trial["steps"] >= 2 and trial["unrebuilt"] == []
    assert_valid_atif(out / trial["file"])
    # The same export of the job as it stands, without running it.
    again = tmp_path / "again"
    proc = harness.run("job", index["job_id"], "--export", "atif", str(again))
    assert proc.returncode == 0, proc.stderr
    assert (again / trial["file"]).read_text() == (out / trial["file"]).read_text()
    bad = harness.run("job", index["job_id"])
    assert bad.returncode == 2 and "--export" in bad.stderr and "Traceback" not in bad.stderr


# -- bad input ---------------------------------------------------------------------------
def recorded(seq: int, request: bytes, response: object = None, **kw: object) -> Recorded:
    base = dict(seq=seq, started="2026-06-01T00:00:00.000Z", ended="2026-06-01T00:00:01.000Z",
                method="POST", route="chat/completions", api="chat", status=200, stream=False,
                model_asked="m", model_answered="m", latency_ms=10.0, prompt_tokens=1,
                completion_tokens=1, error=None, request=request, response=response)
    base.update(kw)
    return Recorded(**base)  # type: ignore[arg-type]


def chat_body(*messages: dict) -> bytes:
    return json.dumps({"model": "m", "messages": list(messages)}).encode()


def answer(message: dict) -> dict:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}


def test_a_hostile_exchanges_folder_is_shown_as_what_it_is(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "backend").mkdir(parents=True)
    (run / "trace.jsonl").write_text("")
    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)
    user = {"role": "user", "content": "fix it"}
    bad_args = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "shell",
                                                      "arguments": '{"cmd": "ls'}}]}
    store.write(recorded(1, chat_body(user), answer(bad_args)))
    # A stream cut mid-event, reassembled as the relay does.
    cut = (b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"content":"lo"')
    body, problems, _ = reassemble(cut, "chat")
    store.write(recorded(2, chat_body(user, bad_args, {"role": "tool", "tool_call_id": "c1",
                                                       "content": "no such file"}),
                         body, problems=problems, stream=True))
    store.write(recorded(3, b"this is not JSON {", None, response_raw="<html>oops</html>",
                         status=502, error="upstream answered with a body that is not JSON"))
    store.write(recorded(4, chat_body({"role": "user", "content": "compacted"}),
                         answer({"role": "assistant", "content": "ok"})))
    store.close()
    folder = run / "backend" / "exchanges"
    # Hand edits: a blob replaced by a link, an exchange file by a FIFO, a garbage line.
    blob = next(p for p in (folder / "blobs").rglob("*.json")
                if json.loads(p.read_text()) == {"content": "compacted", "role": "user"})
    blob.unlink()
    blob.symlink_to("/etc/passwd")
    (folder / "e" / "000003.json").unlink()
    os.mkfifo(folder / "e" / "000003.json")
    with (folder / "index.jsonl").open("a") as fh:
        fh.write("{not json\n")

    transcript = Transcript(run)
    first = transcript.steps(0, 2)
    assert [s.source for s in first] == ["user", "agent"]
    assert transcript.exchanges_read < 5  # the first screen did not read everything
    steps = transcript.all_steps()
    problems = {p for s in steps for p in s.problems}
    call_step = steps[1]
    assert call_step.tool_calls[0].problem == "the arguments are not valid JSON"
    assert call_step.tool_calls[0].arguments_raw == '{"cmd": "ls'
    assert [o.content for o in call_step.observations] == ["no such file"]
    cut_step = steps[2]
    assert cut_step.message == "Hel"
    assert any("cut mid-event" in p for p in cut_step.problems)
    assert any("000003.json: a FIFO, not a regular file" in p for p in problems), problems
    assert any("symbolic link" in p for p in problems), problems
    assert any("index line 5 is not JSON" in p for p in problems), problems
    assert any(s.segment_start and "continues no earlier" in s.segment_start for s in steps)

    harness = Harness(env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                      runs_root=tmp_path)
    out = tmp_path / "t.json"
    proc = harness.run("transcript", str(run), "--format", "atif", "--output", str(out))
    assert proc.returncode == 0 and "could not be rebuilt" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_valid_atif(out)
    doc = json.loads(out.read_text())
    assert len(doc["extra"]["unrebuilt"]) >= 4
    md = harness.run("transcript", str(run))
    assert md.returncode == 0 and "could not be rebuilt whole" in md.stdout


def test_an_empty_run_exports_a_valid_trajectory_saying_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "trace.jsonl").write_text("")
    assert ExchangeFolder.of_run(run).entries() == []
    harness = Harness(env={**os.environ}, runs_root=tmp_path)
    out = tmp_path / "t.json"
    proc = harness.run("transcript", str(run), "--format", "atif", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert_valid_atif(out)
    assert "no model exchange" in json.loads(out.read_text())["steps"][0]["message"]


def test_a_long_conversation_stores_each_turn_by_what_it_adds(tmp_path: Path) -> None:
    """300 turns of a resent history: exchange files grow with what each turn adds, not
    with the history (a list is an earlier one's prefix plus the new references), and any
    exchange read alone, from a fresh reader, gives back its whole request."""
    run = tmp_path / "run"
    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)
    messages: list[dict] = [{"role": "system", "content": "be brief"}]
    sent = {}
    for turn in range(1, 301):
        messages.append({"role": "user", "content": f"turn {turn}"})
        body = chat_body(*messages)
        sent[turn] = json.loads(body)
        reply = {"role": "assistant", "content": f"answer {turn}"}
        store.write(recorded(turn, body, answer(reply)))
        messages.append(reply)
    store.close()
    folder = run / "backend" / "exchanges"
    sizes = [(folder / "e" / f"{n:06d}.json").stat().st_size for n in (10, 150, 290)]
    assert max(sizes) < 3 * min(sizes) + 4000, sizes  # not 30x: no whole history each time
    for seq in (1, 65, 200, 300):
        fresh = ExchangeFolder(folder)
        [entry] = [e for e in fresh.entries() if e.seq == seq]
        loaded = fresh.load(entry)
        assert loaded.problems == [] and loaded.request == sent[seq], seq
    steps = Transcript(run).all_steps()
    assert len(steps) == 1 + 300 * 2 and {s.segment for s in steps} == {1}


def test_previous_response_id_carries_only_new_items(tmp_path: Path) -> None:
    run = tmp_path / "run"
    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)

    def body(items: list, previous: str | None = None) -> bytes:
        data: dict = {"model": "m", "instructions": "be brief", "input": items}
        if previous:
            data["previous_response_id"] = previous
        return json.dumps(data).encode()

    call = {"type": "function_call", "call_id": "fc1", "name": "shell",
            "arguments": '{"cmd": "ls"}'}
    said = {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "two files"}]}
    user = {"type": "message", "role": "user", "content": [{"type": "input_text",
                                                            "text": "list files"}]}
    result = {"type": "function_call_output", "call_id": "fc1", "output": "a.py b.py"}
    for seq, items, previous, output, rid in (
            (1, [user], None, [call], "resp_1"),
            (2, [result], "resp_1", [said], "resp_2"),
            (3, [user], "resp_unknown", [said], "resp_3")):
        store.write(recorded(seq, body(items, previous),
                             {"object": "response", "id": rid, "output": output},
                             route="responses", api="responses"))
    store.close()
    steps = Transcript(run).all_steps()
    assert [(s.source, s.segment) for s in steps] == [
        ("system", 1), ("user", 1), ("agent", 1), ("agent", 1),
        ("system", 2), ("user", 2), ("agent", 2)]
    assert steps[2].tool_calls[0].arguments == {"cmd": "ls"}
    assert [(o.call_id, o.content) for o in steps[2].observations] == [("fc1", "a.py b.py")]
    assert steps[3].message == "two files"
    assert "resp_unknown" in (steps[4].segment_start or "")
