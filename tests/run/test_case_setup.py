"""The user's settings for a Case: argv placeholders {base_url} and {task}, the prompt on
stdin, CTO_HARNESS_CASE_ENV and the HOME template, each refused when it would hand the Case
a hosted provider or the secret; and the Case named in the manifest."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from core.evidence.runs import summarize
from core.run.caseconf import (
    CaseConfigError,
    case_argv,
    check_home_template,
    parse_env,
    recorded_env,
)
from tests.support.harness import CASE, Harness
from tui.widgets.runs_table import COLUMNS, cells, matches

SHOW = ("--mode show --task-file {task_file} --workspace {workspace} --model {model} "
        "--task-text {task} --show-env CTO_SHOW_URL,MSWEA_CONFIGURED,MY_API_KEY,SPACED")
HOSTILE_TASK = "Fix it.\n{model} {{braces}} {0} '\"$(rm -rf /)\" `x` \\ ; | & *\n"


def no_secret(text: str) -> str:
    return text


def shown(run_dir: str) -> dict:
    log = (Path(run_dir) / "backend" / "case.log").read_text()
    line = next(ln for ln in log.splitlines() if ln.startswith("show: "))
    return json.loads(line[len("show: "):])


# -- argv -------------------------------------------------------------------------------
def test_task_text_is_one_word_with_its_braces_and_quotes_unharmed() -> None:
    argv = case_argv("agent", "exec --prompt={task} {task} -c url={base_url}",
                     {"task": HOSTILE_TASK, "base_url": "http://127.0.0.1:5/v1"})
    assert argv == ["agent", "exec", "--prompt=" + HOSTILE_TASK, HOSTILE_TASK,
                    "-c", "url=http://127.0.0.1:5/v1"]


def test_literal_braces_and_bad_placeholders_are_named() -> None:
    assert case_argv("a", "-c x={{a}}", {})[1:] == ["-c", "x={a}"]
    with pytest.raises(CaseConfigError, match=r"CTO_HARNESS_CASE_ARGS uses an unknown "
                                              r"placeholder 'endpoint'.*\{task\}"):
        case_argv("a", "{endpoint}", {"task": "t"})
    with pytest.raises(CaseConfigError, match="malformed placeholder"):
        case_argv("a", "x={", {"task": "t"})


def test_a_prompt_over_the_kernels_word_limit_points_at_stdin() -> None:
    with pytest.raises(CaseConfigError, match="CTO_HARNESS_CASE_STDIN=task"):
        case_argv("a", "{task}", {"task": "x" * 200_000})


# -- environment ------------------------------------------------------------------------
def test_env_words_parse_with_quotes_and_newlines() -> None:
    assert parse_env("A=1 'B=two words'\nC= D=x=y") == [
        ("A", "1"), ("B", "two words"), ("C", ""), ("D", "x=y")]
    for bad, words in (("A", "not NAME=VALUE"), ("1A=x", "not NAME=VALUE"),
                       ("A=1 A=2", "A is set twice"), ("'A=1", "not a valid shell line")):
        with pytest.raises(CaseConfigError, match=words):
            parse_env(bad)


def test_credential_values_are_withheld_from_the_report() -> None:
    assert recorded_env({"MSWEA_CONFIGURED": "true", "GITHUB_TOKEN": "t", "MY_API_KEY": "k"}) \
        == {"MSWEA_CONFIGURED": "true", "GITHUB_TOKEN": None, "MY_API_KEY": None}


@pytest.mark.parametrize(("setting", "named"), [
    ("ANTHROPIC_API_KEY=" + "x" * 30, "ANTHROPIC_API_KEY is a hosted provider's variable"),
    ("MY_KEY=sk-ant-api03-" + "x" * 30, "value of MY_KEY holds an Anthropic key"),
    ("LLM_BASE=https://api.anthropic.com/v1", "value of LLM_BASE holds a hosted provider's"),
    ("PROXY=https://api.openai.com/v1", "value of PROXY holds a hosted provider's base URL"),
    ("MSWEA_MODEL_NAME=anthropic/claude-sonnet-4-6", "holds a hosted model"),
    ("OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_BASE_URL is set by the harness"),
    ("OPENAI_API_KEY=mine", "OPENAI_API_KEY is set by the harness"),
    ("CTO_HARNESS_CASE_MODEL=other", "CTO_HARNESS_CASE_MODEL is set by the harness"),
])
def test_a_hosted_provider_or_the_relays_own_variable_blocks_the_run(
        harness: Harness, setting: str, named: str) -> None:
    harness.env["CTO_HARNESS_CASE_ENV"] = f"MSWEA_CONFIGURED=true {setting}"
    ready = harness.run("readiness")
    assert ready.returncode == 3 and named in ready.stdout, ready.stdout
    code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert code == 3 and report["status"] == "blocked"
    assert report["case_process_started"] is False
    assert any(named in r and r.startswith("case_setup: CTO_HARNESS_CASE_ENV")
               for r in report["reasons"]), report["reasons"]
    value = setting.partition("=")[2]
    for path in Path(out["run_dir"]).rglob("*"):
        if path.is_file() and len(value) > 8:
            assert value not in path.read_text(errors="replace"), path


def test_the_private_endpoint_in_env_blocks_the_run(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_ENV"] = \
        f"MY_URL={harness.env['CTO_HARNESS_CASE_LOCAL_BASE_URL']}"
    ready = harness.run("readiness")
    assert ready.returncode == 3
    assert "value of MY_URL holds the private endpoint" in ready.stdout


def test_env_args_and_stdin_reach_the_case_and_the_report(harness: Harness) -> None:
    """The agent-shaped settings all at once: placeholders in _ENV and _ARGS, the task's
    text as one argument and on stdin, a credential-looking value withheld in the report."""
    token = secrets.token_hex(8)
    harness.env.update({
        "CTO_HARNESS_CASE_ARGS": SHOW,
        "CTO_HARNESS_CASE_ENV": f"CTO_SHOW_URL={{base_url}} MSWEA_CONFIGURED=true "
                                f"MY_API_KEY={token} 'SPACED=a b  {{model}}'",
        "CTO_HARNESS_CASE_STDIN": "task",
    })
    code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["case_process_started"], report["reasons"]
    seen = shown(out["run_dir"])
    task_text = (Path(out["run_dir"]) / "task" / "TASK.md").read_text()
    assert seen["stdin"] == task_text
    assert not seen["user"].startswith("error"), "agents ask who they are (Node's userInfo)"
    assert seen["argv"][seen["argv"].index("--task-text") + 1] == task_text
    url = seen["env"]["CTO_SHOW_URL"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert seen["env"]["MSWEA_CONFIGURED"] == "true"
    assert seen["env"]["SPACED"] == f"a b  {report['case_model']}"
    assert seen["env"]["MY_API_KEY"] == token
    assert report["case_setup"] == {
        "bin_name": CASE.name, "stdin": "task", "home_template": None,
        "env": {"CTO_SHOW_URL": url, "MSWEA_CONFIGURED": "true", "MY_API_KEY": None,
                "SPACED": f"a b  {report['case_model']}"}}
    assert token not in (Path(out["run_dir"]) / "report.json").read_text()
    manifest = json.loads((Path(out["run_dir"]) / "manifest.json").read_text())
    assert manifest["case_bin_name"] == CASE.name
    row = summarize(Path(out["run_dir"]))  # what the Runs table shows
    assert row.case == CASE.name and cells(row)[COLUMNS.index("engine")].plain == CASE.name
    assert matches(row, CASE.name.lower())
    assert report["relay"]["requests"] >= 1 and code in (0, 1)


def test_bad_stdin_value_is_one_line_naming_the_variable(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_STDIN"] = "prompt"
    ready = harness.run("readiness")
    assert ready.returncode == 3
    assert "CTO_HARNESS_CASE_STDIN must be 'none'" in ready.stdout
    assert "Traceback" not in ready.stderr


# -- HOME template ----------------------------------------------------------------------
@pytest.mark.parametrize(("name", "content", "named"), [
    (".env", "MSWEA_MODEL_NAME=anthropic/claude-sonnet-4-6\n", ".env holds a hosted model"),
    (".config/x/keys", "ANTHROPIC_API_KEY=abc\n", "keys holds a hosted provider's variable"),
    (".codex/auth.json", '{"key": "sk-ant-api03-abcdef"}', "auth.json holds an Anthropic key"),
])
def test_a_template_naming_a_hosted_provider_blocks_the_run(
        harness: Harness, tmp_path: Path, name: str, content: str, named: str) -> None:
    template = tmp_path / "home-template"
    (template / name).parent.mkdir(parents=True)
    (template / name).write_text(content)
    (template / ".aider.conf.yml").write_text("analytics-disable: true\n")
    harness.env["CTO_HARNESS_CASE_HOME_TEMPLATE"] = str(template)
    code, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert code == 3 and report["case_process_started"] is False
    assert any(r.startswith("case_setup: CTO_HARNESS_CASE_HOME_TEMPLATE") and named in r
               for r in report["reasons"]), report["reasons"]


def test_template_links_and_the_secret_are_refused(tmp_path: Path) -> None:
    secret = f"http://spark-{secrets.token_hex(4)}.lan:8000/v1"

    def redact(text: str) -> str:
        return text.replace(secret, "[REDACTED:endpoint]")

    template = tmp_path / "t"
    template.mkdir()
    (template / "notes").write_text(f"my box is {secret}\n")
    with pytest.raises(CaseConfigError, match="notes holds the private endpoint"):
        check_home_template(template, redact)
    (template / "notes").unlink()
    (template / "key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CaseConfigError, match="key is a link or special file"):
        check_home_template(template, redact)
    (template / "key").unlink()
    check_home_template(template, redact)
    with pytest.raises(CaseConfigError, match=r"cannot read .*No such file"):
        check_home_template(template / "missing", redact)
    (template / "file").write_text("x")
    with pytest.raises(CaseConfigError, match="is not a folder"):
        check_home_template(template / "file", redact)


def test_home_template_seeds_the_private_home_not_the_users(harness: Harness,
                                                           tmp_path: Path) -> None:
    template = tmp_path / "home-template"
    (template / ".config" / "agent").mkdir(parents=True)
    (template / ".config" / "agent" / "settings.toml").write_text("telemetry = false\n")
    (template / ".aider.conf.yml").write_text("analytics-disable: true\n")
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    harness.env.update({"CTO_HARNESS_CASE_ARGS": SHOW, "HOME": str(user_home),
                        "CTO_HARNESS_CASE_HOME_TEMPLATE": str(template)})
    _, out = harness.run_json("run", "--no-baseline")
    report = harness.report(out["run_dir"])
    assert report["case_process_started"], report["reasons"]
    assert report["case_setup"]["home_template"] == str(template)
    home = shown(out["run_dir"])["home"]
    assert home[".config/agent/settings.toml"] == "telemetry = false\n"
    assert home[".aider.conf.yml"] == "analytics-disable: true\n"
    kept = Path(out["run_dir"]) / "home"
    assert (kept / ".config" / "agent" / "settings.toml").read_text() == "telemetry = false\n"
    assert list(user_home.iterdir()) == []


def test_readiness_names_an_unknown_placeholder_before_any_run(harness: Harness) -> None:
    harness.env["CTO_HARNESS_CASE_ENV"] = "PROMPT={task}"
    ready = harness.run("readiness")
    assert ready.returncode == 3
    assert "CTO_HARNESS_CASE_ENV uses an unknown placeholder 'task'" in ready.stdout
    harness.env["CTO_HARNESS_CASE_ENV"] = ""
    harness.env["CTO_HARNESS_CASE_ARGS"] = "--url {endpoint}"
    ready = harness.run("readiness")
    assert "CTO_HARNESS_CASE_ARGS uses an unknown placeholder 'endpoint'" in ready.stdout
