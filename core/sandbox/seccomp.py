"""The seccomp filter of every sandboxed process (the Case, its checks, the fake baseline).

Why: bwrap's namespaces do not stop everything. A Unix socket in any folder the sandbox
shows (the Case's own folder, an interpreter's prefix, a folder lent with `_RO`) is
reachable whatever the network namespace — a read-only bind does not stop `connect()` —
and some calls reach the kernel in ways the anchors (Anthropic's sandbox-runtime, Codex's
Linux sandbox, Docker's default profile) refuse to untrusted code. So each sandboxed
command starts under a filter that answers EPERM to:

- `socket(AF_UNIX, …)`: no new Unix socket (`socketpair` stays allowed: a connected pair
  reaches no path; Node and Python make them for child pipes and event loops). The relay's
  forwarder (core/sandbox/init.py) is the sandbox's first process and is not filtered: it
  loads the filter in the Case's process only, after the fork;
- `ptrace`, `process_vm_readv`/`process_vm_writev`: no reading or writing another
  process's memory;
- `io_uring_*` (a second way into most calls, unseen by this filter), `bpf`,
  `perf_event_open`, `userfaultfd`, `keyctl`/`add_key`/`request_key`: kernel surfaces a
  Case has no use for;
- `unshare`/`clone` with CLONE_NEWUSER: no new user namespace (in one a process holds every
  capability again, and mounts over what the sandbox hides); `clone3` answers ENOSYS, as
  in Docker's profile, since its flags sit in memory a filter cannot read: the C library
  then falls back to `clone`, which is filtered.

Built with libseccomp (through `pyseccomp`, from PyPI; the library itself is the system's
`libseccomp.so.2`, which apt and systemd depend on) on the host, exported as a BPF program,
and loaded by the sandbox's first process with `prctl(PR_SET_SECCOMP)` right before it
execs the command. The program checks the architecture (a foreign ABI, int 0x80 or x32,
kills the process), and compares only the low 32 bits of `int` arguments (the kernel
ignores the rest, so `socket(0x100000001, …)` is still AF_UNIX). A kernel or a machine
without seccomp blocks the run, unless `CTO_HARNESS_CASE_SECCOMP=off` (recorded, shown,
never evidence for a model).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os

from core.errors import HarnessError

AF_UNIX = 1
CLONE_NEWUSER = 0x10000000
LOW32 = 0xFFFF_FFFF
DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup",
          "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd",
          "keyctl", "add_key", "request_key")
"""Refused whatever their arguments (EPERM)."""
FILTERED = ("socket(AF_UNIX)", *DENIED, "unshare(CLONE_NEWUSER)", "clone(CLONE_NEWUSER)",
            "clone3 (ENOSYS)")
"""What the report's `case_sandbox.seccomp_filtered` says the filter refuses."""


class SeccompUnavailable(HarnessError):
    """No seccomp filter can be built here; the message says what is missing."""


@functools.cache
def program() -> bytes:
    """The filter as a BPF program (`struct sock_filter[]`) for this machine's
    architecture: built once per harness process."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError, OSError) as exc:  # RuntimeError: no libseccomp
        raise SeccompUnavailable(
            f"libseccomp cannot be loaded ({exc}): install the system's libseccomp2 "
            "(pyseccomp, a dependency, calls it)") from None
    eperm = sc.ERRNO(errno.EPERM)
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        flt.add_rule(eperm, "socket", sc.Arg(0, sc.MASKED_EQ, LOW32, AF_UNIX))
        for name in DENIED:
            flt.add_rule(eperm, name)
        for name in ("unshare", "clone"):
            flt.add_rule(eperm, name, sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        # In memory: a temporary file would make tempfile probe TMPDIR, /tmp and at last
        # the cwd (the user's target repository) for somewhere writable.
        with os.fdopen(os.memfd_create("cto-harness-seccomp-build", os.MFD_CLOEXEC),
                       "w+b") as out:
            flt.export_bpf(out)
            out.seek(0)
            return out.read()
    except OSError as exc:
        raise SeccompUnavailable(f"libseccomp could not build the filter ({exc})") from None


def program_fd() -> int:
    """A sealed memfd holding the program, for the sandbox's first process to read with
    pread (its offset is never moved, so one fd serves every sandbox of the process).
    The caller closes it."""
    data = program()
    fd = os.memfd_create("cto-harness-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.pwrite(fd, data, 0)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    except OSError as exc:
        os.close(fd)
        raise SeccompUnavailable(f"cannot hand the filter over ({exc.strerror})") from None
    return fd
