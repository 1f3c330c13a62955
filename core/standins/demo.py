"""The embedded demo: a scripted, deterministic model on a loopback endpoint, so a newcomer
sees a whole live run with no model server, no Qwen and no Case binary of their own.

Honestly labelled: every answer says `demo endpoint`, and the runner marks the run as a
demo, which `validate` never accepts as evidence for the real model.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

import core
from core.settings import DEFAULT_PROFILE, PROFILES
from core.standins.endpoint import ScriptedEndpoint

DEMO_PROVIDER, DEMO_MODEL = PROFILES[DEFAULT_PROFILE]
DEMO_TOKEN_DELAY_S = 0.02
"""Pace of the scripted stream: a few hundred tokens in a few seconds, so the live view
has something to show without making the newcomer wait."""

LABEL = "[demo endpoint] Scripted answer, no model ran: this shows what a Case receives."

SLUGIFY_SOLUTION = '''import re
import unicodedata


def slugify(text: str) -> str:
    """Return the URL slug of `text` (see TASK.md)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
'''

SLUGIFY_ANSWER = f"""{LABEL}

Plan: follow TASK.md's steps in order.

1. `unicodedata.normalize("NFKD", text)` splits accented letters into letter + mark.
2. Encoding to ASCII with `errors="ignore"` drops the marks and every other non-ASCII char.
3. Lowercase, then one `re.sub` turns each run outside `[a-z0-9]` into a single `-`.
4. `strip("-")` removes the dashes left at either end.

```python slugify.py
{SLUGIFY_SOLUTION}```

This gives `slugify("Hello, World!") == "hello-world"`, `slugify("  Crème Brûlée  ") ==
"creme-brulee"` and `slugify("") == ""`, using only the standard library.
"""

UNKNOWN_ANSWER = (
    f"{LABEL}\n\nThe demo endpoint only knows the bundled tasks, so it proposes no edit for "
    "this one. Point the harness at a real model to work on other tasks.\n"
)
ANSWERS_DIR = Path(__file__).parent / "demo_answers"
"""One scripted answer per bundled task, `<task-id>.md`: some right, some wrong (a missed
requirement, a rounding or ordering slip), as a model's would be, so a demo job shows a
realistic mix of passes and failures."""


def scripted_answer(prompt: str) -> str:
    """The answer for the task whose heading (`# <task-id>`, TASK.md's first line) the
    prompt holds; the slugify answer is written out above."""
    if "r1-string-slugify" in prompt:
        return SLUGIFY_ANSWER
    for path in sorted(ANSWERS_DIR.glob("*.md")):
        if re.search(rf"^# {re.escape(path.stem)}$", prompt, re.MULTILINE):
            return path.read_text(encoding="utf-8")
    return UNKNOWN_ANSWER


def demo_responder(messages: list[dict]) -> str:
    """The scripted answer to the reference Case's prompt: a bundled task's answer in the
    Case's file-block format, or a plain reply naming no file for any other task."""
    prompt = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    return scripted_answer(prompt)


@dataclass(frozen=True)
class DemoSettings:
    """What a run needs to use the demo instead of the environment's endpoint."""

    endpoint: SecretStr
    admission_file: Path
    case_bin: str
    provider: str = DEMO_PROVIDER
    model: str = DEMO_MODEL


def reference_case_bin(folder: Path) -> str:
    """The installed `cto-harness-case` script beside this interpreter, or else a launcher
    written into `folder` that runs the reference Case from this source tree."""
    script = Path(sys.executable).parent / "cto-harness-case"
    if script.is_file():
        return str(script)
    source_root = Path(core.__file__).resolve().parent.parent
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from core.standins.refcase import main; sys.exit(main())")
    launcher = folder / "cto-harness-case"
    launcher.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "
        f'{shlex.quote(str(source_root))} "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return str(launcher)


@contextmanager
def demo_environment(token_delay: float = DEMO_TOKEN_DELAY_S) -> Iterator[DemoSettings]:
    """Serve the scripted model on loopback and admit it for the life of the block."""
    with tempfile.TemporaryDirectory(prefix="cto-harness-demo-") as tmp:
        folder = Path(tmp)
        admission_file = folder / "admission.json"
        admitted = {"provider": DEMO_PROVIDER, "model": DEMO_MODEL, "status": "admitted",
                    "expires": None}
        admission_file.write_text(json.dumps({"admitted": [admitted]}, indent=2),
                                  encoding="utf-8")
        case_bin = reference_case_bin(folder)
        with ScriptedEndpoint(responder=demo_responder, model_id=DEMO_MODEL,
                              token_delay=token_delay) as endpoint:
            yield DemoSettings(endpoint=SecretStr(endpoint.base_url),
                               admission_file=admission_file, case_bin=case_bin)
