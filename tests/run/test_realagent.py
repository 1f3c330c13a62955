"""Real coding agents — aider, mini-swe-agent, Qwen Code, Codex CLI — run through
`cto-harness run` with the README's recipes, word for word, against the scripted endpoint.

The endpoint answers in a shape each agent acts on (aider's whole-file edit, mini's bash
block, plain text for Qwen Code and Codex), so each test proves the plumbing: the agent's
request went through the relay and is in the ledger with the answering model and its
tokens, the report and `validate` prove the model, the agent's state landed in the run's
private HOME and not the user's, and an endpoint answering as another model trips the guard
on each API (chat completions for three, the Responses API for Codex). Not that the agent
solves the task. The agents come from `tests/agents/install.py` (which `.ci/run` calls);
where one is not installed its tests skip with the installer's reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.evidence.transcript import Transcript
from core.standins.endpoint import Scripted, ScriptedCall, ScriptedEndpoint
from tests.agents.install import AGENTS, TOOLS, Agent, agents_dir, install, unavailable
from tests.support.harbor import assert_valid_atif
from tests.support.harness import QWEN, ROOT, Harness

pytestmark = pytest.mark.realagent

RUN_TIMEOUT_S = 150
"""Each agent's own timeout inside the harness (`--timeout`); the process gets more."""
SOLUTION = 'def slugify(text):\n    return "-".join(text.lower().split())\n'
MINI_ANSWER = (
    "THOUGHT: I write the function, then finish.\n\n```mswea_bash_command\nprintf '"
    + SOLUTION.replace("\n", "\\n")
    + "' > slugify.py && echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```\n"
)


@dataclass(frozen=True)
class Recipe:
    agent: Agent
    exports: dict[str, str]
    answer: str
    route: str
    state: str
    """Where in its HOME the agent keeps its state."""
    writes_solution: bool


def readme_recipe(name: str) -> dict[str, str]:
    """The `export` lines of the README's `# recipe: NAME` block, `$AGENTS` expanded."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"```sh\n# recipe: {re.escape(name)}\b[^\n]*\n(.*?)```", readme, re.S)
    assert block, f"README has no recipe block for {name}"
    exports = {}
    for line in block.group(1).splitlines():
        words = shlex.split(line.replace("$AGENTS", str(agents_dir())))
        assert words[0] == "export" and len(words) == 2, line
        key, _, value = words[1].partition("=")
        exports[key] = value
    return exports


RECIPES = {
    "aider": Recipe(AGENTS["aider"], readme_recipe("aider"),
                    f"slugify.py\n```python\n{SOLUTION}```\n", "/v1/chat/completions",
                    ".aider", True),
    "mini": Recipe(AGENTS["mini"], readme_recipe("mini-swe-agent"), MINI_ANSWER,
                   "/v1/chat/completions", ".config/mini-swe-agent", True),
    "qwen": Recipe(AGENTS["qwen"], readme_recipe("qwen-code"), "Done.",
                   "/v1/chat/completions", ".qwen", False),
    "codex": Recipe(AGENTS["codex"], readme_recipe("codex"), "Done.", "/v1/responses",
                    ".codex", False),
}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture(params=sorted(RECIPES))
def recipe(request: pytest.FixtureRequest) -> Recipe:
    chosen = RECIPES[request.param]
    problem = unavailable(chosen.agent)
    if problem:
        pytest.skip(f"{chosen.agent.name} not available: {problem}")
    return chosen


@pytest.fixture
def agent_harness(harness: Harness, upstream: ScriptedEndpoint, recipe: Recipe,
                  tmp_path: Path) -> Harness:
    """The harness configured from the recipe, with a user HOME the agent must not touch."""
    user_home = tmp_path / "user-home"
    (user_home / ".config").mkdir(parents=True)
    (user_home / ".bashrc").write_text("# the user's own\n")
    harness.env.update(recipe.exports)
    harness.env["HOME"] = str(user_home)
    upstream.responder = lambda messages: recipe.answer
    return harness


def run_agent(harness: Harness) -> tuple[dict, Path]:
    proc = harness.run("run", "--no-baseline", "--timeout", str(RUN_TIMEOUT_S), "--json",
                       timeout=RUN_TIMEOUT_S + 90)
    assert "Traceback" not in proc.stderr, proc.stderr
    run_dir = Path(json.loads(proc.stdout)["run_dir"])
    return harness.report(run_dir), run_dir


def ledger(run_dir: Path) -> list[dict]:
    lines = (run_dir / "backend" / "relay.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def explain(report: dict, run_dir: Path) -> str:
    log = (run_dir / "backend" / "case.log").read_text(errors="replace")[-3000:]
    return f"reasons: {report['reasons']}\ncase.log tail:\n{log}"


def test_agent_reaches_the_model_only_through_the_relay(
        agent_harness: Harness, upstream: ScriptedEndpoint, recipe: Recipe) -> None:
    user_home = Path(agent_harness.env["HOME"])
    before = tree(user_home)
    report, run_dir = run_agent(agent_harness)
    why = explain(report, run_dir)
    assert report["case_process_started"] and report["status"] != "error", why
    # Under the sandbox's seccomp filter (no AF_UNIX socket, no ptrace, no io_uring ...):
    # the Node agents (Qwen Code, Codex's launcher) and the Python ones run under it.
    assert report["case_sandbox"]["seccomp"] == "on", report["case_sandbox"]
    rows = [r for r in ledger(run_dir) if r["path"] == recipe.route]
    answered = [r for r in rows if r["status"] == 200]
    assert answered, f"no answered {recipe.route} in the ledger: {ledger(run_dir)}\n{why}"
    for row in answered:
        assert (row["model_asked"], row["model_answered"]) == (QWEN, QWEN), row
        assert row["prompt_tokens"] and row["completion_tokens"], row
    assert report["relay"]["models_seen"] == [QWEN]
    assert report["guard_state"] == "clear" and report["fallback_detected"] is False, why
    assert report["leak_detected"] is False, report["leaks"]  # its HOME holds no secret
    assert report["case_setup"]["bin_name"] == recipe.agent.command
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["case_bin_name"] == recipe.agent.command
    assert any(r.path == recipe.route for r in upstream.received)

    # Its state went to the run's private HOME; the user's is as it was.
    assert tree(user_home) == before
    assert (run_dir / "home" / recipe.state).exists(), sorted(tree(run_dir / "home"))
    if recipe.writes_solution:
        assert (run_dir / "workspace" / "slugify.py").read_text() == SOLUTION, why

    checked = agent_harness.run("validate", str(run_dir), "--json")
    verdicts = {c["id"]: c["verdict"] for c in json.loads(checked.stdout)["criteria"]}
    for criterion in ("model_proven", "provider_proven", "no_fallback",
                      "endpoint_not_written", "evidence_intact"):
        assert verdicts[criterion] == "ok", (criterion, checked.stdout)


def test_endpoint_answering_as_another_model_trips_the_guard(
        agent_harness: Harness, upstream: ScriptedEndpoint, recipe: Recipe) -> None:
    upstream.answer_model = "claude-sonnet-4-6"
    report, run_dir = run_agent(agent_harness)
    assert report["guard_state"] == "tripped", explain(report, run_dir)
    assert any(e["field"] == "model_answered" and "claude-sonnet-4-6" in e["detail"]
               for e in report["fallback_evidence"]), report["fallback_evidence"]
    swapped = [r for r in ledger(run_dir) if r["model_answered"] == "claude-sonnet-4-6"]
    assert swapped and all(r["path"] == recipe.route for r in swapped), ledger(run_dir)
    checked = agent_harness.run("validate", str(run_dir), "--json")
    verdicts = {c["id"]: c["verdict"] for c in json.loads(checked.stdout)["criteria"]}
    assert verdicts["no_fallback"] == "failed" and verdicts["model_proven"] == "failed"


def test_installer_is_quick_when_the_agents_are_there() -> None:
    """A second install finds every stamp and installs nothing: with no uv or npm on PATH
    it still says every agent is ok (the CI's cache)."""
    missing = {name: unavailable(agent) for name, agent in TOOLS.items()}
    if any(missing.values()):
        pytest.skip(f"agents not installed: {missing}")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "agents" / "install.py")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": ""})  # no uv, no npm: none is needed
    assert proc.returncode == 0 and proc.stdout.count(": ok (") == len(TOOLS), proc.stdout


def test_a_failed_install_leaves_its_reason_for_the_skip(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTO_HARNESS_AGENTS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "")  # no npm: the install cannot start
    agent = AGENTS["codex"]
    problem = install(agent)
    assert problem and "npm or node is not on PATH" in problem
    assert not agent.folder.exists()
    reason = unavailable(agent)
    assert reason and reason.startswith("@openai/codex==0.171.0 failed to install: npm or node")


# -- the conversation, rebuilt from the wire -----------------------------------------------
SHELL_COMMAND = "printf '" + SOLUTION.replace("\n", "\\n") + "' > slugify.py && cat slugify.py"
SHELL_TOOLS = ("run_shell_command", "shell", "exec_command", "local_shell", "bash")


def _tools(body: dict | None) -> dict[str, dict]:
    """The request's tools by name, in either API's shape, with their JSON Schema."""
    out = {}
    for tool in (body or {}).get("tools") or []:
        fn = tool.get("function", tool) if isinstance(tool, dict) else {}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") or {}
    return out


def _shell_arguments(schema: dict) -> dict:
    """Arguments for a shell tool from its schema: the command where it goes (a string,
    or argv for Codex's `shell`), every other required field a plain value of its type."""
    props = schema.get("properties") or {}
    args: dict = {}
    for name in set(schema.get("required") or []) | ({"command", "cmd"} & set(props)):
        kind = (props.get(name) or {}).get("type")
        if name in ("command", "cmd"):
            args[name] = ["bash", "-lc", SHELL_COMMAND] if kind == "array" else SHELL_COMMAND
        else:
            args[name] = {"boolean": False, "integer": 60000, "number": 60000,
                          "array": []}.get(kind, "write slugify.py")
    return args


def tool_responder(upstream: ScriptedEndpoint):
    """Calls the agent's own shell tool once (as its request lists it), then says Done."""
    def respond(messages: list[dict]) -> str | Scripted:
        if any(m.get("role") == "tool" for m in messages if isinstance(m, dict)):
            return "Done."
        tools = _tools(upstream.received[-1].body)
        name = next((t for t in SHELL_TOOLS if t in tools), None)
        if name is None:
            return "Done."
        return Scripted(calls=(ScriptedCall(name, _shell_arguments(tools[name])),))
    return respond


@pytest.mark.parametrize("recipe", ["qwen", "codex"], indirect=True)
def test_the_transcript_holds_the_prompt_the_tool_call_and_its_result(
        agent_harness: Harness, upstream: ScriptedEndpoint, recipe: Recipe,
        tmp_path: Path) -> None:
    upstream.responder = tool_responder(upstream)
    report, run_dir = run_agent(agent_harness)
    why = explain(report, run_dir)
    steps = Transcript(run_dir).all_steps()
    shown = [(s.source, s.first_line[:80], [c.name for c in s.tool_calls]) for s in steps]
    assert any(s.source == "user" and "slugify" in s.message for s in steps), (shown, why)
    calls = [(s, c) for s in steps for c in s.tool_calls]
    assert calls, (shown, why)
    step, call = calls[0]
    assert call.name in SHELL_TOOLS and call.problem is None, call
    assert "slugify.py" in json.dumps(call.arguments)
    bound = [o for o in step.observations if o.call_id == call.id]
    assert bound and bound[0].content, (shown, why)
    assert step.answer and step.model == QWEN
    assert any(s.answer and s.message.strip() == "Done." for s in steps), shown
    out = tmp_path / "trajectory.json"
    proc = agent_harness.run("transcript", str(run_dir), "--format", "atif", "--output",
                             str(out))
    assert proc.returncode == 0, proc.stderr
    assert_valid_atif(out)


@pytest.mark.parametrize("recipe", ["aider", "mini"], indirect=True)
def test_the_transcript_of_a_text_agent_holds_its_prompt_and_the_answer(
        agent_harness: Harness, recipe: Recipe) -> None:
    report, run_dir = run_agent(agent_harness)
    steps = Transcript(run_dir).all_steps()
    shown = [(s.source, s.first_line[:80]) for s in steps]
    assert any(s.source == "user" and "slugify" in s.message for s in steps), (
        shown, explain(report, run_dir))
    answers = [s for s in steps if s.answer]
    assert answers and all(s.model == QWEN and not s.problems for s in answers), shown
    assert answers[0].message == recipe.answer
