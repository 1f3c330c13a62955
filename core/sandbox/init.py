"""The first process of every sandbox: drop to the sandbox's uid, cap its process count,
serve the relay on 127.0.0.1:PORT when asked, then run the command under the seccomp filter
and pass its status on.

`python -I -S /harness/init.py [--uid N --gid N] [--nproc N] [--seccomp-fd N]
[--uds PATH --port PORT] [--status-fd N] -- ARGV`
runs inside bwrap (core/sandbox/bwrap.py builds that command), right after bwrap made the
namespaces and the filesystem view:

- `--uid/--gid`: when the harness is root, bwrap starts us as root *of a user namespace that
  maps only root and the sandbox's uid* (so bwrap can bind folders only root can reach); we
  become that unprivileged uid before anything else, which clears every capability (checked).
- `--nproc`: RLIMIT_NPROC. The kernel counts it per user per user namespace and enforces it
  for any uid but the host's root, so it bounds a fork bomb to this sandbox.
- `--uds/--port`: the Case's network namespace has only a loopback (bwrap brings it up); we
  listen on 127.0.0.1:PORT and forward each connection to the relay's Unix socket, the one
  socket bound into the sandbox. Bytes pass as they arrive (a stream token by token).
- `--seccomp-fd`: an fd holding the BPF program core/sandbox/seccomp.py built; it is loaded
  (after no_new_privs) in the command's process only, right before the exec, so the
  forwarder may still open the relay's Unix socket and the command may open none. The
  forwarder makes itself non-dumpable first: the command, same uid, cannot write its
  memory through /proc/PID/mem to borrow that right.

- `--status-fd`: the write end of the harness's status pipe, made close-on-exec here. We
  write `ready` just before the exec and `failed: WHY` when a step (or the exec) fails.
  bwrap closes every other copy of it, so the harness reads, in order: `ready` then the end
  of the pipe at the exec (the Case started); `failed: ...` (the sandbox could not be set
  up, the Case never ran); or the end with nothing (bwrap itself failed before us). That
  is how a setup failure is told from the Case's own exit: it blocks the run, it is never
  the Case's fault.

With the relay we fork: the child execs the command; we forward, wait for it and exit with
its status (128+N when signal N ended it). Without it (the checks, the fake baseline) we
exec the command ourselves: one process less, and bwrap reports its status the same way.
bwrap's own init (PID 1) reaps orphans; when its first child exits it exits, and the
kernel ends every process left in the PID namespace (a `setsid` daemon included).

Stdlib only, no asyncio or argparse: it starts before every Case and check, so its start-up
is the harness's overhead. `--probe` checks the same steps and prints what it found.
"""

from __future__ import annotations

import _signal  # not `signal`: its enum wrappers cost ~5 ms of every sandbox's start
import os
import resource
import sys

TYPE_CHECKING = False  # typing's import costs a few ms of every sandbox's start
if TYPE_CHECKING:
    import socket

COPY_SIZE = 1 << 16
FILTER_MAX = 1 << 16
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SETUP_FAILED = 125
"""The exit code when the sandbox could not be set up: the command was not started."""


class SetupError(Exception):
    """A step of the set-up failed; the message says which and why."""


def capabilities() -> int:
    """This process's effective capability set, from /proc/self/status."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise SetupError("no CapEff line in /proc/self/status")


def become(uid: int, gid: int) -> None:
    """Leave root of the user namespace for good: no groups, then gid, then uid."""
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise SetupError(f"switching to uid {uid}: {exc.strerror}") from None
    if capabilities() != 0:
        raise SetupError("capabilities left after switching uid")


def limit_processes(count: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (count, count))
    except (OSError, ValueError) as exc:
        raise SetupError(f"setting RLIMIT_NPROC to {count}: {exc}") from None


def read_filter(fd: int) -> bytes:
    """The BPF program from its fd (pread: the fd's offset is shared by every sandbox)."""
    try:
        data = os.pread(fd, FILTER_MAX, 0)
        os.close(fd)
    except OSError as exc:
        raise SetupError(f"reading the seccomp filter: {exc.strerror}") from None
    if not data or len(data) % 8:
        raise SetupError("the seccomp filter handed over is malformed")
    return data


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    """prctl(option, arg2, arg3, 0, 0): 0, or the errno it failed with."""
    import ctypes  # only here: a few ms, paid by filtered commands and the forwarder

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
    return 0 if libc.prctl(option, arg2, arg3, 0, 0) == 0 else ctypes.get_errno()


def load_filter(program: bytes) -> None:
    """No new privileges, then the filter, on this process and whatever it execs."""
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.addressof(buf))
    err = _prctl(PR_SET_NO_NEW_PRIVS, 1) or _prctl(
        PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
    if err:
        raise SetupError(f"loading the seccomp filter: {os.strerror(err)} (a kernel "
                         "without seccomp?)")


def listen(port: int) -> socket.socket:
    import socket  # only here: a sandbox without the relay starts ~10 ms sooner

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise SetupError(f"listening on 127.0.0.1:{port}: {exc.strerror}") from None
    return listener


# -- forwarding -------------------------------------------------------------------------
def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes as they arrive, then pass the end of input on as a half-close; a broken
    side ends both directions."""
    import socket

    try:
        while data := src.recv(COPY_SIZE):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for each in (src, dst):
            try:  # noqa: SIM105 - contextlib's import costs every sandbox's start
                each.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _forward(case_side: socket.socket, uds: str) -> None:
    import socket
    import threading

    # Nagle off: a stream's small writes (a chunk, a chunked body's end) must not wait out
    # the Case's delayed ACK (~40 ms) on a kept-alive connection.
    case_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        relay_side.connect(uds)
    except OSError:
        relay_side.close()
        case_side.close()
        return
    upward = threading.Thread(target=_pipe, args=(case_side, relay_side), daemon=True)
    try:
        upward.start()
        _pipe(relay_side, case_side)
        upward.join()
    except RuntimeError:  # out of threads: this connection just closes
        pass
    relay_side.close()
    case_side.close()


def _accept(listener: socket.socket, uds: str) -> None:
    """Forever: each connection gets its own forwarding thread (daemons: they end with us)."""
    import threading

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            threading.Thread(target=_forward, args=(conn, uds), daemon=True).start()
        except RuntimeError:  # out of threads (or of processes: RLIMIT_NPROC)
            conn.close()


_STATUS: list[int] = []
"""The status pipe's fd, when the harness gave one (see the module's docstring)."""


def _status_open(fd: int) -> None:
    import fcntl  # only with a status fd: the Case's and fake engine's sandboxes

    try:
        fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    except OSError:
        return
    _STATUS.append(fd)


def tell(message: str) -> None:
    """One line to the harness on the status pipe (nothing without one)."""
    for fd in _STATUS:
        try:  # noqa: SIM105 - contextlib's import costs every sandbox's start
            os.write(fd, message.encode("utf-8", "replace")[:1000] + b"\n")
        except OSError:
            pass


def _status_close() -> None:
    """This process will not exec: its copy of the pipe goes (the forwarder's)."""
    while _STATUS:
        try:  # noqa: SIM105
            os.close(_STATUS.pop())
        except OSError:
            pass


def setup_failed(why: str) -> int:
    print(f"sandbox: the command was not started: {why}", file=sys.stderr, flush=True)
    tell(f"failed: {why}")
    return SETUP_FAILED


def _exec(argv: list[str]) -> None:
    """Become the command, with the signal dispositions Python changed at start-up (it
    ignores SIGPIPE and SIGXFSZ, which an exec would pass on) back to the default.
    `ready` goes to the harness first: the pipe's end, at the exec, says it happened."""
    try:
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
            _signal.signal(sig, _signal.SIG_DFL)
        tell("ready")
        os.execvp(argv[0], argv)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == 2 and os.sep in argv[0] and os.path.exists(argv[0]):  # ENOENT
            why += (" (the program is there: its #! interpreter is not, or is in a folder "
                    "the sandbox does not show; CTO_HARNESS_CASE_SANDBOX_RO adds one)")
        print(f"sandbox: cannot start {argv[0]}: {why}", file=sys.stderr, flush=True)
        tell(f"failed: cannot start {argv[0]}: {why}")
    os._exit(127)


def run(options: dict[str, str], argv: list[str]) -> int:
    if "--status-fd" in options:
        _status_open(int(options["--status-fd"]))
    try:
        if "--uid" in options:
            become(int(options["--uid"]), int(options["--gid"]))
        if "--nproc" in options:
            limit_processes(int(options["--nproc"]))
        program = read_filter(int(options["--seccomp-fd"])) \
            if "--seccomp-fd" in options else None
        listener = listen(int(options["--port"])) if "--uds" in options else None
        if listener is None and program is not None:
            load_filter(program)
        if listener is not None and _prctl(PR_SET_DUMPABLE, 0):
            raise SetupError("the forwarder cannot make itself non-dumpable")
    except SetupError as exc:
        return setup_failed(str(exc))
    if listener is None:
        _exec(argv)
    import threading

    try:
        child = os.fork()
    except OSError as exc:
        return setup_failed(f"cannot fork: {exc.strerror}")
    if child == 0:
        if listener is not None:
            listener.close()
        if program is not None:
            try:
                load_filter(program)
            except SetupError as exc:
                os._exit(setup_failed(str(exc)))
        _exec(argv)
    _status_close()
    if listener is not None:
        threading.Thread(target=_accept, args=(listener, options["--uds"]),
                         daemon=True).start()
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def filtered() -> str:
    """`on` when this process runs under a seccomp filter that refuses a Unix socket and
    allows a socketpair (what the Case's filter must do), else what was found."""
    import socket

    with open("/proc/self/status") as fh:
        mode = next((line.split()[1] for line in fh if line.startswith("Seccomp:")), "?")
    if mode != "2":
        return f"mode-{mode}"
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
        return "unix-socket-allowed"
    except PermissionError:
        pass
    try:
        for end in socket.socketpair():
            end.close()
    except OSError:
        return "socketpair-refused"
    return "on"


def probe(options: dict[str, str]) -> int:
    """The same set-up, then what it gave: `uid=N caps=0 seccomp=on|off pids=[...]`."""
    try:
        if "--uid" in options:
            become(int(options["--uid"]), int(options["--gid"]))
        caps = capabilities()
        seccomp = "off"
        if "--seccomp-fd" in options:
            load_filter(read_filter(int(options["--seccomp-fd"])))
            seccomp = filtered()
    except SetupError as exc:
        print(exc)
        return 1
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    print(f"uid={os.getuid()} caps={caps:x} seccomp={seccomp} pids={pids}")
    return 0 if caps == 0 else 1


VALUED = ("--uid", "--gid", "--nproc", "--seccomp-fd", "--uds", "--port", "--status-fd")
USAGE = ("usage: init.py [--uid N --gid N] [--nproc N] [--seccomp-fd N] "
         "[--uds PATH --port PORT] [--status-fd N] "
         "(--probe | -- ARGV...)")


def main(args: list[str]) -> int:
    """One fixed form, written only by core/sandbox/bwrap.py."""
    options: dict[str, str] = {}
    while args and args[0] in VALUED and len(args) > 1:
        options[args[0]] = args[1]
        args = args[2:]
    numbers = all(options[k].isdigit() for k in options if k != "--uds")
    paired = ("--uid" in options) == ("--gid" in options) \
        and ("--uds" in options) == ("--port" in options)
    if numbers and paired and args == ["--probe"]:
        return probe(options)
    if numbers and paired and len(args) > 1 and args[0] == "--":
        return run(options, args[1:])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
