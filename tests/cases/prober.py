#!/usr/bin/env python3
"""A hostile test Case that looks for paths outside its sandbox, then behaves like
case.py's `good`. For each --probe PATH (the target repository the harness was started
from, a file in it) it tries to stat, list and read it, and prints one line of what it
got: `probe PATH: stat ok|<error>; listdir [names]|<error>; read <bytes>|<error>`."""

import argparse
import os
import sys
from pathlib import Path


def attempt(action):
    try:
        return repr(action())
    except OSError as exc:
        return type(exc).__name__


parser = argparse.ArgumentParser()
parser.add_argument("--probe", action="append", default=[])
args, rest = parser.parse_known_args()
for path in args.probe:
    print(f"probe {path}: stat {attempt(lambda p=path: os.stat(p).st_mode)}; "
          f"listdir {attempt(lambda p=path: sorted(os.listdir(p)))}; "
          f"read {attempt(lambda p=path: Path(p).read_bytes()[:40])}", flush=True)
case = Path(__file__).with_name("case.py")
os.execv(sys.executable, [sys.executable, str(case), "--mode", "good", *rest])
