"""A copy of runs the real harness made, with what differs from one making to the next made
the same, so a snapshot of a screen drawn from them compares equal on every session.

Why a copy rewritten after the fact, not a fixed clock inside the harness: what varies is
not one clock. It is the wall clock (ids, trace times, report times), the monotonic one
(every duration and latency), the pid (in every run id, the sandbox's host uid), the
relay's ephemeral port, the checkout's and pytest's temporary paths, the upstream's answer
id and `created`, pytest's own timings in the checks' files — and the digests, the trace's
hash chain and the signatures that follow from all of them. A seam for each in the harness
would be a clock users could set on their evidence; here nothing of the harness changes.
What the copy keeps is everything else the harness wrote: which files, which events with
which fields, which lines of the log, the checks' results where the harness puts them (the
Baseline tab once read a path no real run has; a hand-made fixture did not notice).

The rewriting, per run (oldest first, the order the Runs screen lists them):
  - its id `<stamp>-<task>-<pid>` becomes `20260601T02MM00Z-<task>-<1001 + n>`, MM = 20 + n;
  - the i-th trace event's `ts` becomes that minute + i seconds; `started_at`,
    `finished_at` and `checked_at` take the time of the event they stand beside, any other
    time the time of the last event more than 50 ms before it + 0.5 s (an event closer
    than that may be one it caused, as the guard's trip after a refused request, written a
    millisecond before or after the ledger's line);
  - every number under a key ending in `_s`, `_ms` (durations, latencies) becomes 1.5 or
    150, and a duration in a sentence ("HTTP 200 in 152.6 ms", "(44 tok/s)") alike; pids,
    process start ticks, byte counts that follow a duration's digits fixed; the relay's
    port 40123; the upstream's answer and tool-call ids zeroed, and the exchanges' blobs
    that hold them renamed to their new SHA-256;
  - the demo Case's once-a-second progress lines dropped (how many depends on the pace),
    and the in-flight record removed (written only if a stream outlasts its 0.25 s period);
  - the temporary folder, the checkout and the interpreter's prefix become fixed paths;
then the trace's chain, the report's artifact digests, trace head and sha256, and the
attestation are redone with the suite's fixture key, which signed the originals too: the
dashboard's validation of the copy passes exactly as it did for what the harness wrote.
Jobs alike (`20260601T03MM00Z-<name>`), their job.json's trial ids following the runs'.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.evidence.attestation import sign_job, sign_run
from core.evidence.models import GENESIS_HASH, Report
from core.evidence.rundir import UNHASHED, artifact_digest, atomic_write_text, line_hash
from tests.support.harness import ROOT
from tests.support.signing import fixture_key

T0 = datetime(2026, 6, 1, 2, 20, 0, tzinfo=UTC)
TIE = timedelta(milliseconds=50)
"""Events this close before a time may as well have come after it: the relay's ledger line
and the guard's `guard_tripped` for the same request land a millisecond apart, in either
order from one making to the next."""
RUN_ID = re.compile(r"\b(\d{8}T\d{6}Z)-([a-z0-9][a-z0-9-]*?)-(\d+)\b")
JOB_ID = re.compile(r"\b(\d{8}T\d{6}Z)-([A-Za-z0-9][A-Za-z0-9._-]*)\b")
ISO = re.compile(r'"(\w+)": ?"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"')
BARE_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
DURATION = re.compile(r'"(\w+_(?:s|ms)|seconds)": ?(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)')
FIXED_NUMBERS = {"pid": 4242, "harness_pid": 4242, "harness_start_ticks": 424242,
                 "created": 1780280400, "created_at": 1780280400, "updated": 1780280400,
                 "bytes": 1000, "output_bytes": 1000, "bytes_read": 10000, "files_read": 10,
                 "entries": 10}
PORT = re.compile(r"127\.0\.0\.1:\d+")
UPSTREAM_ID = re.compile(r'"(chatcmpl|resp|msg|fc|call)([-_])[0-9a-f]{8,}"')
PYTEST_TIMES = [(re.compile(r'time="[\d.]+"'), 'time="0.001"'),
                (re.compile(r'timestamp="[^"]*"'), 'timestamp="2026-06-01T02:20:00"'),
                (re.compile(r'hostname="[^"]*"'), 'hostname="host"'),
                (re.compile(r"in \d+\.\d+s\b"), "in 0.10s"),
                (re.compile(r" at 0x[0-9a-f]+"), " at 0x7f0000000000"),
                (re.compile(r"/cto-harness-demo-[a-z0-9_]+"), "/cto-harness-demo"),
                (re.compile(r"\(\d+ tok/s\)"), "(40 tok/s)"),
                (re.compile(r"\b\d+(?:\.\d+)? ms\b"), "150 ms"),
                (re.compile(r"\b\d+\.\d+ s\b"), "1.5 s"),
                # the demo Case's progress, once a second: how many depends on the pace
                (re.compile(r"refcase:   … \d+ tokens streamed, 1\.5 s\n"), "")]
TEXT_SUFFIXES = {".json", ".jsonl", ".log", ".xml", ".txt", ".md"}


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class _Times:
    """A run's real times to fixed ones, keyed by its trace's events."""

    def __init__(self, trace: list[dict], base: datetime) -> None:
        self.base = base
        self.events = [(_parse(e["ts"]), base + timedelta(seconds=i), e["event"])
                       for i, e in enumerate(trace, start=1)]
        self.made = {stamp(fixed) for _, fixed, _ in self.events}

    def of_event(self, name: str) -> datetime:
        return next((fixed for _, fixed, event in self.events if event == name), self.base)

    def sub(self, text: str) -> str:
        """Every time in `text`: a keyed one by its key, any other (in a sentence) by the
        events before it; a time already fixed is left as it is."""
        text = ISO.sub(lambda m: m[0] if m[2] in self.made
                       else m[0].replace(m[2], self.fixed(m[1], m[2])), text)
        return BARE_ISO.sub(lambda m: m[0] if m[0] in self.made else self.fixed("", m[0]),
                            text)

    def fixed(self, key: str, ts: str) -> str:
        out = self._fixed(key, ts)
        self.made.add(out)
        return out

    def _fixed(self, key: str, ts: str) -> str:
        if key == "started_at":
            return stamp(self.base + timedelta(seconds=1))
        if key == "finished_at":
            return stamp(self.of_event("report_written"))
        if key == "checked_at":
            return stamp(self.of_event("readiness_checked"))
        real = _parse(ts) - TIE
        before = [fixed for at, fixed, _ in self.events if at <= real]
        return stamp(before[-1] + timedelta(seconds=0.5) if before else self.base)


def _common(text: str, paths: list[tuple[str, str]], ids: dict[str, str]) -> str:
    """What every file of a copy has rewritten: paths, ids, ports, durations, fixed numbers,
    the upstream's ids, pytest's timings."""
    for old, new in paths:
        text = text.replace(old, new)
    for old, new in ids.items():
        text = text.replace(old, new)
    text = PORT.sub("127.0.0.1:40123", text)
    text = DURATION.sub(lambda m: f'"{m[1]}":{" " if ": " in m[0] else ""}'
                        f'{150 if m[1].endswith("_ms") else 1.5}', text)
    for key, value in FIXED_NUMBERS.items():
        text = re.sub(rf'"{key}": ?-?\d+(?:\.\d+)?', lambda m, k=key, v=value:
                      f'"{k}": {v}' if ": " in m[0] else f'"{k}":{v}', text)
    text = UPSTREAM_ID.sub(lambda m: f'"{m[1]}{m[2]}00000000000000000000"', text)
    for pattern, fixed in PYTEST_TIMES:
        text = pattern.sub(fixed, text)
    return text


def _rewrite_files(root: Path, change: object) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix in TEXT_SUFFIXES:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            new = change(path, text)  # type: ignore[operator]
            if new != text:
                path.write_text(new, encoding="utf-8")


def _steady_blobs(folder: Path, paths: list[tuple[str, str]], ids: dict[str, str]
                  ) -> dict[str, str]:
    """The exchanges' blobs rewritten (a tool call's id is random, and the history that
    holds it is a blob), each renamed to the SHA-256 of its new bytes as the store names
    them; returns old name to new, for the files that refer to them."""
    renamed: dict[str, str] = {}  # each blob's path in its folder first, then its bare ref
    refs: dict[str, str] = {}
    for path in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
        data = _common(path.read_text(encoding="utf-8"), paths, ids).encode("utf-8")
        ref = hashlib.sha256(data).hexdigest()
        path.unlink()
        new = folder / ref[:2] / f"{ref}.json"
        new.parent.mkdir(exist_ok=True)
        new.write_bytes(data)
        renamed[f"{path.stem[:2]}/{path.stem}"] = f"{ref[:2]}/{ref}"
        refs[path.stem] = ref
    renamed.update(refs)
    for sub in folder.iterdir() if folder.is_dir() else []:
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    return renamed


def _steady_run(run: Path, n: int, paths: list[tuple[str, str]], ids: dict[str, str]) -> None:
    trace_path = run / "trace.jsonl"
    (run / "backend" / "exchanges" / "inflight.json").unlink(missing_ok=True)
    trace = [json.loads(line) for line in trace_path.read_text().splitlines()]
    times = _Times(trace, T0 + timedelta(minutes=n))

    ids = {**ids, **_steady_blobs(run / "backend" / "exchanges" / "blobs", paths, ids)}

    def change(path: Path, text: str) -> str:
        if path == trace_path or "blobs" in path.parts:  # done above
            return text
        return _common(times.sub(text), paths, ids)

    _rewrite_files(run, change)
    # the trace: each event's time by its place, then the chain redone
    lines, prev = [], GENESIS_HASH
    for event, (_, at, _) in zip(trace, times.events, strict=True):
        event["ts"] = stamp(at)
        event["prev"] = prev
        raw = _common(times.sub(json.dumps(event, ensure_ascii=False)), paths, ids).encode()
        lines.append(raw)
        prev = line_hash(raw)
    report_path = run / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        report["artifacts"] = {name: artifact_digest(run / name)
                               if digest != UNHASHED and not digest.startswith("unreadable")
                               else digest
                               for name, digest in report["artifacts"].items()
                               if (run / name).exists() or (run / name).is_symlink()}
        written = [i for i, e in enumerate(trace) if e["event"] == "report_written"]
        head = written[0] if written else len(lines)
        report["trace_head"] = {"seq": head, "hash": line_hash(lines[head - 1])}
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(report_path, text)
        after, lines, prev = lines[head:], lines[:head], line_hash(lines[head - 1])
        for raw_event in after:
            event = json.loads(raw_event)
            event["prev"] = prev
            if event["event"] == "report_written":
                event["report_sha256"] = hashlib.sha256(text.encode()).hexdigest()
            raw = json.dumps(event, ensure_ascii=False).encode()
            lines.append(raw)
            prev = line_hash(raw)
    trace_path.write_bytes(b"".join(line + b"\n" for line in lines))
    if report_path.is_file() and (run / "attestation.intoto.jsonl").is_file():
        text = report_path.read_text()
        sign_run(run, Report.model_validate_json(text), text, fixture_key())


def steady_copy(made_root: Path, dest: Path) -> dict[str, str]:
    """Copy the runs root `made_root` (runs, and jobs under `jobs/`) to `dest`, steadied as
    the module says; returns each old id (run or job) with its new one."""
    runs = sorted(p for p in made_root.iterdir() if RUN_ID.fullmatch(p.name))
    jobs = sorted(p for p in (made_root / "jobs").glob("*") if JOB_ID.fullmatch(p.name))
    ids: dict[str, str] = {}
    for n, run in enumerate(runs):
        match = RUN_ID.fullmatch(run.name)
        assert match is not None
        ids[run.name] = f"{stamp(T0 + timedelta(minutes=n))[:4]}0601T02{20 + n:02d}00Z-" \
                        f"{match[2]}-{1001 + n}"
        ids[str(1900000000 + int(match[3]))] = str(1900000000 + 1001 + n)  # its host uid
    for n, job in enumerate(jobs):
        match = JOB_ID.fullmatch(job.name)
        assert match is not None
        ids[job.name] = f"20260601T03{n:02d}00Z-{match[2]}"
    paths = sorted([(str(made_root.parent), "/tmp/cto-harness-test"),
                    (str(ROOT), "/src/cto-harness"),
                    (sys.base_prefix, "/usr/python")], key=lambda p: -len(p[0]))
    dest.mkdir(parents=True)
    for n, run in enumerate(runs):
        copy = dest / ids[run.name]
        shutil.copytree(run, copy, symlinks=True)
        _steady_run(copy, n, paths, ids)
    for n, job in enumerate(jobs):
        copy = dest / "jobs" / ids[job.name]
        shutil.copytree(job, copy, symlinks=True)
        base = T0 + timedelta(hours=1, minutes=n)

        def change(path: Path, text: str, base: datetime = base) -> str:
            text = ISO.sub(lambda m: m[0].replace(m[2], stamp(
                base if m[1] == "created_at" else base + timedelta(seconds=30))), text)
            return _common(text, paths, ids)

        _rewrite_files(copy, change)
        job_json = (copy / "job.json").read_bytes()
        data = json.loads(job_json)
        trials = {t["run_id"]: dest / t["run_id"] for t in data["trials"] if t.get("run_id")}
        if (copy / "attestation.intoto.jsonl").is_file():
            sign_job(copy, job_json, data["summary"], trials, fixture_key())
    return ids
