#!/usr/bin/env python3
"""A test Case with many behaviours, chosen by --mode; stdlib only, like any foreign binary.

good      asks the relay (streaming) for the model in CTO_HARNESS_CASE_MODEL, writes a correct
          solution
naive     asks the relay, writes the naive solution (checks fail)
forger    asks the relay, writes the naive solution and a `pytest.py` beside it that
          writes an all-passed JUnit XML wherever --junitxml= says (a forged verdict)
planter   asks the relay, writes the naive solution, plants a conftest that passes every
          test in the run's checks folder and links the run's baseline folder to a folder
          of its own outside the run (printing `case: planted <path>`)
claude    asks the relay for claude-sonnet-4-6 (a fallback attempt), or for --ask-model
liar      asks for the admitted model but prints that it used claude-sonnet-4-6
silent    writes a correct solution without asking any model
hang      asks once, prints its pid, then sleeps forever; with --grandchild it first
          starts a grandchild in its group that sleeps too, and prints its pid
orphan    asks once, starts a grandchild that sleeps holding stdout, then sleeps itself
escape    starts a grandchild in its own session holding stdout, and exits at once
binary    prints invalid UTF-8 and control sequences, then behaves like good
leak      reads a secret from --secret-file, prints it in pieces with pauses and in a
          workspace file, then behaves like good
envdump   prints its environment (names and values), then behaves like good
show      prints one line `show: {json}` with its argv, its stdin's text, the values of
          the variables named by --show-env (comma-separated), the files under $HOME
          with their text and its user name, then behaves like good
flood     prints --lines lines, then exits 0 without asking
locked    reads a secret from --secret-file into workspace/locked/notes.txt, then makes
          the file mode 000 and its folder 0500, then behaves like good
links     plants links in the workspace: one to /proc/self/environ (whoever follows it reads
          its own environment), one to --secret-file, then behaves like good
names     reads a secret URL from --secret-file and writes it into names, not bytes: a folder
          named by the quoted URL holding a file named after its host:port, a link whose
          target text is the URL, and two files named `odd-\\xff-name.txt`: one with the byte
          0xff (not UTF-8), one with those four characters; then behaves like good
wait      asks the relay, prints `case: waiting`, waits until a file `go` appears in its
          workspace (the test's signal), removes it, then behaves like good
tools     a tool loop, as a coding agent runs one: asks (streaming, with a `write_file`
          tool) until the model stops calling tools, doing each call (writing the file it
          names in the workspace) and sending its result back with the call's id
direct    tries a TCP connection to the host:port in --target-file (bypassing the relay),
          prints `direct: connected` or `direct: refused/unreachable (...)`, then behaves
          like good
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

GOOD = '''import re
import unicodedata


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
'''
NAIVE = "def slugify(text: str) -> str:\n    return text.lower().replace(' ', '-')\n"
PASS_ALL = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
"""
FORGED_PYTEST = """import sys
junit = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--junitxml="))
with open(junit, "w") as fh:
    fh.write('<testsuite tests="15" failures="0" errors="0" skipped="0"></testsuite>')
"""


def ask(model: str, stream: bool = True) -> str:
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    body = {"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "write slugify"}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    req = urllib.request.Request(
        base + "/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        print(f"case: model request failed: HTTP {exc.code}: {exc.read().decode()[:200]}",
              flush=True)
        return ""
    print(f"case: got {len(text)} bytes from the model", flush=True)
    return text


def chat_turn(model: str, messages: list) -> dict:
    """One streamed request; the assistant message its deltas make."""
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True},
            "messages": messages, "tools": [{"type": "function", "function": {
                "name": "write_file", "description": "write a file in the workspace",
                "parameters": {"type": "object", "properties": {
                    "path": {"type": "string"}, "content": {"type": "string"}}}}}]}
    req = urllib.request.Request(
        base + "/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                 "Content-Type": "application/json"})
    message = {"role": "assistant", "content": "", "tool_calls": []}
    with urllib.request.urlopen(req, timeout=30) as resp:
        for line in resp.read().decode().splitlines():
            if not line.startswith("data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                delta = choice.get("delta") or {}
                message["content"] += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    if call.get("id"):
                        message["tool_calls"].append({"id": call["id"], "type": "function",
                                                      "function": {"name": call["function"][
                                                          "name"], "arguments": ""}})
                    message["tool_calls"][call["index"]]["function"]["arguments"] += \
                        call["function"].get("arguments") or ""
    if not message["tool_calls"]:
        del message["tool_calls"]
    return message


def tool_loop(model: str, workspace: str) -> int:
    messages = [{"role": "system", "content": "You are a careful coding agent."},
                {"role": "user", "content": "Make slugify() in slugify.py pass its tests."}]
    for _ in range(5):
        message = chat_turn(model, messages)
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            print(f"case: done: {message['content']}", flush=True)
            return 0
        for call in calls:
            args = json.loads(call["function"]["arguments"])
            with open(os.path.join(workspace, os.path.basename(args["path"])), "w") as fh:
                fh.write(args["content"])
            result = f"wrote {len(args['content'])} characters to {args['path']}"
            print(f"case: {result}", flush=True)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return 3


def write(workspace: str, source: str) -> None:
    with open(os.path.join(workspace, "slugify.py"), "w") as fh:
        fh.write(source)
    print("case: wrote slugify.py", flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", required=True)
    p.add_argument("--task-file")
    p.add_argument("--workspace", default=os.environ.get("CTO_HARNESS_WORKSPACE", "."))
    p.add_argument("--model", default=os.environ.get("CTO_HARNESS_CASE_MODEL"))
    p.add_argument("--secret-file")
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--target-file")
    p.add_argument("--ask-model", default="claude-sonnet-4-6")
    p.add_argument("--grandchild", action="store_true")
    p.add_argument("--task-text")
    p.add_argument("--show-env", default="")
    a = p.parse_args()
    print(f"case: mode {a.mode}, model {a.model}", flush=True)
    if a.mode == "flood":
        out = sys.stdout
        for i in range(a.lines):
            out.write(f"line {i} of the flood, some ordinary agent chatter here\n")
        out.flush()
        return 0
    if a.mode == "silent":
        write(a.workspace, GOOD)
        return 0
    if a.mode == "tools":
        return tool_loop(a.model, a.workspace)
    if a.mode == "planter":
        ask(a.model)
        write(a.workspace, NAIVE)
        run = os.path.dirname(os.path.abspath(a.workspace))
        os.makedirs(os.path.join(run, "checks", "tests"))
        with open(os.path.join(run, "checks", "tests", "conftest.py"), "w") as fh:
            fh.write(PASS_ALL)
        outside = tempfile.mkdtemp(prefix="planted-")
        os.symlink(outside, os.path.join(run, "baseline"))
        print(f"case: planted {outside}", flush=True)
        return 0
    if a.mode == "forger":
        ask(a.model)
        write(a.workspace, NAIVE)
        with open(os.path.join(a.workspace, "pytest.py"), "w") as fh:
            fh.write(FORGED_PYTEST)
        return 0
    if a.mode == "claude":
        ask(a.ask_model)
        write(a.workspace, GOOD)
        return 0
    if a.mode == "hang":
        ask(a.model)
        if a.grandchild:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            print(f"case: grandchild pid {child.pid}", flush=True)
        print(f"case: pid {os.getpid()}", flush=True)
        time.sleep(3600)
    if a.mode == "orphan":
        ask(a.model)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        time.sleep(3600)
    if a.mode == "escape":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                         start_new_session=True)
        print("case: left a grandchild holding the pipe", flush=True)
        return 0
    if a.mode == "binary":
        sys.stdout.buffer.write(b"bad bytes: \xff\xfe\xc3 end\n\x1b]52;c;aGVsbG8=\x07\x1b[2J"
                                b"\x1b]0;title\x07colour \x1b[31mred\x1b[0m\n")
        sys.stdout.flush()
    if a.mode == "leak":
        with open(a.secret_file) as fh:
            secret = fh.read().strip()
        forms = [secret, secret.split("://", 1)[1], base64.b64encode(secret.encode()).decode(),
                 json.dumps(secret)]
        for form in forms:
            for i in range(0, len(form), 3):
                sys.stdout.write(form[i:i + 3])
                sys.stdout.flush()
                time.sleep(0.002)
            sys.stdout.write("\n")
        with open(os.path.join(a.workspace, "notes.txt"), "w") as fh:
            fh.write(f"endpoint was {secret}\n")
    if a.mode == "locked":
        with open(a.secret_file) as fh:
            secret = fh.read().strip()
        locked = os.path.join(a.workspace, "locked")
        os.mkdir(locked)
        with open(os.path.join(locked, "notes.txt"), "w") as fh:
            fh.write(f"endpoint was {secret}\n")
        os.chmod(os.path.join(locked, "notes.txt"), 0)
        os.chmod(locked, 0o500)
    if a.mode == "links":
        os.symlink("/proc/self/environ", os.path.join(a.workspace, "env.txt"))
        os.symlink(os.path.abspath(a.secret_file), os.path.join(a.workspace, "endpoint.txt"))
    if a.mode == "names":
        with open(a.secret_file) as fh:
            secret = fh.read().strip()
        host_port = urllib.parse.urlsplit(secret).netloc.rpartition("@")[2]
        folder = os.path.join(a.workspace, urllib.parse.quote(secret, safe=""))
        os.mkdir(folder)
        with open(os.path.join(folder, host_port + ".txt"), "w") as fh:
            fh.write("nothing secret in here\n")
        os.symlink(secret, os.path.join(a.workspace, "endpoint-link"))
        for name in (b"odd-\xff-name.txt", b"odd-\\xff-name.txt"):  # not UTF-8; its look-alike
            with open(os.path.join(os.fsencode(a.workspace), name), "w") as fh:
                fh.write("a name that is not UTF-8\n")
        print("case: wrote the endpoint into names", flush=True)
    if a.mode == "direct":
        with open(a.target_file) as fh:
            host, port = fh.read().strip().rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
            print("direct: connected", flush=True)
        except OSError as exc:
            print(f"direct: refused/unreachable ({type(exc).__name__}: {exc.strerror})",
                  flush=True)
    if a.mode == "show":
        names = [n for n in a.show_env.split(",") if n]
        home = os.environ.get("HOME", "/nonexistent")
        files = {}
        for folder, _, found in os.walk(home):
            for name in found:
                path = os.path.join(folder, name)
                with open(path, errors="replace") as fh:
                    files[os.path.relpath(path, home)] = fh.read(200)
        try:
            import pwd
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            user = "error: my uid has no name"
        shown = {"argv": sys.argv[1:], "stdin": sys.stdin.read(), "home": files, "user": user,
                 "env": {n: os.environ.get(n) for n in names}}
        print("show: " + json.dumps(shown), flush=True)
    if a.mode == "envdump":
        for k, v in sorted(os.environ.items()):
            print(f"env {k}={v}")
    answer = ask(a.model)
    if a.mode == "wait":
        print("case: waiting", flush=True)
        go = os.path.join(a.workspace, "go")
        while not os.path.exists(go):
            time.sleep(0.01)
        os.unlink(go)
    if a.mode == "scribble":  # what the Changes tab and `diff` must show inertly
        name = "\x1b]0;pwned\x07name\x1b[2J.txt"
        with open(os.path.join(a.workspace, name), "w") as fh:
            fh.write("\x1b]52;c;aGVsbG8=\x07clipboard\n\x1b[31mred\x1b[0m \u202eevil\n")
        os.symlink("/etc/passwd", os.path.join(a.workspace, "passwd-link"))
        with open(os.path.join(a.workspace, "blob.bin"), "wb") as fh:
            fh.write(bytes(range(256)))
    if a.mode == "liar":
        print("case: answered by claude-sonnet-4-6 via anthropic", flush=True)
    if not answer:
        return 3
    write(a.workspace, NAIVE if a.mode == "naive" else GOOD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
