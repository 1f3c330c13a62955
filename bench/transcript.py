"""Benchmark: reading a large transcript lazily.

Writes a run's `backend/exchanges/` as the relay would for a long agent session — `--turns`
exchanges (default 5,000), each adding a tool result of `--kb` KiB (default 60: about
300 MB in all) to a history resent whole every turn, compacted (a new segment) whenever it
passes `--context-kb` (default 512 KiB, a model's context) — then, in a fresh process each
time (a dashboard opening the run), measures:

- the first screen: `Transcript(run).steps(0, 50)` — aim < 500 ms;
- a jump to the middle (`steps(turns, 50)`: every earlier exchange read once);
- everything (`all_steps()`, what an export does);

with the process's peak RSS after each (aim for the dashboard: < 300 MB).

    uv run python bench/transcript.py [--turns 5000] [--kb 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = """
import json, resource, sys, time
from pathlib import Path
from core.evidence.transcript import Transcript
run, offset, limit = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
t = Transcript(run)
steps = t.steps(offset, limit) if limit else t.all_steps()
took = time.perf_counter() - start
print(json.dumps({"ms": took * 1000, "steps": len(steps), "read": t.exchanges_read,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_run(run: Path, turns: int, kb: int, context_kb: int) -> float:
    from core.evidence.exchange_store import ExchangeStore, Recorded

    store = ExchangeStore(run / "backend" / "exchanges", lambda text: text)
    system = {"role": "system", "content": "You are a coding agent. " * 100}
    messages: list[dict] = [system, {"role": "user", "content": "Fix the failing tests."}]
    filler = "x" * (kb * 1024)
    start = time.perf_counter()
    for turn in range(1, turns + 1):
        call_id = f"call_{turn}"
        reply = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "shell", "arguments": json.dumps({"cmd": f"step {turn}"})}}]}
        store.write(Recorded(
            seq=turn, started="2026-06-01T00:00:00.000Z", ended="2026-06-01T00:00:01.000Z",
            method="POST", route="chat/completions", api="chat", status=200, stream=True,
            model_asked="m", model_answered="m", latency_ms=900.0, prompt_tokens=turn * 10,
            completion_tokens=20, error=None,
            request=json.dumps({"model": "m", "messages": messages}).encode(),
            response={"object": "chat.completion", "choices": [{"index": 0,
                                                                "message": reply}]}))
        messages += [reply, {"role": "tool", "tool_call_id": call_id,
                             "content": f"output of step {turn}\n{filler}"}]
        if (len(messages) - 2) * kb > context_kb:
            messages = [system, {"role": "user", "content": f"Summary of turns to {turn}."}]
    store.close()
    return time.perf_counter() - start


def probe(run: Path, offset: int, limit: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(run), str(offset), str(limit)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--kb", type=int, default=60)
    parser.add_argument("--context-kb", type=int, default=512)
    parser.add_argument("--keep", metavar="DIR", help="write the run there and keep it")
    args = parser.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-transcript-"))
    run = tmp / "run"
    try:
        took = write_run(run, args.turns, args.kb, args.context_kb)
        folder = run / "backend" / "exchanges"
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        e_size = sum(p.stat().st_size for p in (folder / "e").glob("*.json"))
        print(f"{args.turns} exchanges written in {took:.1f} s: {size / 1e6:.0f} MB on disk "
              f"({e_size / 1e6:.1f} MB of exchange files, the rest blobs)")
        for name, offset, limit in (("first screen", 0, 50),
                                    ("the middle", args.turns, 50),
                                    ("everything", 0, 0)):
            row = probe(run, offset, limit)
            print(f"  {name:<13} {row['ms']:8.0f} ms  {row['steps']:6d} steps  "
                  f"{row['read']:5d} exchanges read  peak RSS {row['rss_mb']:.0f} MB")
        print("  aims: first screen < 500 ms, RSS < 300 MB")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
