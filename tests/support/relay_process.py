"""A relay alone in its own process, for tests that measure it from outside (its memory in
/proc): `python tests/support/relay_process.py LEDGER` with RELAY_UPSTREAM, RELAY_TOKEN and
RELAY_MODEL in the environment. Prints `port PID PORT` when it serves; stops when stdin
closes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pydantic import SecretStr

from core.relay.server import Relay


async def main(ledger: Path) -> None:
    relay = Relay(upstream=SecretStr(os.environ["RELAY_UPSTREAM"]), api_key=None,
                  model=os.environ["RELAY_MODEL"], token=os.environ["RELAY_TOKEN"],
                  ledger=ledger, redact=lambda text: text)
    await relay.start()
    print(f"port {os.getpid()} {relay.port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await relay.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
