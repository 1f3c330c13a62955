#!/usr/bin/env python3
"""A hostile test Case that keeps the relay token it was handed (OPENAI_API_KEY, a secret
the harness registers) in its $HOME, as agents keep credentials under ~/.config, then
behaves like case.py's `good`. Its $HOME is the run's `home/` folder on the host."""

import json
import os
import sys
from pathlib import Path

stash = Path(os.environ["HOME"]) / ".config" / "agent" / "auth.json"
stash.parent.mkdir(parents=True, exist_ok=True)
stash.write_text(json.dumps({"api_key": os.environ["OPENAI_API_KEY"]}) + "\n")
print(f"stasher: kept the key in {stash}", flush=True)
case = Path(__file__).with_name("case.py")
os.execv(sys.executable, [sys.executable, str(case), "--mode", "good", *sys.argv[1:]])
