"""`cto-harness key`: the signing key's public half (PEM) and its id, for a reviewer to
verify runs with (`cto-harness validate --key PUB`, or openssl alone: README). The key is
made on first use at the default place, as a run would make it."""

from __future__ import annotations

import argparse
import os

from core.cli.common import emit_json
from core.evidence.keys import load_signing_key, public_pem


def cmd_key(args: argparse.Namespace) -> int:
    key = load_signing_key(os.environ)
    pem = public_pem(key.public)
    if args.json:
        emit_json({"keyid": key.keyid, "public_key_pem": pem, "key_file": str(key.path),
                   "algorithm": "ed25519"})
    else:
        print(f"keyid {key.keyid}")
        print(pem, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    key = sub.add_parser("key", help="the signing key's public half (PEM) and its id",
                         description="Print the public key runs are signed with (PEM) and "
                                     "its id; the private key stays in its file.")
    key.add_argument("--json", action="store_true")
    key.set_defaults(func=cmd_key)
