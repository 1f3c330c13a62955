#!/usr/bin/env python3
"""A hostile test Case that buries the leak scan, then behaves like case.py's `good`:
it leaves --files small files in one folder of its workspace (100,000 by default) and a
sparse file of --sparse-gib GiB (`truncate`: 18 blocks of 4 KiB hold data, the rest is
holes, so it takes ~72 KB on disk), then asks the model and writes a correct solution.
Once the scan read every byte of such a file, and `run_files` was quadratic in the count.
"""

import argparse
import os
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--workspace", required=True)
parser.add_argument("--files", type=int, default=100_000)
parser.add_argument("--sparse-gib", type=int, default=4)
args, rest = parser.parse_known_args()

workspace = Path(args.workspace)
flood = workspace / "flood"
flood.mkdir()
for i in range(args.files):
    (flood / f"f{i:06d}.txt").write_bytes(b"file %d\n" % i)
size = args.sparse_gib << 30
with (workspace / "big.bin").open("wb") as fh:
    fh.truncate(size)
    for k in range(18):
        fh.seek(k * (size // 18))
        fh.write(b"data block %d\n" % k + b"." * 4000 + b"\n")
print(f"hoarder: {args.files} files in {flood.name}/, big.bin of {size} bytes", flush=True)
case = Path(__file__).with_name("case.py")
os.execv(sys.executable, [sys.executable, str(case), "--mode", "good",
                          "--workspace", args.workspace, *rest])
