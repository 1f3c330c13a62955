"""A silent, signal-free uvicorn server on loopback, and the OpenAI error shape: the parts
the relay and the scripted endpoint share."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

_SILENT_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        name: {"handlers": ["null"], "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    },
}
"""uvicorn's error log would print exceptions whose text may hold the upstream: drop it all."""


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1:<ephemeral> (unless `tcp` is False) and
    on a Unix socket at `uds` when given, inside the running loop: silent and signal-free
    (uvicorn's `serve()` would swap in its own SIGINT/SIGTERM handlers; the harness owns
    those), and stopped at once rather than on uvicorn's 100 ms ticks (`main_loop` polls
    `should_exit`, and its `shutdown` sleeps 0.1 s before waiting for connections in 0.1 s
    steps)."""

    GRACE_S = 1.0
    STEP_S = 0.005

    def __init__(self, app: ASGIApp, *, uds: Path | None = None,
                 connection_limit: int | None = None, tcp: bool = True,
                 host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[Path, Path] | None = None) -> None:
        """`host`, `port` and `tls` (certificate, key) are the gateway's: a LAN address
        served over TLS. Every other server here is loopback, plain, on an ephemeral port."""
        if not tcp and uds is None:
            raise ValueError("a server with no TCP listener needs a Unix socket")
        self._host, self._want_port, self._tls = host, port, tls
        self._app = app
        self._uds = uds
        self._tcp = tcp
        self._connection_limit = connection_limit
        self._bound_uds = False
        self._server: uvicorn.Server | None = None
        self.port = 0

    async def start(self) -> None:
        # Binding here (not in uvicorn) makes a bind failure a plain OSError, never the
        # sys.exit() uvicorn calls, and gives the port before the first request.
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto
        # says TCP, and without it a small write (a stream's first chunk after its headers,
        # the end of a chunked body) waits out the client's delayed ACK, ~40 ms.
        sockets = []
        if self._tcp:
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            if self._want_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self._host, self._want_port))
            except OSError:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
            sockets.append(sock)
        if self._uds is not None:  # the same app, for a Case jailed in its own namespace
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(unix)
            try:
                unix.bind(str(self._uds))
                self._bound_uds = True
                os.chmod(self._uds, 0o600)
            except OSError:
                for each in sockets:
                    each.close()
                self._unlink()
                raise
        config = uvicorn.Config(
            self._app,
            log_config=_SILENT_LOGGING,
            access_log=False,
            interface="asgi3",
            lifespan="off",
            server_header=False,
            limit_concurrency=self._connection_limit,
            ws="none",  # an upgrade request reaches the app as plain HTTP, to be answered
            ssl_certfile=str(self._tls[0]) if self._tls else None,
            ssl_keyfile=str(self._tls[1]) if self._tls else None,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=sockets)
        except BaseException:
            for each in sockets:
                each.close()
            self._unlink()
            raise
        self._server = server

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish within the grace time, then cancel
        what remains."""
        server, self._server = self._server, None
        if server is None:
            return
        for listening in server.servers:
            listening.close()  # and its socket, which it owns since startup
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.GRACE_S
        while (state.connections or state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(self.STEP_S)
        for task in list(state.tasks):
            task.cancel()
        for listening in server.servers:
            await listening.wait_closed()
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file this server made (and only that)."""
        if self._uds is not None and self._bound_uds:
            self._bound_uds = False
            with contextlib.suppress(FileNotFoundError):
                self._uds.unlink()


def openai_error(status: int, message: str, kind: str) -> JSONResponse:
    """The error shape OpenAI clients parse: {"error": {"message", "type", "code"}}."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)
