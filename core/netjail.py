"""Run the Case in a network namespace of its own, with one door out: the relay.

`python -I -S core/netjail.py --uds PATH --port PORT -- CASE_ARGV...` unshares the network
namespace (through a user namespace when the kernel wants one), brings up its loopback, and
listens on 127.0.0.1:PORT there, forwarding each connection to the relay's Unix socket
(a path in the filesystem, so it crosses namespaces). It then forks: the child execs the
Case, which can reach nothing but that forwarder; the parent forwards until the Case exits
and exits with its status (128+N when a signal N ended it).

Stdlib only and light (threads, no asyncio or argparse: it starts before every Case, so its
start-up is the harness's overhead), run from the Case's cwd and environment: it imports
nothing of the harness. The harness signals the whole process group, so the Case gets its
own copy of every signal; the forwarder waits for it to exit rather than die first.
`--probe` tries the same isolation and exits 0, or 1 with the reason on stdout.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"
"""struct ifreq: the interface name, then ifr_flags at the start of a 24-byte union."""
PR_SET_PDEATHSIG = 1
COPY_SIZE = 1 << 16
JAIL_FAILED = 125
"""The exit code when isolation fails at run time: the Case was not started."""
PROBE_TIMEOUT_S = 10.0
_SELF = [sys.executable, "-I", "-S", __file__]
"""This file as a script: isolated from the environment and without site-packages, so it
starts in a few ms and imports nothing but the standard library."""


class JailError(Exception):
    """The namespace could not be made; the message says which step and why."""


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def unshare_network() -> str:
    """Enter a new network namespace; as an unprivileged user, inside a new user namespace
    that maps only our own uid and gid. Returns how it was done."""
    try:
        _libc_call("unshare", CLONE_NEWNET)
        return "network namespace"
    except OSError as first:
        if first.errno != 1:  # anything but EPERM will not be cured by a user namespace
            raise JailError(f"unshare(CLONE_NEWNET): {first.strerror}") from None
    uid, gid = os.geteuid(), os.getegid()
    try:
        _libc_call("unshare", CLONE_NEWUSER | CLONE_NEWNET)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as exc:
        raise JailError(f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {exc.strerror}") from None
    return "user and network namespace"


def loopback_up() -> None:
    """`ip link set lo up` without the `ip` binary: SIOCSIFFLAGS with IFF_UP."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            ifreq = fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0))
            flags = struct.unpack(IFREQ, ifreq)[1]
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
    except OSError as exc:
        raise JailError(f"bringing up lo: {exc.strerror}") from None


def jail(port: int) -> socket.socket:
    """Isolate this process and listen on 127.0.0.1:port in its new namespace."""
    unshare_network()
    loopback_up()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise JailError(f"listening on 127.0.0.1:{port} in the namespace: {exc.strerror}") \
            from None
    return listener


# -- forwarding -------------------------------------------------------------------------
def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes as they arrive (a stream passes through token by token), then pass the
    end of input on as a half-close; a broken side ends both directions."""
    try:
        while data := src.recv(COPY_SIZE):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for each in (src, dst):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)


def _forward(case_side: socket.socket, uds: str) -> None:
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
    with contextlib.suppress(RuntimeError):  # out of threads: this connection just closes
        upward.start()
        _pipe(relay_side, case_side)
        upward.join()
    relay_side.close()
    case_side.close()


def _accept(listener: socket.socket, uds: str) -> None:
    """Forever: each connection from the Case gets its own forwarding thread. Daemon
    threads end with the process, when the Case has exited."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            threading.Thread(target=_forward, args=(conn, uds), daemon=True).start()
        except RuntimeError:  # out of threads (a Case opening connections without end)
            conn.close()


def _exec_case(argv: list[str]) -> None:
    """In the forked child: die with the forwarder, then become the Case."""
    try:
        _libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"netjail: cannot start the Case {argv[0]}: {exc.strerror}", file=sys.stderr,
              flush=True)
    os._exit(127)


def run(uds: str, port: int, argv: list[str]) -> int:
    try:
        listener = jail(port)
    except JailError as exc:
        print(f"netjail: the Case was not started: {exc}", file=sys.stderr, flush=True)
        return JAIL_FAILED
    # The group's signals reach the Case directly; the forwarder outlives them until the
    # Case has exited, so the Case's own status is the one reported.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)
    child = os.fork()
    if child == 0:
        listener.close()
        _exec_case(argv)
    threading.Thread(target=_accept, args=(listener, uds), daemon=True).start()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def probe() -> int:
    """Try the isolation a jail would make; 0 with how, or 1 with why not, on stdout."""
    try:
        how = unshare_network()
        loopback_up()
    except JailError as exc:
        print(exc)
        return 1
    print(how)
    return 0


def netjail_available() -> tuple[bool, str]:
    """Whether the Case can be isolated here, asked of a throwaway process (an unshare
    cannot be undone) before the Case starts; the reason when not."""
    import subprocess  # the harness's side only: the jail itself never needs it

    try:
        proc = subprocess.run([*_SELF, "--probe"],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the isolation probe did not run ({type(exc).__name__})"
    reason = proc.stdout.strip() or proc.stderr.strip()[-300:] or f"exit {proc.returncode}"
    return proc.returncode == 0, reason


def launcher(uds: Path, port: int) -> list[str]:
    """The argv prefix that runs a Case inside the jail."""
    return [*_SELF, "--uds", str(uds), "--port", str(port), "--"]


USAGE = "usage: netjail.py --probe | --uds PATH --port PORT -- CASE_ARGV..."


def main(args: list[str]) -> int:
    """One fixed form, written only by `launcher()` and `netjail_available()`."""
    if args == ["--probe"]:
        return probe()
    if len(args) > 5 and args[0] == "--uds" and args[2] == "--port" and args[4] == "--" \
            and args[3].isdigit():
        return run(args[1], int(args[3]), args[5:])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
