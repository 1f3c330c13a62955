"""`cto-harness gates`: which SOT work items the recorded run evidence could unblock.

A gate rule maps an item to the evidence kinds that unblock it. Rules come from a TOML file
beside the SOT (`<stem>.gates.toml`, else `gates.toml`, or `--rules FILE`); without one they
are derived from the SOT's own words ("X remains blocked until ..."). Either way the SOT's
"a configured endpoint alone does not validate X" holds: no rule may let `endpoint-config`
alone unblock X. Evidence is only ever read from runs through `validate`; the SOT is never
written.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.errors import HarnessError
from core.evidence.criteria import Validation, Verdict
from core.evidence.runs import Unreadable, list_run_dirs, load_manifest
from core.evidence.validate import ACCEPTANCE, validate_run
from core.planning.sot import ITEM_ID, Section, Sot, SotLine, parse_sot

EvidenceKind = Literal["endpoint-config", "stage2-pass"]
KINDS: dict[str, str] = {
    "endpoint-config": "a non-demo run whose `endpoint_config_supplied` criterion is ok",
    "stage2-pass": "a non-demo run that `validate` accepts with the real model, admission, "
                   "no fallback and a discriminating same-run baseline",
}
CouldBe = Literal["unblockable", "still blocked", "no rule"]
FINISHED = ("passed", "failed", "blocked", "error", "cancelled", "timed_out")
CRITERIA = {cid: text for cid, text in ACCEPTANCE.items() if not text.startswith("(")}
"""The criteria that are CTO-WORK-030 acceptance lines: the harness's own (integrity,
isolation, signature, limits) are worded `(kind) ...` and are not."""

_BLOCKED_UNTIL = re.compile(rf"({ITEM_ID.pattern})\s+remains blocked until\s+(.+)", re.I)
_NOT_ALONE = re.compile(r"configured endpoint alone does not validate\s+(.+)", re.I)
_NEEDS_ENDPOINT = re.compile(r"endpoint config|CTO_HARNESS_CASE_LOCAL_BASE_URL is supplied",
                             re.I)
_NEEDS_STAGE2 = re.compile(r"stage 2 pass", re.I)


class RulesError(HarnessError):
    """A rules file that cannot be used; the message names the file, line and what to do."""


class Rule(BaseModel):
    item: str
    requires: list[EvidenceKind]
    source: str
    """Where the rule comes from: `rules.toml:3`, or the SOT line it was derived from."""


class RuleSet(BaseModel):
    origin: Literal["file", "sot-text"]
    path: str | None = None
    note: str
    rules: list[Rule] = Field(default_factory=list)
    not_alone: dict[str, str] = Field(default_factory=dict)
    """Items a configured endpoint alone does not validate, with the SOT place saying so."""
    unread: list[str] = Field(default_factory=list)
    """Gate sentences of the SOT whose condition names no known evidence kind."""

    def rule(self, item: str) -> Rule | None:
        return next((r for r in self.rules if r.item == item), None)


class RunEvidence(BaseModel):
    """What one run proves, as evidence kinds."""

    run_id: str
    status: str
    demo: bool
    proves: list[EvidenceKind]
    note: str = ""


class ItemGate(BaseModel):
    id: str
    title: str | None = None
    in_sot: bool
    line: int | None = None
    written_status: str | None = None
    could_be: CouldBe
    requires: list[EvidenceKind] = Field(default_factory=list)
    rule_source: str | None = None
    proven_by: dict[str, str] = Field(default_factory=dict)
    """Evidence kind -> the newest run that proves it."""
    missing: list[EvidenceKind] = Field(default_factory=list)
    """Evidence kinds no run proves yet."""
    notes: list[str] = Field(default_factory=list)


class AcceptanceRow(BaseModel):
    """One acceptance line, the criterion that proves it and that criterion's verdict."""

    text: str
    line: int
    column: int = 1
    criterion: str | None = None
    verdict: Verdict | None = None
    """From the latest real run; None when no run can prove the line, or none exists."""
    detail: str


class GateReport(BaseModel):
    sot: str
    flattened: bool
    rules: RuleSet
    runs_root: str
    runs: list[RunEvidence]
    """Every run seen, newest first."""
    latest_real_run: str | None = None
    latest_real_problems: list[str] = Field(default_factory=list)
    """What `validate` found wrong with that run (its verdicts below are only as good)."""
    items: list[ItemGate]
    kinds: dict[str, str] = Field(default_factory=lambda: dict(KINDS))
    """What each evidence kind means."""
    acceptance: dict[str, list[AcceptanceRow]] = Field(default_factory=dict)
    """For each item with lines that map onto `validate` criteria: every acceptance line."""


def _plain(text: str) -> str:
    return text.replace("`", "")


def _norm(text: str) -> str:
    """Words only: no code or emphasis marks, quotes, case, extra spaces, final stop."""
    marks = str.maketrans("", "", "`*\"'“”‘’")
    return " ".join(text.translate(marks).lower().split()).rstrip(".;")


_BY_WORDS = {_norm(text): cid for cid, text in CRITERIA.items()}


def match_criterion(line: str) -> str | None:
    """The criterion an acceptance line states, compared word for word once formatting is
    dropped; a reworded line is not guessed at (it could claim something else)."""
    return _BY_WORDS.get(_norm(line))


def _sot_lines(sot: Sot) -> list[SotLine]:
    sections: list[Section] = [*sot.items, *sot.sections]
    return [*sot.prose, *(line for s in sections for line in s.all_lines())]


def _not_alone(sot: Sot) -> dict[str, str]:
    """Items the SOT says a configured endpoint alone does not validate, with where."""
    found: dict[str, str] = {}
    for line in _sot_lines(sot):
        match = _NOT_ALONE.search(_plain(line.text))
        for item in ITEM_ID.findall(match.group(1)) if match else []:
            found.setdefault(item, f"SOT {sot.place(line.line, line.column)}")
    return found


def derive_rules(sot: Sot, looked_for: list[Path]) -> RuleSet:
    """Rules read from the SOT's own sentences: "X remains blocked until <condition>", the
    condition naming endpoint config and/or Stage 2 pass evidence; two such sentences for
    one item both apply."""
    names = ", ".join(p.name for p in looked_for)
    rules = RuleSet(origin="sot-text", not_alone=_not_alone(sot),
                    note=f"derived from the SOT's own words (no rules file: looked for "
                         f"{names} beside it)")
    for line in _sot_lines(sot):
        match = _BLOCKED_UNTIL.search(_plain(line.text))
        if match is None:
            continue
        item, condition = match.group(1), match.group(2)
        where = f"SOT {sot.place(line.line, line.column)}"
        kinds: list[EvidenceKind] = []
        if _NEEDS_ENDPOINT.search(condition):
            kinds.append("endpoint-config")
        if _NEEDS_STAGE2.search(condition):
            kinds.append("stage2-pass")
        rule = rules.rule(item)
        if not kinds:
            rules.unread.append(f"{where}: \"{item} remains blocked until ...\" names no "
                                f"evidence kind gates knows; declare {item} in a rules file")
        elif rule is None:
            rules.rules.append(Rule(item=item, requires=kinds, source=where))
        else:
            rule.requires = sorted({*rule.requires, *kinds})
            rule.source = f"{rule.source}; {where}"
    return rules


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", re.M)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def load_rules(path: Path, sot: Sot) -> RuleSet:
    """A TOML file of `ITEM-ID = ["kind", ...]`; the SOT's not-alone statements still hold."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})") from None
    rules = RuleSet(origin="file", path=str(path), note=f"from {path}",
                    not_alone=_not_alone(sot))
    for key, value in data.items():
        line = _key_line(text, key)
        where = f"{path}:{line}" if line else str(path)
        if not ITEM_ID.fullmatch(key):
            raise RulesError(f"{where}: `{key}` is not a work-item id like CTO-WORK-030")
        if not isinstance(value, list) or not value or not all(isinstance(v, str)
                                                               for v in value):
            raise RulesError(f'{where}: {key} must be a non-empty list of evidence kinds, '
                             f'e.g. {key} = ["stage2-pass"]')
        unknown = [v for v in value if v not in KINDS]
        if unknown:
            raise RulesError(f"{where}: {key}: unknown evidence kind {unknown[0]!r}; "
                             f"known: {', '.join(KINDS)}")
        if key in rules.not_alone and set(value) == {"endpoint-config"}:
            raise RulesError(f"{where}: {key} = [\"endpoint-config\"] contradicts the SOT "
                             f"({rules.not_alone[key]}): a configured endpoint alone does not "
                             f"validate {key}; add \"stage2-pass\"")
        rules.rules.append(Rule(item=key, requires=sorted(set(value)), source=where))
    return rules


def rules_candidates(sot_path: Path) -> list[Path]:
    return [sot_path.with_name(f"{sot_path.stem}.gates.toml"), sot_path.with_name("gates.toml")]


def rules_for(sot: Sot, rules_path: Path | None) -> RuleSet:
    if rules_path is not None:
        return load_rules(rules_path, sot)
    candidates = rules_candidates(Path(sot.path))
    found = next((p for p in candidates if p.is_file()), None)
    return load_rules(found, sot) if found else derive_rules(sot, candidates)


def run_evidence(validation: Validation) -> RunEvidence:
    """A demo run, or one whose evidence is not intact, proves nothing."""
    verdicts = {c.id: c.verdict for c in validation.criteria}
    ev = RunEvidence(run_id=validation.run_id, status=validation.status,
                     demo=validation.demo, proves=[])
    if validation.demo:
        ev.note = "demo run: never evidence for the real model"
    elif verdicts.get("evidence_intact") != "ok":
        ev.note = "; ".join(validation.problems[:2]) or "evidence not intact"
    else:
        if verdicts.get("endpoint_config_supplied") == "ok":
            ev.proves.append("endpoint-config")
        if validation.stage2_pass_evidence:
            ev.proves.append("stage2-pass")
    return ev


def _item_gate(item_id: str, item: Section | None, rules: RuleSet,
               runs: list[RunEvidence]) -> ItemGate:
    gate = ItemGate(id=item_id, in_sot=item is not None, could_be="no rule")
    if item is not None:
        gate.title, gate.line, gate.written_status = item.title, item.line, item.status
    else:
        gate.notes.append("not an item of this SOT (named by its gate sentences or rules)")
    if item_id in rules.not_alone:
        gate.notes.append(f"a configured endpoint alone does not validate it "
                          f"({rules.not_alone[item_id]})")
    rule = rules.rule(item_id)
    if rule is None:
        return gate
    gate.requires, gate.rule_source = list(rule.requires), rule.source
    for kind in rule.requires:
        proof = next((r for r in runs if kind in r.proves), None)
        if proof is None:
            gate.missing.append(kind)
        else:
            gate.proven_by[kind] = proof.run_id
    gate.could_be = "still blocked" if gate.missing else "unblockable"
    written = gate.written_status
    if written == "blocked" and not gate.missing:
        gate.notes.append("the evidence unblocks it; the SOT still says blocked "
                          "(gates never edits it)")
    elif written is not None and written != "blocked" and gate.missing:
        gate.notes.append(f"written `{written}`, but the evidence to unblock it is missing")
    return gate


def _unprovable(text: str) -> str:
    plain = _plain(text)
    if (m := _BLOCKED_UNTIL.search(plain)) is not None:
        return f"gate rule, not a run criterion: see the {m.group(1)} row"
    if _NOT_ALONE.search(plain):
        return "gate rule, not a run criterion: endpoint-config alone never unblocks these"
    if "target repository" in plain.lower():
        return ("not provable by a run: proven by tests/test_no_target_repo.py (the harness's "
                "opens and listings under an audit hook; every system call naming a path, "
                "from the harness, the Case and the checks, under strace, run from a target "
                "repository with the default runs root; a Case in its sandbox looking for "
                "the repository by its path finds nothing)")
    return "not provable by a run"


def _acceptance(item: Section, latest: Validation | None) -> list[AcceptanceRow] | None:
    mapped = [(line, match_criterion(line.text)) for line in item.acceptance]
    if not any(cid for _, cid in mapped):
        return None
    verdicts = {c.id: c for c in latest.criteria} if latest else {}
    rows = []
    for line, cid in mapped:
        row = AcceptanceRow(text=line.text, line=line.line, column=line.column, criterion=cid,
                            detail=_unprovable(line.text) if cid is None else "no real run yet")
        if cid is not None and cid in verdicts:
            row.verdict, row.detail = verdicts[cid].verdict, verdicts[cid].detail
        elif cid is not None and latest is not None:
            row.detail = f"run {latest.run_id} has no verdict for it ({latest.status})"
        rows.append(row)
    return rows


def evaluate(sot: Sot, rules: RuleSet, runs_root: Path,
             validations: list[Validation]) -> GateReport:
    """The gate of every item from validations given newest first; reads no file."""
    runs = [run_evidence(v) for v in validations]
    latest = next((v for v in validations if not v.demo and v.status in FINISHED), None)
    ids = [it.id for it in sot.items if it.id]
    extra = sorted(({r.item for r in rules.rules} | set(rules.not_alone)) - set(ids))
    items = [_item_gate(i, sot.item(i), rules, runs) for i in [*ids, *extra]]
    report = GateReport(sot=sot.path, flattened=sot.flattened, rules=rules,
                        runs_root=str(runs_root), runs=runs, items=items,
                        latest_real_run=latest.run_id if latest else None,
                        latest_real_problems=latest.problems if latest else [])
    for item in sot.items:
        rows = _acceptance(item, latest)
        if rows is not None and item.id:
            report.acceptance[item.id] = rows
    return report


def _started_at(run_dir: Path) -> str:
    try:
        manifest = load_manifest(run_dir)
    except Unreadable:
        return ""
    return manifest.started_at if manifest else ""


def runs_newest_first(runs_root: Path) -> list[Path]:
    """By start time (ms), not by folder name: names stamp only the second."""
    return sorted(list_run_dirs(runs_root), key=lambda d: (_started_at(d), d.name),
                  reverse=True)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _run_signature(run_dir: Path) -> tuple:
    """A finished run's every file (size, mtime); an unfinished one proves nothing yet, so
    its growing log does not count as a change."""
    if not (run_dir / "report.json").is_file():
        return ()
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    return tuple((str(p), _stat(p)) for p in files)


class GateWatcher:
    """Re-gates only when an input changed, re-validating only the runs that changed: the
    dashboard polls it; `gate` is its first poll."""

    def __init__(self, sot_path: Path, rules_path: Path | None, runs_root: Path) -> None:
        self.sot_path, self.rules_path, self.runs_root = sot_path, rules_path, runs_root
        self._signature: tuple | None = None
        self._validated: dict[Path, tuple[tuple, Validation]] = {}

    def _inputs(self) -> tuple[tuple, dict[Path, tuple]]:
        run_sigs = {d: _run_signature(d) for d in runs_newest_first(self.runs_root)}
        rules = [self.rules_path] if self.rules_path else rules_candidates(self.sot_path)
        signature = (_stat(self.sot_path), tuple(_stat(p) for p in rules),
                     tuple(run_sigs.items()))
        return signature, run_sigs

    def poll(self) -> GateReport | None:
        """A new report, or None when nothing changed since the last one; SotError or
        RulesError when the SOT or its rules cannot be read (once per change of them)."""
        signature, run_sigs = self._inputs()
        if signature == self._signature:
            return None
        self._signature = signature
        return self._build(run_sigs)

    def report(self) -> GateReport:
        """A report now, whether or not anything changed."""
        self._signature, run_sigs = self._inputs()
        return self._build(run_sigs)

    def _build(self, run_sigs: dict[Path, tuple]) -> GateReport:
        validated: dict[Path, tuple[tuple, Validation]] = {}
        for run_dir, sig in run_sigs.items():
            cached = self._validated.get(run_dir)
            validated[run_dir] = cached if cached and sig and cached[0] == sig else (
                sig, validate_run(run_dir))
        self._validated = validated
        sot = parse_sot(self.sot_path)
        return evaluate(sot, rules_for(sot, self.rules_path), self.runs_root,
                        [v for _, v in validated.values()])


def gate(sot_path: Path, rules_path: Path | None, runs_root: Path) -> GateReport:
    """Parse the SOT, find its rules, validate every run under the root, evaluate."""
    return GateWatcher(sot_path, rules_path, runs_root).report()


def evidence_summary(gate: ItemGate) -> str:
    """`RUN proves a, b; c: missing`: each proving run once, then what no run proves."""
    by_run: dict[str, list[str]] = {}
    for kind, run in gate.proven_by.items():
        by_run.setdefault(run, []).append(kind)
    parts = [f"{run} proves {', '.join(kinds)}" for run, kinds in by_run.items()]
    parts += [f"{kind}: missing" for kind in gate.missing]
    return "; ".join(parts) or "-"
