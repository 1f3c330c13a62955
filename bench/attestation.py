"""What signed evidence adds to a run of 1,000 artifacts: signing at its end, verifying in
`validate`. Target: at most 20 ms together.

    uv run python bench/attestation.py

The run is a folder of 1,000 small files with its report; the baseline, measured in the
same process on the same folder, is what the run's end already did without signing: the
artifact hashes and report.json. Signing reuses those hashes (only the trace is read);
verifying reuses the digests validate takes anyway (`now`), so neither hashes a file twice.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from core.evidence.attestation import check_run, sign_run  # noqa: E402
from core.evidence.keys import SigningKey, VerifyKey  # noqa: E402
from core.evidence.models import Report  # noqa: E402
from core.evidence.rundir import RunPaths, artifact_hashes, atomic_write_text  # noqa: E402
from core.evidence.validate import current_digests  # noqa: E402
from tests.support.tui_fixtures import FixtureRun, run_id  # noqa: E402

ARTIFACTS = 1_000
ROUNDS = 15


def make_run(root: Path) -> Path:
    run = FixtureRun(root, run_id(0, 4242))
    run.preflight()
    folder = run.paths.workspace / "pkg"
    folder.mkdir(parents=True)
    for i in range(ARTIFACTS):
        (folder / f"mod_{i:04}.py").write_text(f"VALUE = {i}\n" * 40)
    run.report("passed", 30.0)
    return run.paths.root


def best(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:7.2f} ms  min {min(samples) * 1e3:7.2f} ms"


def main() -> None:
    key = SigningKey(private=Ed25519PrivateKey.generate(), path=Path("bench-key"))
    verify = VerifyKey(public=key.public, source="the bench key")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_run(Path(tmp))
        paths = RunPaths(root)
        text = paths.report.read_text()
        report = Report.model_validate_json(text)
        base, signing, verifying = [], [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            hashes = artifact_hashes(paths)
            atomic_write_text(paths.report, text)
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sign_run(root, Report.model_validate_json(text), text, key)
            signing.append(time.perf_counter() - t0)
            now = current_digests(paths, report)
            t0 = time.perf_counter()
            check = check_run(root, report, text.encode(), now, verify, None)
            verifying.append(time.perf_counter() - t0)
            assert check.ok, check.detail
        assert len(hashes) >= ARTIFACTS
        total = statistics.median(signing) + statistics.median(verifying)
        print(f"run of {len(hashes)} artifacts (cpu count {os.cpu_count()}), {ROUNDS} rounds")
        print(f"baseline: artifact hashes + report.json   {best(base)}")
        print(f"signing (attestation written)            {best(signing)}")
        print(f"verifying (signature + subjects)          {best(verifying)}")
        print(f"added: {total * 1e3:.2f} ms (target <= 20 ms); ratio to the baseline "
              f"{total / statistics.median(base):.2f}")


if __name__ == "__main__":
    main()
