"""The end-of-run leak scan on what a hostile Case leaves: 100,000 small files, and a
4 GiB sparse file with 72 KB of data. Each figure beside a baseline measured in the same
run: a naive full read (walk, read every byte, SHA-256) of the same tree.

    uv run python bench/scan.py [--files N] [--sparse-gib G] [--before]

--before also times the code this replaced on the 100,000 files (its run_files tested
list membership per name: quadratic; it takes minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.evidence.rundir import RunPaths, artifact_hashes
from core.secrets.redact import Redactor
from core.secrets.runscan import scan_run


def naive_full_read(root: Path) -> int:
    """Walk, read every file whole, hash it: what any scan must at least cost when it
    does not know about holes."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            digest = hashlib.sha256()
            with open(os.path.join(folder, name), "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    total += len(chunk)
    return total


def old_run_files(root: Path) -> list[Path]:
    """run_files as it was (a list membership test per name)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if path.is_symlink() or (name in files and path.is_file()):
                found.append(path)
    return sorted(found)


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def the_scan(root: Path, redactor: Redactor) -> None:
    """What a run's seal does: the bounded scan, then the artifact list from its digests."""
    scan = scan_run(root, redactor, seconds=3600, max_bytes=1 << 40)
    assert scan.summary.complete
    artifact_hashes(RunPaths(root), known=scan.digests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--sparse-gib", type=int, default=4)
    parser.add_argument("--before", action="store_true")
    args = parser.parse_args()
    redactor = Redactor({"endpoint": f"http://spark-{secrets.token_hex(4)}.lan:8000/v1"})
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        many = Path(tmp, "many")
        folder = many / "workspace" / "flood"
        folder.mkdir(parents=True)
        for i in range(args.files):
            (folder / f"f{i:06d}.txt").write_text(f"file {i}\n")
        base = min(seconds(lambda: naive_full_read(many)) for _ in range(2))
        ours = min(seconds(lambda: the_scan(many, redactor)) for _ in range(2))
        print(f"{args.files} small files: scan + artifact hashes {ours:.2f} s; naive full "
              f"read {base:.2f} s; ratio {ours / base:.2f}")
        if args.before:
            before = seconds(lambda: old_run_files(many))
            print(f"  before: the old run_files alone took {before:.1f} s; "
                  f"before/after {before / ours:.0f}x")

        sparse = Path(tmp, "sparse")
        (sparse / "workspace").mkdir(parents=True)
        big = sparse / "workspace" / "big.bin"
        with big.open("wb") as fh:
            fh.truncate(args.sparse_gib << 30)
            for k in range(18):  # 18 x 4 KiB of data spread over the file: 72 KB on disk
                fh.seek(k * ((args.sparse_gib << 30) // 18))
                fh.write(os.urandom(4096))
        on_disk = big.stat().st_blocks * 512
        base = seconds(lambda: naive_full_read(sparse))
        ours = min(seconds(lambda: the_scan(sparse, redactor)) for _ in range(3))
        print(f"{args.sparse_gib} GiB sparse file ({on_disk // 1024} KiB on disk): scan + "
              f"artifact hash {ours * 1000:.1f} ms; naive full read {base:.2f} s; "
              f"ratio {ours / base:.2g}")


if __name__ == "__main__":
    main()
