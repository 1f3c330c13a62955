"""`cto-harness gateway`: serve the endpoint to a job's workers (`serve`), issue a job's
token (`token`), revoke it (`revoke`). Run on the endpoint's host, which is never a Ray node.

`serve` reads the endpoint and its key as a run does (CTO_HARNESS_CASE_LOCAL_BASE_URL[_FILE],
CTO_HARNESS_CASE_LOCAL_API_KEY[_FILE]; never from argv) and prints its own address and
certificate fingerprint — the two things a worker needs besides its token — never the
endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from pathlib import Path

from core.cli.common import emit_json
from core.errors import BadInput
from core.relay.bodies import BodyRules
from core.relay.gateway import Gateway
from core.relay.gateway_state import (
    LEDGER,
    Tokens,
    check_job_name,
    default_state_dir,
    ensure_certificate,
    parse_ttl,
    prepare_state,
)
from core.run.readiness import check_endpoint_config, check_model_served, probe_endpoint
from core.secrets.redact import Redactor
from core.settings import resolve
from core.settings.gateway import GATEWAY_URL_VAR
from core.term import visible

DEFAULT_LISTEN = "0.0.0.0:7443"


class GatewayUsage(BadInput):
    """A gateway command given something it cannot use; the message says how to fix."""


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise GatewayUsage(f"--listen {text!r} is not HOST:PORT (e.g. 0.0.0.0:7443, or "
                           "127.0.0.1:0 for a free port)")
    return host, int(port)


def _state(args: argparse.Namespace) -> Path:
    return prepare_state(Path(args.state).expanduser() if args.state else default_state_dir())


def _shown_host(host: str) -> str:
    """The address a worker would use: this host's name when listening on every address."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname() or "localhost"
    return f"[{host}]" if ":" in host else host


def cmd_serve(args: argparse.Namespace) -> int:
    host, port = _listen(args.listen)
    res = resolve()
    if res.gateway is not None:
        raise GatewayUsage(f"{GATEWAY_URL_VAR} is set here: a gateway forwards to the "
                           "endpoint itself, never to another gateway; unset it on this host")
    config = check_endpoint_config(res)
    if config.state != "ok":
        raise GatewayUsage(f"gateway serve needs the endpoint on this host: {config.detail}")
    assert res.endpoint is not None
    state = _state(args)
    tls = None
    fingerprint = None
    if not args.insecure_plain_http:
        cert, key, fingerprint = ensure_certificate(state, host)
        tls = (cert, key)
    redactor = Redactor(res.secrets())
    gateway = Gateway(upstream=res.endpoint, api_key=res.api_key, model=res.model,
                      state=state, host=host, port=port, tls=tls, redact=redactor.redact,
                      rules=BodyRules(max_n=res.relay_max_n,
                                      remote_media=res.relay_remote_media),
                      streams=redactor.stream)
    return asyncio.run(_serve(gateway, args, host, fingerprint, state))


async def _serve(gateway: Gateway, args: argparse.Namespace, host: str,
                 fingerprint: str | None, state: Path) -> int:
    try:
        await gateway.start()
    except OSError as exc:
        raise GatewayUsage(f"--listen {args.listen}: cannot listen there "
                           f"({exc.strerror or exc}); pick another address or port") from None
    scheme = "https" if gateway.tls else "http"
    url = f"{scheme}://{_shown_host(host)}:{gateway.port}/v1"
    facts = {"url": url, "fingerprint": fingerprint, "ledger": str(state / LEDGER),
             "state": str(state), "transport": "tls" if gateway.tls else "plain-http",
             "model": gateway.model}
    if args.json:  # one line: a supervisor reads it as soon as the gateway listens
        print(json.dumps(facts))
    else:
        print(f"cto-harness gateway: serving {url} for model {gateway.model}")
        if fingerprint:
            print(f"fingerprint sha256 {fingerprint}  (workers: "
                  f"CTO_HARNESS_GATEWAY_FINGERPRINT={fingerprint})")
        else:
            print("plain http (--insecure-plain-http): recorded in the ledger; workers need "
                  "CTO_HARNESS_GATEWAY_PLAIN_HTTP=allow")
        print(f"ledger {state / LEDGER}")
    sys.stdout.flush()
    await asyncio.to_thread(_say_endpoint, gateway)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await gateway.stop()
    return 0


def _say_endpoint(gateway: Gateway) -> None:
    """One stderr line on whether the endpoint answers and serves the model, as readiness
    judges it (its detail never holds the endpoint): the operator learns at start, not from
    the first worker's blocked run. Not fatal: the endpoint may come up later."""
    res = resolve()
    redact = Redactor(res.secrets()).redact
    reachable, ids = probe_endpoint(res, 5.0, redact)
    said = reachable if ids is None else check_model_served(res.model, ids, redact)
    state = "ok" if said.state == "ok" else "WARNING"
    print(visible(f"cto-harness gateway: endpoint {said.name.replace('_', ' ')}: {state}: "
                  f"{said.detail}"), file=sys.stderr, flush=True)


def cmd_token(args: argparse.Namespace) -> int:
    job = check_job_name(args.job)
    state = _state(args)
    out = Path(args.out).expanduser() if args.out else state / "tokens" / f"{job}.token"
    issued = Tokens(state).issue(job, parse_ttl(args.ttl), out)
    if args.json:
        emit_json({"job": issued.job, "token_file": str(issued.path),
                   "expires": issued.expires})
    else:
        print(f"token for job {issued.job} written to {issued.path} (0600), expires "
              f"{issued.expires}; copy it to the workers and point "
              "CTO_HARNESS_GATEWAY_TOKEN_FILE at it")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    job = check_job_name(args.job)
    count = Tokens(_state(args)).revoke(job)
    if args.json:
        emit_json({"job": job, "revoked": count})
    else:
        print(f"revoked {count} token(s) of job {job}" if count
              else f"job {job} has no live token")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    gateway = sub.add_parser(
        "gateway", help="serve the endpoint to a job's workers over TLS, by job token",
        description="On the endpoint's host: forward workers' relays to the endpoint "
                    "(serve), issue a job's token (token), revoke it (revoke).")
    verbs = gateway.add_subparsers(dest="verb", required=True, metavar="VERB")

    def state_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state", metavar="DIR",
                            help="the gateway's state folder (default "
                                 "~/.local/state/cto-harness/gateway)")
        parser.add_argument("--json", action="store_true")

    serve = verbs.add_parser("serve", help="serve until SIGINT/SIGTERM",
                             description="Serve the endpoint (read as a run reads it, never "
                                         "from argv) on HOST:PORT over TLS; print the address "
                                         "and the certificate's fingerprint.")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                       help=f"address to listen on (default {DEFAULT_LISTEN})")
    serve.add_argument("--insecure-plain-http", action="store_true",
                       help="serve plain http (the explicit opt-out, recorded in the ledger "
                            "and every run's report)")
    state_arg(serve)
    serve.set_defaults(func=cmd_serve)
    token = verbs.add_parser("token", help="issue a job's token (written 0600, never printed)")
    token.add_argument("--job", required=True, metavar="NAME")
    token.add_argument("--ttl", default="24h", help="lifetime: 90s, 30m, 24h, 7d (default 24h)")
    token.add_argument("--out", metavar="FILE",
                       help="where to write it (default STATE/tokens/NAME.token)")
    state_arg(token)
    token.set_defaults(func=cmd_token)
    revoke = verbs.add_parser("revoke", help="revoke every token of a job")
    revoke.add_argument("--job", required=True, metavar="NAME")
    state_arg(revoke)
    revoke.set_defaults(func=cmd_revoke)
