"""Which host folders a sandboxed program needs, and which it must never see.

A Case is any executable: an ELF binary, or a script whose `#!` line names an interpreter
(directly or through `env NAME`), which may live under `$HOME` (pyenv, `uv python`, nvm, an
npm prefix) or be a venv's. We bind the program's own folder and its interpreter's prefix
read-only — never the whole `$HOME` — and, for a venv, the venv and the folders its `.pth`
files add (an editable install's source). Everything is resolved on the host first, so the
sandbox shows the same paths the program expects.

The other half: the places no sandbox may show (the runs root, the real `$HOME`, `/root`,
`/run`, every file a `*_FILE` variable names). A folder we bind may not *be* one of them or
sit inside the runs root or a kernel filesystem; one that merely *contains* one gets it
masked (an empty tmpfs for a folder, /dev/null for a file).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.errors import HarnessError

SYSTEM_DIRS = ("/usr", "/etc", "/opt")
"""Bound read-only when present; /bin, /sbin and /lib* too (as the links they usually are)."""
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
KERNEL_DIRS = ("/proc", "/sys", "/dev", "/run")
"""Never bound from the host, nor anything inside them (/run holds daemons' sockets)."""
SHEBANG_MAX = 256
SHIM_DIR = "shims"
"""pyenv/rbenv/asdf put version shims here: scripts that need their manager's whole state,
so `env NAME` lookups skip them, as they do folders the sandbox does not show."""


class PathProblem(HarnessError):
    """A folder cannot be bound; the message names it and why."""


def is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def system_covered(path: Path) -> bool:
    """Already visible through the system folders (read-only)."""
    return any(is_within(path, Path(d)) for d in SYSTEM_DIRS) or any(
        Path(link).is_symlink() and is_within(path, Path(link)) for link in SYSTEM_LINKS)


def _shebang(path: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            head = fh.read(SHEBANG_MAX)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    return os.fsdecode(head[2:].split(b"\n", 1)[0]).split()


def _on_path(name: str, path_env: str) -> Path | None:
    for folder in path_env.split(os.pathsep):
        if not folder or Path(folder).name == SHIM_DIR:
            continue
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def interpreter(program: Path, path_env: str) -> Path | None:
    """The interpreter a script's `#!` line names (through `env`, looked up on PATH)."""
    words = _shebang(program)
    if not words:
        return None
    if Path(words[0]).name != "env":
        return Path(words[0])
    names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return _on_path(names[0], path_env) if names else None


def prefix_of(executable: Path) -> Path:
    """An installation's root: the folder above its `bin/` (…/versions/3.12.1), else its
    own folder."""
    real = executable.resolve()
    return real.parent.parent if real.parent.name == "bin" else real.parent


def venv_of(executable: Path) -> Path | None:
    root = executable.absolute().parent.parent
    return root if (root / "pyvenv.cfg").is_file() else None


def pth_folders(venv: Path) -> list[Path]:
    """Folders a venv's `.pth` files put on sys.path (an editable install's source)."""
    found: list[Path] = []
    for pth in sorted(venv.glob("lib/python*/site-packages/*.pth")):
        try:
            lines = pth.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            if line.startswith("/") and Path(line).is_dir():
                found.append(Path(line))
    return found


def python_binds(executable: Path) -> list[Path]:
    """What a Python interpreter needs: its venv (and the venv's `.pth` folders) and the
    base installation's prefix."""
    binds = [prefix_of(executable)]
    venv = venv_of(executable)
    if venv is not None:
        binds += [venv, *pth_folders(venv)]
    return binds


def program_binds(program: str, path_env: str) -> tuple[Path, list[Path]]:
    """(the program's absolute path, the host folders it needs); PathProblem if absent."""
    found = shutil.which(program, path=path_env) if os.sep not in program else program
    if not found or not Path(found).is_file():
        raise PathProblem(f"the Case binary {program} was not found")
    path = Path(found).absolute()
    binds = [path.parent, path.resolve().parent]
    real = path.resolve()
    if "node_modules" in real.parts:  # an npm package: the whole package tree
        top = real.parts.index("node_modules")
        binds.append(Path(*real.parts[:top + 1]))
    interp = interpreter(real, path_env)
    if interp is not None and interp.exists():
        binds += python_binds(interp) if venv_of(interp) else [prefix_of(interp)]
        binds.append(interp.absolute().parent)
    return path, binds


def harness_python_binds() -> list[Path]:
    """The harness's own interpreter (it runs each sandbox's first process and the checks)."""
    return [prefix_of(Path(sys.executable)), Path(sys.base_prefix).resolve()]


def secret_files(environ: Mapping[str, str]) -> list[Path]:
    """Every file a `*_FILE` variable names, the link and its target."""
    files: list[Path] = []
    for name, value in environ.items():
        if name.endswith("_FILE") and value.strip():
            path = Path(value.strip()).expanduser().absolute()
            files += [path, path.resolve()]
    return files


def private_places(runs_root: Path, environ: Mapping[str, str]) -> list[Path]:
    """What no sandbox may show: the runs root, the real $HOME, /root, /run, *_FILE files."""
    places = [runs_root.absolute(), runs_root.resolve(), Path("/root"), Path("/run")]
    home = environ.get("HOME") or os.path.expanduser("~")
    if home and home != "/":
        places += [Path(home).absolute(), Path(home).resolve()]
    return [*dict.fromkeys([*places, *secret_files(environ)])]


def check_bind(source: Path, private: Iterable[Path], runs_root: Path, *, what: str) -> None:
    """A folder may be bound unless it is `/`, a private place itself, inside the runs root
    or a kernel filesystem."""
    if source == Path("/"):
        raise PathProblem(f"{what} is /: that would show the whole machine")
    for place in private:
        if source == place:
            raise PathProblem(f"{what} {source} is a place the sandbox never shows")
    for root in (runs_root.absolute(), runs_root.resolve(), *map(Path, KERNEL_DIRS)):
        if is_within(source, root):
            raise PathProblem(f"{what} {source} is inside {root}, which the sandbox never "
                              "shows")


def _examinable(place: Path) -> bool:
    """It exists and we may look at it. A place the harness cannot even stat (a `*_FILE`
    under another account's 0700 folder, kept from `su`) the sandbox, the same uid or an
    unprivileged one, cannot reach either: it needs no mask (and must not crash the run)."""
    try:
        os.stat(place)
    except (OSError, ValueError):
        return False
    return True


def _real_dir(path: Path) -> bool:
    try:
        return path.resolve() == path and path.is_dir()
    except OSError:
        return False


def masks(sources: Iterable[Path], private: Iterable[Path]) -> list[Path]:
    """The private places inside a bound folder: each must be covered in the sandbox. One
    inside another masked folder is already hidden (and its own mask could not be laid: the
    folder's empty read-only tmpfs has no such entry), so it is left out."""
    sources = list(sources)
    found = sorted({place for place in private if _examinable(place)
                    and any(src in place.parents for src in sources)})
    folders = [place for place in found if _real_dir(place)]
    return [place for place in found
            if not any(folder in place.parents for folder in folders)]


def parse_paths(var: str, value: str | None) -> list[Path]:
    """`os.pathsep`-separated absolute paths that exist; PathProblem naming the variable."""
    if not value or not value.strip():
        return []
    paths = []
    for item in value.split(os.pathsep):
        if not item:
            continue
        path = Path(item)
        if not path.is_absolute():
            raise PathProblem(f"{var}: {item} is not an absolute path")
        if not path.exists():
            raise PathProblem(f"{var}: {item} does not exist")
        paths.append(path.resolve())
    return paths
