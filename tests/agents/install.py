#!/usr/bin/env python3
"""Install the real coding agents the `realagent` tests run, pinned, into a cache folder.

    python3 tests/agents/install.py

aider-chat and mini-swe-agent (PyPI) each get a venv of their own (and harbor, whose models
validate the ATIF export); Codex CLI and Qwen Code
(npm) each an npm prefix of their own (Codex's Linux binary arrives as its optional npm
dependency). Everything lands under `agents_dir()`, one folder per agent and version, marked
done by a stamp written last: a second call finds the stamps and returns at once. A failed
install leaves `<folder>.failed` holding the reason, which the tests print when they skip.

Stdlib only, so CI can call it before or without the project's venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

STAMP = ".installed"
INSTALL_TIMEOUT_S = 900
PYTHON_RANGE = ((3, 10), (3, 12))
"""aider-chat 0.86 wants Python >= 3.10, < 3.13."""
HARBOR_PYTHON_MIN = (3, 12)
"""harbor (whose pydantic models validate our ATIF export) wants Python >= 3.12."""
NODE_MAJOR_MIN = 20
"""Qwen Code 0.15 wants Node.js 20 (its 0.2x releases want 22)."""


@dataclass(frozen=True)
class Agent:
    name: str
    kind: str  # "pypi" or "npm"
    package: str
    version: str
    command: str

    @property
    def folder(self) -> Path:
        return agents_dir() / f"{self.name}-{self.version}"

    @property
    def bin(self) -> Path:
        return self.folder / "bin" / self.command

    @property
    def failed_file(self) -> Path:
        return self.folder.with_name(self.folder.name + ".failed")


AGENTS: dict[str, Agent] = {a.name: a for a in (
    Agent("aider", "pypi", "aider-chat", "0.86.2", "aider"),
    Agent("mini", "pypi", "mini-swe-agent", "2.4.6", "mini"),
    Agent("qwen", "npm", "@qwen-code/qwen-code", "0.15.10", "qwen"),
    Agent("codex", "npm", "@openai/codex", "0.171.0", "codex"),
)}
HARBOR = Agent("harbor", "pypi", "harbor", "0.25.0", "python")
"""Not an agent: Harbor's own models, to validate `cto-harness transcript --format atif`
(tests/evidence/test_atif.py). Installed beside the agents, with any Python >= 3.12 (it
never runs in the sandbox)."""
TOOLS: dict[str, Agent] = {**AGENTS, HARBOR.name: HARBOR}


def agents_dir() -> Path:
    """`CTO_HARNESS_AGENTS_DIR`, else `$XDG_CACHE_HOME/cto-harness/agents` (~/.cache/...):
    outside every clone and worktree, so all of them share one install."""
    explicit = os.environ.get("CTO_HARNESS_AGENTS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cto-harness" / "agents"


def unavailable(agent: Agent) -> str | None:
    """None when the agent is installed, else why not (for a test's skip reason)."""
    if (agent.folder / STAMP).is_file() and os.access(agent.bin, os.X_OK):
        return None
    if agent.failed_file.is_file():
        return f"{agent.package}=={agent.version} failed to install: " + \
            agent.failed_file.read_text(errors="replace").strip()[-400:]
    return (f"{agent.package}=={agent.version} is not installed in {agent.folder}; "
            "run: python3 tests/agents/install.py")


def system_python() -> str | None:
    """A Python outside $HOME for the agents' venvs: the sandbox shows system folders
    read-only, never the user's home, where pyenv's or uv's interpreters live."""
    for candidate in ("/usr/bin/python3.12", "/usr/bin/python3.11", "/usr/bin/python3.10",
                      "/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print(*sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            version = tuple(int(p) for p in probe.stdout.split())
            if PYTHON_RANGE[0] <= version <= PYTHON_RANGE[1]:
                return candidate
    return None


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{Path(argv[0]).name} exited {proc.returncode}: " + " | ".join(tail))
    return proc.stdout


def harbor_python() -> str | None:
    """A Python >= 3.12 for harbor's venv: uv's (`uv python find`, which also sees
    pyenv's), else pyenv's newest, else a system one; in CI `uv python install 3.12`
    provides it."""
    uv = shutil.which("uv")
    if uv is not None:
        found = subprocess.run([uv, "python", "find", ">=3.12"], capture_output=True,
                               text=True, timeout=60)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = sorted(pyenv.glob("3.1[2-9]*/bin/python3"), reverse=True) + [
        Path(f"/usr/bin/python3.{minor}") for minor in range(19, 11, -1)]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _install_pypi(agent: Agent, folder: Path) -> None:
    python = harbor_python() if agent is HARBOR else system_python()
    if python is None:
        raise RuntimeError("no Python >= 3.12 (uv python install 3.12)" if agent is HARBOR
                           else "no system Python 3.10-3.12 in /usr/bin or /usr/local/bin")
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH (pip install uv)")
    _run([uv, "venv", "--quiet", "--python", python, str(folder)])
    _run([uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"),
          f"{agent.package}=={agent.version}"])


def _install_npm(agent: Agent, folder: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise RuntimeError("npm or node is not on PATH (install Node.js 20 or newer)")
    major = _run([node, "--version"]).strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < NODE_MAJOR_MIN:
        raise RuntimeError(f"Node.js {NODE_MAJOR_MIN} or newer is needed, found "
                           f"{major or 'nothing'}")
    _run([npm, "install", "--global", "--prefix", str(folder), "--no-fund", "--no-audit",
          "--loglevel=error", f"{agent.package}@{agent.version}"])


def install(agent: Agent) -> str | None:
    """Install one agent unless it is there; None on success, else the reason. Venvs hold
    absolute paths, so each installs in place; the stamp, written last, marks it whole."""
    if unavailable(agent) is None:
        return None
    folder = agent.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)  # a half-done install from an earlier call
    agent.failed_file.unlink(missing_ok=True)
    try:
        (_install_pypi if agent.kind == "pypi" else _install_npm)(agent, folder)
        if not os.access(agent.bin, os.X_OK):
            raise RuntimeError(f"the package installed no bin/{agent.command}")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        agent.failed_file.write_text(f"{exc}\n")
        return str(exc)
    (folder / STAMP).write_text(f"{agent.package}=={agent.version}\n")
    return None


def main() -> int:
    """Installs in parallel and prints one line per agent; exit 0 even when one failed:
    its tests then skip with the reason, and the others still run."""
    with ThreadPoolExecutor(max_workers=len(TOOLS)) as pool:
        results = dict(zip(TOOLS, pool.map(install, TOOLS.values()), strict=True))
    for name, problem in results.items():
        agent = TOOLS[name]
        print(f"{name} {agent.version}: " + (f"FAILED: {problem}" if problem
                                              else f"ok ({agent.bin})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
