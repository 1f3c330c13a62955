"""What the user tells the Case beyond the task: argv placeholders, extra environment,
the prompt on stdin, and a template for its private $HOME.

Real agents need their own non-secret settings (mini-swe-agent's `MSWEA_CONFIGURED`,
Codex's provider on its command line, Qwen Code's `OPENAI_MODEL`), the relay's URL where
they do not read `OPENAI_BASE_URL`, and the task's text as an argument or on stdin. None of
it may open a way around the relay: a hosted provider's key, base URL or model in any of
it refuses the run with one line naming the variable (or file), and the relay's own
variables cannot be overridden.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from core.errors import HarnessError
from core.evidence.models import ReadinessCheck
from core.settings.hosted import hosted_finding, hosted_name

ARGS_VAR = "CTO_HARNESS_CASE_ARGS"
ENV_VAR = "CTO_HARNESS_CASE_ENV"
STDIN_VAR = "CTO_HARNESS_CASE_STDIN"
HOME_TEMPLATE_VAR = "CTO_HARNESS_CASE_HOME_TEMPLATE"
STDIN_MODES = ("none", "task")

ENV_PLACEHOLDERS = ("task_file", "workspace", "model", "provider", "base_url")
ARGS_PLACEHOLDERS = (*ENV_PLACEHOLDERS, "task")
"""What `{name}` may stand for in CTO_HARNESS_CASE_ARGS; _ENV has all but the prompt."""

RELAY_OWNED = frozenset({"OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY", "HOME"})
"""Set by the harness for every run: the relay's URL and token, the private HOME."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CREDENTIAL|COOKIE", re.IGNORECASE)
MAX_ARG_BYTES = 128 * 1024 - 1
"""Linux refuses one argv word longer than MAX_ARG_STRLEN (32 pages)."""
TEMPLATE_MAX_FILES = 2000
TEMPLATE_MAX_FILE_BYTES = 1 << 20


class CaseConfigError(HarnessError):
    """A Case setting is unusable or unsafe; the message is one line naming the variable."""


# -- argv -------------------------------------------------------------------------------
def format_words(words: list[str], values: dict[str, str], var: str) -> list[str]:
    """Each word with its `{placeholders}` filled. The words were split first, so a value
    (a path with spaces, a prompt full of quotes and braces) stays one word, untouched:
    `str.format` never re-reads what it substitutes. Literal braces are `{{` and `}}`."""
    try:
        return [w.format(**values) for w in words]
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        names = ", ".join("{" + k + "}" for k in values)
        what = f"an unknown placeholder {exc}" if isinstance(exc, KeyError | IndexError) \
            else f"a malformed placeholder ({exc}; write a literal brace as {{{{ or }}}})"
        raise CaseConfigError(f"{var} uses {what}; it may use only {names}") from None


def split_words(text: str, var: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise CaseConfigError(f"{var} is not a valid shell line ({exc})") from None


def case_argv(case_bin: str, template: str, values: dict[str, str]) -> list[str]:
    """`[bin, *args]` from CTO_HARNESS_CASE_ARGS; placeholders only from `values`, so the
    endpoint cannot be put in argv."""
    argv = [case_bin, *format_words(split_words(template, ARGS_VAR), values, ARGS_VAR)]
    for word in argv:
        if len(os.fsencode(word)) > MAX_ARG_BYTES:
            raise CaseConfigError(
                f"{ARGS_VAR}: an argument would be over {MAX_ARG_BYTES // 1024} KiB (the "
                f"kernel's limit for one word); feed a long prompt on stdin ({STDIN_VAR}=task)")
    return argv


# -- environment ------------------------------------------------------------------------
def parse_env(text: str | None) -> list[tuple[str, str]]:
    """CTO_HARNESS_CASE_ENV: shell words `NAME=VALUE` (quote a value holding spaces;
    newlines separate words like spaces). Each name once."""
    pairs: list[tuple[str, str]] = []
    for word in split_words(text or "", ENV_VAR):
        name, eq, value = word.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise CaseConfigError(f"{ENV_VAR}: {shlex.quote(word)[:60]} is not NAME=VALUE "
                                  "(a name of letters, digits and _)")
        if any(name == seen for seen, _ in pairs):
            raise CaseConfigError(f"{ENV_VAR}: {name} is set twice")
        pairs.append((name, value))
    return pairs


def env_problem(name: str, value: str) -> str | None:
    """Why the Case must not get NAME=VALUE, in words that never quote the value."""
    if name in RELAY_OWNED or name.startswith("CTO_HARNESS_"):
        return f"{ENV_VAR}: {name} is set by the harness (the relay's URL and token, the " \
               "private HOME) and cannot be overridden"
    if hosted_name(name):
        return f"{ENV_VAR}: {name} is a hosted provider's variable; the Case may use only " \
               "the relay"
    found = hosted_finding(value)
    if found:
        return f"{ENV_VAR}: the value of {name} holds {found}; the Case may use only the relay"
    return None


def check_env(pairs: list[tuple[str, str]], redact: Callable[[str], str]) -> None:
    for name, value in pairs:
        problem = env_problem(name, value)
        if problem is None and redact(value) != value:
            problem = f"{ENV_VAR}: the value of {name} holds the private endpoint (a secret)"
        if problem:
            raise CaseConfigError(problem)


def case_env(text: str | None, values: dict[str, str],
             redact: Callable[[str], str]) -> dict[str, str]:
    """The extra environment for one run, placeholders filled, checked once more filled."""
    pairs = parse_env(text)
    filled = format_words([v for _, v in pairs], values, ENV_VAR)
    result = [(name, value) for (name, _), value in zip(pairs, filled, strict=True)]
    check_env(result, redact)
    return dict(result)


def recorded_env(env: dict[str, str]) -> dict[str, str | None]:
    """What the report keeps: every name; the value unless the name says it is a
    credential (`*_KEY`, `*TOKEN*`, …), which is kept as null. Values reaching here passed
    the hosted-provider check and the redactor, so the rest hold no secret we know of."""
    return {name: None if _CREDENTIAL_NAME.search(name) else value
            for name, value in env.items()}


# -- stdin ------------------------------------------------------------------------------
def stdin_mode(text: str | None) -> str:
    mode = (text or "none").strip()
    if mode not in STDIN_MODES:
        raise CaseConfigError(f"{STDIN_VAR} must be 'none' (the default: /dev/null) or "
                              f"'task' (the prompt's text), not {mode[:40]!r}")
    return mode


# -- HOME template ----------------------------------------------------------------------
def check_home_template(template: Path, redact: Callable[[str], str]) -> None:
    """Every file of the template read before the run: a hosted provider's key, base URL or
    model, or the private endpoint, refuses it; so do links and special files (a link out
    of the template would bring the user's own files in) and what is too big to check."""
    var = HOME_TEMPLATE_VAR
    try:
        if not stat.S_ISDIR(template.stat().st_mode):
            raise CaseConfigError(f"{var}: {template} is not a folder")
    except OSError as exc:
        raise CaseConfigError(f"{var}: cannot read {template} ({exc.strerror})") from None
    count = 0
    for folder, dirs, files in os.walk(template, onerror=_raise_walk_error):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            shown = path.relative_to(template)
            count += 1
            if count > TEMPLATE_MAX_FILES:
                raise CaseConfigError(f"{var}: {template} holds over {TEMPLATE_MAX_FILES} "
                                      "entries; a HOME template is for settings files")
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise CaseConfigError(f"{var}: {shown} is a link or special file; put a "
                                      "plain copy of the file in the template")
            _check_template_file(path, shown, redact)


def _raise_walk_error(exc: OSError) -> None:
    raise CaseConfigError(f"{HOME_TEMPLATE_VAR}: cannot read {exc.filename} "
                          f"({exc.strerror})")


def _check_template_file(path: Path, shown: Path, redact: Callable[[str], str]) -> None:
    var = HOME_TEMPLATE_VAR
    try:
        with path.open("rb") as fh:
            data = fh.read(TEMPLATE_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CaseConfigError(f"{var}: cannot read {shown} ({exc.strerror})") from None
    if len(data) > TEMPLATE_MAX_FILE_BYTES:
        raise CaseConfigError(f"{var}: {shown} is over {TEMPLATE_MAX_FILE_BYTES >> 20} MiB, "
                              "too big to check; a HOME template is for settings files")
    text = data.decode("utf-8", errors="replace")
    for piece in (str(shown), text):
        found = hosted_finding(piece)
        if found:
            raise CaseConfigError(f"{var}: {shown} holds {found}; the Case may use only "
                                  "the relay")
        if redact(piece) != piece:
            raise CaseConfigError(f"{var}: {shown} holds the private endpoint (a secret)")


def seed_home(template: Path | None, home: Path) -> None:
    """Copy the (checked) template into a run's fresh private HOME before the Case starts."""
    if template is not None:
        shutil.copytree(template, home, symlinks=True, dirs_exist_ok=True)


# -- readiness --------------------------------------------------------------------------
def check_case_setup(args: str, env: str | None, stdin: str | None,
                     home_template: Path | None,
                     redact: Callable[[str], str]) -> ReadinessCheck:
    """The `case_setup` readiness check: every setting above, before any run."""
    try:
        format_words(split_words(args, ARGS_VAR), dict.fromkeys(ARGS_PLACEHOLDERS, ""),
                     ARGS_VAR)
        pairs = parse_env(env)
        format_words([v for _, v in pairs], dict.fromkeys(ENV_PLACEHOLDERS, ""), ENV_VAR)
        check_env(pairs, redact)
        mode = stdin_mode(stdin)
        if home_template is not None:
            check_home_template(home_template, redact)
    except CaseConfigError as exc:
        return ReadinessCheck(name="case_setup", state="invalid", detail=str(exc))
    parts = [f"{len(pairs)} extra variable{'s' * (len(pairs) != 1)} ({ENV_VAR})",
             f"stdin {mode}"]
    if home_template is not None:
        parts.append(f"HOME seeded from {home_template}")
    return ReadinessCheck(name="case_setup", state="ok", detail=", ".join(parts))
