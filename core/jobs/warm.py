"""A job's warm trial launcher, seen from the job: trials forked from one process that has
the harness imported, instead of a fresh `cto-harness run` interpreter each.

Why: a trial's own work (its Case, checks and baseline) can take less than a second, and a
fresh interpreter paid Python's start and the harness's imports (~0.3 CPU-seconds with
bytecode, over a second without) in every trial. The launcher (`python -m core.cli.warm`,
core/cli/warm.py) imports once, then forks one child per trial, which runs exactly what
`cto-harness run ARGS` runs: a process of its own (own pid, so its own run folder, sandbox
uid, relay, ledger, signal handling and warden), nothing shared with its siblings but the
read-only pages of the imported code. Forking is safe only while the launcher has one
thread; it checks that before each fork and refuses otherwise (the job then starts the
trial the cold way).

The wire: a SOCK_SEQPACKET socket pair, one JSON message a packet. The job sends
`{"id": N, "argv": [...]}` with the write ends of the trial's stdout and stderr pipes
attached (SCM_RIGHTS); the launcher answers `{"id": N, "pid": P}` with a pidfd of the
child attached (so the job signals that very process, never a recycled pid), and
`{"pid": P, "exit": CODE}` once it has reaped it. The launcher's first packet is
`{"ready": PID}` (or `{"refused": WHY}`).

Deaths: the launcher asks for SIGTERM when the job dies, and each trial asks for SIGTERM
when the launcher dies (PR_SET_PDEATHSIG), so a job killed outright still leaves each
trial in flight a `cancelled` report, as with cold children. A launcher that dies while the
job goes on is no trial's fault: its trials in flight end as their reports say, the job
notes it, and the trials after start cold.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

MAX_PACKET = 1 << 20
"""A trial's argv is a few hundred bytes; a packet past this is refused, not read."""
MAX_FDS = 4
LAUNCHER_MODULE = "core.cli.warm"
READY_TIMEOUT_S = 60.0
"""The launcher's imports take well under a second; on a loaded machine, far more."""


PR_SET_PDEATHSIG = 1


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded at import, before any fork: a forked child only calls into it


def die_with_parent(parent: int) -> None:
    """In a trial's process (a cold one's preexec, or forked by the launcher): SIGTERM when
    `parent` dies, however it dies, and at once if it died before this took effect."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class LauncherGone(Exception):
    """The launcher is not (or no longer) there: start the trial the cold way."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()
         ) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """One packet and the fds that came with it; (None, []) at the end. A packet that is
    not one JSON object is refused (its fds closed): ValueError."""
    fds = array.array("i")
    data, ancdata, flags, _ = sock.recvmsg(MAX_PACKET, socket.CMSG_SPACE(MAX_FDS
                                                                         * fds.itemsize))
    for level, kind, body in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(body[:len(body) - len(body) % fds.itemsize])
    received = list(fds)
    if not data and not received:
        return None, []
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ValueError("a packet past its bounds")
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        for fd in received:
            os.close(fd)
        raise
    return message, received


class WarmChild:
    """One trial forked by the launcher: what asyncio's Process offers the job (pid,
    communicate, returncode, send_signal), for a process that is not the job's child."""

    def __init__(self, pid: int, pidfd: int, out: int, err: int,
                 exited: asyncio.Future[int | None]) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self._pipes = (out, err)
        self._exited = exited
        self.returncode: int | None = None

    def send_signal(self, sig: int) -> None:
        """To this very process (its pidfd): never to another that took its pid."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self.pidfd, sig)

    async def communicate(self) -> tuple[bytes, bytes]:
        """Its stdout and stderr to their ends, then its exit status (None when the
        launcher died before reaping it: the trial's report says how it ended)."""
        try:
            out, err = await asyncio.gather(*(_read_all(fd) for fd in self._pipes))
            self.returncode = await self._exited
        finally:
            os.close(self.pidfd)
        return out, err


async def _read_all(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_PACKET)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    try:
        return await reader.read()
    finally:
        transport.close()


class WarmLauncher:
    """The job's end of the launcher: start it, hand it trials, learn their ends."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.pid = proc.pid
        self.gone = False
        self._next = 0
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._spawned: dict[int, asyncio.Future[tuple[int, int, asyncio.Future[int | None]]]] \
            = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    @classmethod
    async def start(cls, preexec: Callable[[], None] | None = None,
                    env: dict[str, str] | None = None, cwd: str | None = None
                    ) -> WarmLauncher:
        """The launcher started and ready (its imports done); LauncherGone saying why not.
        `preexec`: run in the launcher before it execs (the job's PDEATHSIG); `env` and
        `cwd`: its trials' (a cluster worker's trials get neither Ray's variables nor its
        folder), else this process's."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", LAUNCHER_MODULE, str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=None, pass_fds=(theirs.fileno(),), start_new_session=True,
                preexec_fn=preexec, env=env, cwd=cwd)
        except OSError as exc:
            ours.close()
            raise LauncherGone(f"the warm launcher did not start ({exc.strerror})") from None
        finally:
            theirs.close()
        ours.setblocking(False)
        launcher = cls(proc, ours)
        try:
            said = await asyncio.wait_for(asyncio.shield(launcher._ready), READY_TIMEOUT_S)
        except (TimeoutError, LauncherGone) as exc:
            await launcher.close()
            raise LauncherGone(f"the warm launcher did not get ready ({exc or 'timed out'})"
                               ) from None
        if "refused" in said:
            await launcher.close()
            raise LauncherGone(f"the warm launcher refused: {said['refused']}")
        return launcher

    def _readable(self) -> None:
        try:
            message, fds = receive(self.sock)
        except BlockingIOError:
            return
        except (OSError, ValueError):
            message, fds = None, []
        if message is None:
            self._lost()
            return
        if "ready" in message or "refused" in message:
            if not self._ready.done():
                self._ready.set_result(message)
        elif "id" in message and "pid" in message and len(fds) == 1:
            exited = asyncio.get_running_loop().create_future()
            self._exits[message["pid"]] = exited
            waiter = self._spawned.pop(message["id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result((message["pid"], fds[0], exited))
            else:
                os.close(fds[0])
        elif "pid" in message and "exit" in message:
            ended = self._exits.pop(message["pid"], None)
            if ended is not None and not ended.done():
                ended.set_result(message["exit"])
        else:
            for fd in fds:
                os.close(fd)

    def _lost(self) -> None:
        """The launcher is gone: nothing more will come from it."""
        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if not self._ready.done():
            self._ready.set_exception(LauncherGone("it ended"))
            self._ready.exception()  # retrieved: no "never retrieved" warning
        for waiter in self._spawned.values():
            if not waiter.done():
                waiter.set_exception(LauncherGone("it ended"))
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(None)
        self._spawned, self._exits = {}, {}

    async def spawn(self, argv: list[str]) -> WarmChild:
        """A trial running `cto-harness ARGV` (argv without the program); LauncherGone
        when the launcher cannot start it."""
        if self.gone:
            raise LauncherGone("it ended")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self._next += 1
        ident = self._next
        waiter: asyncio.Future[tuple[int, int, asyncio.Future[int | None]]] = \
            asyncio.get_running_loop().create_future()
        self._spawned[ident] = waiter
        try:
            try:
                send(self.sock, {"id": ident, "argv": argv}, (out_w, err_w))
            except OSError:
                self._spawned.pop(ident, None)
                raise LauncherGone("its socket is closed") from None
            finally:
                os.close(out_w)
                os.close(err_w)
            pid, pidfd, exited = await waiter
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        return WarmChild(pid, pidfd, out_r, err_r, exited)

    async def close(self) -> None:
        """Closing our end tells the launcher to leave (it has no trial left by then)."""
        self._lost()
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
