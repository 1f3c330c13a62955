"""`cto-harness-case`: the reference Case — a small, real coding agent, and the Case contract
by example. Any agent that follows the same contract plugs into `cto-harness run`.

The contract, as the harness runs a Case:

- argv: `CASE_BIN --task-file PATH --workspace DIR --model ID` (the default template);
  each flag falls back to its environment variable below, so a Case may read either.
- cwd: the run's fresh copy of the task's workspace. Edit files there, nowhere else.
- environment (an allowlist): `OPENAI_BASE_URL` — the harness's loopback relay
  (`http://127.0.0.1:PORT/v1`), `OPENAI_API_KEY` — a per-run relay token,
  `CTO_HARNESS_CASE_MODEL`, `CTO_HARNESS_CASE_MODEL_PROVIDER`, `CTO_HARNESS_TASK_FILE`
  (the task's prompt), `CTO_HARNESS_WORKSPACE`; optionally `CTO_HARNESS_CHECK_CMD`, a
  command the Case may run in the workspace to see whether its edit works.
- output: stdout and stderr are the Case's log; the harness redacts and records them.
  This Case never prints the base URL or the key.
- exit code: 0 when it wrote its edit, 1 when the model's answer named no file to write,
  2 for bad usage, 3 when the endpoint failed (one clear line says how).

The agent: one chat-completions call (streamed) with the task and the workspace's text
files; it writes every fenced code block that names a file (FILE_BLOCK_RULE below). When a
check command is offered and fails, it sends the check's output back for one more turn.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

EXIT_OK, EXIT_NO_EDIT, EXIT_USAGE, EXIT_ENDPOINT = 0, 1, 2, 3
MAX_TURNS = 2
MAX_FILE_BYTES = 64_000
MAX_CHECK_OUTPUT = 4_000
CHECK_TIMEOUT_S = 120
PROGRESS_EVERY_S = 1.0
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=30.0, pool=10.0)
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".venv", "node_modules"}

FILE_BLOCK_RULE = (
    "To change a file, reply with its complete new content in a fenced code block whose "
    "info string is the language followed by the file's path relative to the workspace, "
    "for example:\n\n```python slugify.py\ndef slugify(text: str) -> str:\n    ...\n```\n\n"
    "A first line `# file: PATH` inside the block names the file too. Only blocks that "
    "name a file are written; write whole files, never diffs."
)
SYSTEM_PROMPT = (
    "You are a careful coding agent working in a small workspace. Read the task, then "
    "answer with a short plan and the files to write.\n\n" + FILE_BLOCK_RULE
)

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_FILE_COMMENT = re.compile(r"^\s*(?:#|//|--|;)\s*file:\s*(\S+)\s*$", re.IGNORECASE)


class CaseError(Exception):
    """A failure this Case reports in one line, with the exit code it maps to."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FileBlock:
    path: str | None
    content: str


@dataclass
class Answer:
    text: str
    tokens: int
    seconds: float
    model: str | None
    usage: dict[str, int] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"refcase: {message}", flush=True)


# -- the answer's file blocks -------------------------------------------------------------


def _looks_like_path(token: str) -> bool:
    return "." in token or "/" in token


def parse_file_blocks(text: str) -> list[FileBlock]:
    """Every fenced block, with the file it names (info string or `# file:` line) or None."""
    blocks = []
    for match in _FENCE.finditer(text):
        info, body = match.group(1).split(), match.group(2)
        path = info[-1] if info and _looks_like_path(info[-1]) else None
        first, _, rest = body.partition("\n")
        comment = _FILE_COMMENT.match(first)
        if comment:
            path, body = path or comment.group(1), rest
        blocks.append(FileBlock(path=path, content=body))
    return blocks


def resolve_inside(workspace: Path, relative: str) -> Path:
    """The path a block names, refused when it would land outside the workspace."""
    if Path(relative).is_absolute():
        raise ValueError("absolute paths are refused")
    root = workspace.resolve()
    target = (root / relative).resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError("it escapes the workspace")
    return target


def write_blocks(workspace: Path, blocks: list[FileBlock], only_file: str | None) -> list[str]:
    """Write the named blocks; an unnamed lone block goes to the workspace's only file."""
    named = [(b.path, b.content) for b in blocks if b.path]
    if not named and only_file and len(blocks) == 1:
        log(f"the answer's one code block names no file; writing it to {only_file}")
        named = [(only_file, blocks[0].content)]
    written = []
    for path, content in named:
        try:
            target = resolve_inside(workspace, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except ValueError as exc:
            log(f"refused to write {path!r}: {exc}")
            continue
        except OSError as exc:
            log(f"could not write {path!r}: {exc.strerror or exc}")
            continue
        log(f"wrote {path} ({len(content.encode())} bytes)")
        written.append(path)
    return written


# -- the prompt -----------------------------------------------------------------------------


def workspace_files(workspace: Path) -> dict[str, str]:
    """The workspace's small UTF-8 text files, by relative path."""
    files = {}
    for path in sorted(workspace.rglob("*")):
        rel = path.relative_to(workspace)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            files[rel.as_posix()] = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return files


def task_prompt(task: str, files: dict[str, str]) -> str:
    parts = [task.strip(), "", "The workspace holds these files:"]
    for rel, content in files.items():
        parts += ["", f"```{rel}", content.rstrip("\n"), "```"]
    parts += ["", FILE_BLOCK_RULE]
    return "\n".join(parts)


def check_prompt(command: str, code: int, output: str) -> str:
    tail = output[-MAX_CHECK_OUTPUT:]
    return (
        f"The check `{command}` failed with exit code {code}. Its output:\n\n```\n{tail}\n```\n\n"
        "Fix the files. " + FILE_BLOCK_RULE
    )


# -- the endpoint -------------------------------------------------------------------------


class Endpoint:
    """A streaming chat-completions client that never says where it connects."""

    def __init__(self, base_url: str, api_key: str, model: str) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._secrets = [s for s in (base_url.rstrip("/"), api_key) if s]
        host = urlsplit(base_url).netloc
        if host:
            self._secrets.append(host)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def scrub(self, text: str) -> str:
        """One printable line with the endpoint's address and the key masked."""
        for secret in self._secrets:
            text = text.replace(secret, "[endpoint]")
        text = " ".join(text.split())
        return text[:300]

    def complete(self, messages: list[dict[str, str]], echo: bool = True) -> Answer:
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started = time.monotonic()
        try:
            with (
                httpx.Client(timeout=TIMEOUT) as client,
                client.stream("POST", self.url, json=body, headers=self._headers) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise CaseError(
                        f"endpoint answered HTTP {response.status_code}: "
                        f"{self.scrub(error_message(response.text))}",
                        EXIT_ENDPOINT,
                    )
                return self._read(response, started, echo)
        except httpx.HTTPError as exc:
            raise CaseError(
                f"endpoint unreachable or broke off ({type(exc).__name__}: "
                f"{self.scrub(str(exc)) or 'no detail'})",
                EXIT_ENDPOINT,
            ) from None

    def _read(self, response: httpx.Response, started: float, echo: bool) -> Answer:
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            response.read()
            return self._whole(response.text, started)
        printer = LinePrinter(enabled=echo)
        answer = Answer(text="", tokens=0, seconds=0.0, model=None)
        last_progress = started
        for data in sse_data(response.iter_lines()):
            if data == "[DONE]":
                break
            chunk = self._json(data)
            answer.model = chunk.get("model") or answer.model
            answer.usage = chunk.get("usage") or answer.usage
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    answer.tokens += 1
                    answer.text += piece
                    printer.feed(piece)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                log(f"  … {answer.tokens} tokens streamed, {now - started:.1f} s")
        printer.flush()
        answer.seconds = time.monotonic() - started
        return answer

    def _whole(self, text: str, started: float) -> Answer:
        """A server that ignored `stream: true` and sent one JSON answer."""
        data = self._json(text)
        try:
            content = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            message = "endpoint sent JSON without choices[0].message"
            raise CaseError(message, EXIT_ENDPOINT) from None
        usage = data.get("usage") or {}
        seconds = time.monotonic() - started
        return Answer(content, usage.get("completion_tokens", 0), seconds, data.get("model"), usage)

    def _json(self, text: str) -> dict:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise CaseError(
                f"endpoint sent something that is not JSON: {self.scrub(text)[:80]!r}",
                EXIT_ENDPOINT,
            ) from None
        if not isinstance(data, dict):
            raise CaseError("endpoint sent JSON that is not an object", EXIT_ENDPOINT)
        if data.get("error"):
            raise CaseError(f"endpoint error: {self.scrub(error_message(text))}", EXIT_ENDPOINT)
        return data


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The `data:` payloads of a server-sent-events stream, one event each."""
    pending: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            pending.append(line[5:].removeprefix(" "))
        elif not line.strip() and pending:
            yield "\n".join(pending)
            pending = []
    if pending:
        yield "\n".join(pending)


def error_message(body: str) -> str:
    """The message of an OpenAI-style error body, else the body itself."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip() or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)
    return body.strip()


class LinePrinter:
    """Echo the streamed answer a whole line at a time, so the log stays readable."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.buffer = enabled, ""

    def feed(self, piece: str) -> None:
        self.buffer += piece
        while self.enabled and "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            print(f"  │ {line}", flush=True)

    def flush(self) -> None:
        if self.enabled and self.buffer:
            print(f"  │ {self.buffer}", flush=True)
        self.buffer = ""


# -- the agent loop -------------------------------------------------------------------------


def run_check(command: str, workspace: Path) -> tuple[int, str]:
    try:
        done = subprocess.run(
            shlex.split(command),
            cwd=workspace,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=CHECK_TIMEOUT_S,
        )
    except (OSError, ValueError) as exc:
        return 127, f"cannot run the check: {exc}"
    except subprocess.TimeoutExpired:
        return 124, f"the check ran longer than {CHECK_TIMEOUT_S} s"
    return done.returncode, done.stdout + done.stderr


def solve(task_file: Path, workspace: Path, endpoint: Endpoint, check_cmd: str | None) -> int:
    started = time.monotonic()
    task = task_file.read_text(encoding="utf-8")
    files = workspace_files(workspace)
    only_file = next(iter(files)) if len(files) == 1 else None
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": task_prompt(task, files)},
    ]
    turns = MAX_TURNS if check_cmd else 1
    log(f"task {task_file.name}: {len(files)} workspace file(s), model {endpoint.model}")
    written: list[str] = []
    for turn in range(1, turns + 1):
        log(f"turn {turn}/{turns}: asking the model ({sum(len(m['content']) for m in messages)} "
            "prompt chars)")
        answer = endpoint.complete(messages)
        rate = answer.tokens / answer.seconds if answer.seconds else 0.0
        usage = answer.usage
        counted = (f", usage: {usage.get('prompt_tokens')} prompt + "
                   f"{usage.get('completion_tokens')} completion tokens" if usage else "")
        log(f"turn {turn}: {answer.tokens} tokens streamed in {answer.seconds:.1f} s "
            f"({rate:.0f} tok/s), model answered {answer.model or 'unknown'}{counted}")
        messages.append({"role": "assistant", "content": answer.text})
        written += write_blocks(workspace, parse_file_blocks(answer.text), only_file)
        if not check_cmd or not written:
            break
        code, output = run_check(check_cmd, workspace)
        log(f"check `{check_cmd}` exited {code}")
        if code == 0:
            break
        messages.append({"role": "user", "content": check_prompt(check_cmd, code, output)})
    elapsed = time.monotonic() - started
    if not written:
        log(f"done in {elapsed:.1f} s: the answer named no file to write")
        return EXIT_NO_EDIT
    log(f"done in {elapsed:.1f} s: wrote {', '.join(sorted(set(written)))}")
    return EXIT_OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="cto-harness-case", description="The reference Case: a small coding agent."
    )
    parser.add_argument("--task-file", default=env("CTO_HARNESS_TASK_FILE"))
    parser.add_argument("--workspace", default=env("CTO_HARNESS_WORKSPACE") or ".")
    parser.add_argument("--model", default=env("CTO_HARNESS_CASE_MODEL"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_url = os.environ.get("OPENAI_BASE_URL", "")
    problems = [
        name
        for name, value in (
            ("--task-file or CTO_HARNESS_TASK_FILE", args.task_file),
            ("--model or CTO_HARNESS_CASE_MODEL", args.model),
            ("OPENAI_BASE_URL", base_url),
        )
        if not value
    ]
    if problems:
        print(f"refcase: missing {', '.join(problems)}", file=sys.stderr)
        return EXIT_USAGE
    if urlsplit(base_url).scheme not in ("http", "https"):
        print("refcase: OPENAI_BASE_URL is not an http(s) URL", file=sys.stderr)
        return EXIT_USAGE
    task_file, workspace = Path(args.task_file), Path(args.workspace)
    if not task_file.is_file() or not workspace.is_dir():
        print(f"refcase: no task file at {task_file} or no workspace at {workspace}",
              file=sys.stderr)
        return EXIT_USAGE
    endpoint = Endpoint(base_url, os.environ.get("OPENAI_API_KEY", ""), args.model)
    try:
        return solve(task_file, workspace, endpoint, os.environ.get("CTO_HARNESS_CHECK_CMD"))
    except CaseError as exc:
        print(f"refcase: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        print(f"refcase: cannot read the task file {task_file} ({reason})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
