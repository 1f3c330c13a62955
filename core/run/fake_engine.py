"""The fake engine: a real subprocess that calls no model and writes the task's naive
solution. Its same-run result is the baseline a pass claim is measured against: checks
the fake engine also passes prove nothing about the model."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cto-harness fake engine")
    parser.add_argument("--task-file", required=True, type=Path)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--naive", required=True, type=Path)
    args = parser.parse_args(argv)
    naive = args.naive
    print("fake engine: no model called; writing the task's naive solution", flush=True)
    if not naive.is_dir():
        print("fake engine: the task has no naive solution; workspace left as given")
        return 0
    for src in sorted(p for p in naive.rglob("*") if p.is_file()):
        rel = src.relative_to(naive)
        (args.workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, args.workspace / rel)
        print(f"fake engine: wrote {rel}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
