"""core/evidence/diff.py and `cto-harness diff`: a workspace against its start, over trees a
hostile Case could leave (links, FIFOs, binary and huge files, names that are not UTF-8 or
carry escapes), and end to end over real runs the harness made."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.evidence.diff import MAX_DIFF_LINES, SHOW_LIMIT, diff_trees, run_diff, unified
from core.evidence.rundir import RunPaths
from tests.support.harness import Harness


def trees(tmp_path: Path) -> tuple[Path, Path]:
    before, after = tmp_path / "before", tmp_path / "after"
    for root in (before, after):
        (root / "pkg").mkdir(parents=True)
    return before, after


def by_path(before: Path, after: Path) -> dict[str, object]:
    diff = diff_trees(before, after, label_before="before", label_after="after")
    return {f.path: f for f in diff.files} | {"_": diff}


def test_added_removed_changed_with_a_unified_diff_each(tmp_path: Path) -> None:
    before, after = trees(tmp_path)
    (before / "same.py").write_text("x = 1\n")
    (after / "same.py").write_text("x = 1\n")
    (before / "pkg" / "mod.py").write_text("a\nb\nc\n")
    (after / "pkg" / "mod.py").write_text("a\nB\nc\nd")  # and no newline at the end
    (before / "gone.txt").write_text("bye\n")
    (after / "new.txt").write_text("hello\n")
    found = by_path(before, after)
    diff = found["_"]
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (1, 1, 1, 1)
    mod = found["pkg/mod.py"]
    assert mod.change == "changed" and mod.kind == "text"
    assert mod.diff.splitlines() == [
        "--- a/pkg/mod.py", "+++ b/pkg/mod.py", "@@ -1,3 +1,4 @@", " a", "-b", "+B", " c",
        "+d", "\\ No newline at end of file"]
    assert (mod.added_lines, mod.removed_lines) == (2, 1)
    assert found["new.txt"].change == "added" and "+hello" in found["new.txt"].diff
    assert found["gone.txt"].change == "removed" and "-bye" in found["gone.txt"].diff
    assert [f.path for f in diff.files] == ["gone.txt", "new.txt", "pkg/mod.py"]


def test_a_link_is_named_never_followed_and_odd_files_never_opened(tmp_path: Path) -> None:
    before, after = trees(tmp_path)
    secret = tmp_path / "outside.txt"
    secret.write_text("CONTENT-OUTSIDE-THE-WORKSPACE\n")
    os.symlink(secret, after / "link.txt")
    os.symlink("/", after / "pkg" / "root")
    os.mkfifo(after / "fifo")  # opening it for reading would wait forever
    (before / "was-file").write_text("x\n")
    os.symlink("/etc/passwd", after / "was-file")
    found = by_path(before, after)
    dumped = found["_"].model_dump_json()
    assert "CONTENT-OUTSIDE" not in dumped
    assert found["link.txt"].kind == "link" and str(secret) in found["link.txt"].note
    assert found["pkg/root"].kind == "link"
    assert found["fifo"].kind == "special" and "FIFO" in found["fifo"].note
    swapped = found["was-file"]
    assert swapped.change == "changed" and "a symbolic link to /etc/passwd" in swapped.note


def test_binary_and_huge_files_are_named_not_shown(tmp_path: Path) -> None:
    before, after = trees(tmp_path)
    (after / "blob.bin").write_bytes(bytes(range(256)))
    (before / "latin1.txt").write_bytes(b"caf\xe9\n")
    (after / "latin1.txt").write_bytes(b"caf\xe9s\n")
    (after / "big.txt").write_text("line\n" * (SHOW_LIMIT // 5 + 1))
    with (after / "sparse").open("wb") as fh:  # a terabyte a Case can leave for free
        fh.truncate(1 << 40)
    found = by_path(before, after)
    assert found["blob.bin"].kind == "binary" and found["blob.bin"].diff == ""
    assert found["latin1.txt"].kind == "binary"
    assert found["big.txt"].kind == "huge" and found["big.txt"].diff == ""
    assert found["sparse"].kind == "huge" and "1,099,511,627,776 bytes" in found["sparse"].note


def test_same_size_but_different_bytes_and_mode_changes_count(tmp_path: Path) -> None:
    before, after = trees(tmp_path)
    (before / "a.sh").write_text("echo 1\n")
    (after / "a.sh").write_text("echo 2\n")
    (before / "run.sh").write_text("echo\n")
    (after / "run.sh").write_text("echo\n")
    (after / "run.sh").chmod(0o755)
    (before / "run.sh").chmod(0o644)
    found = by_path(before, after)
    assert "-echo 1" in found["a.sh"].diff
    assert found["run.sh"].note == "mode 644 → 755" and found["run.sh"].diff == ""


def test_names_that_are_not_utf8_stay_apart_from_their_look_alikes(tmp_path: Path) -> None:
    before, after = trees(tmp_path)
    for name in (b"odd-\xff.txt", b"odd-\\xff.txt"):
        with open(os.path.join(os.fsencode(after), name), "wb") as fh:
            fh.write(b"x\n")
    diff = diff_trees(before, after, label_before="b", label_after="a")
    notes = {f.path: f.note for f in diff.files}
    assert len(diff.files) == 2, "two files, two rows"
    assert any("not UTF-8" in n for n in notes.values())
    json.loads(diff.model_dump_json())  # and every name is JSON-safe


def test_a_long_diff_is_cut_and_says_so() -> None:
    old = "".join(f"{i}\n" for i in range(MAX_DIFF_LINES))
    body, plus, minus = unified("f", old, "")
    assert minus == MAX_DIFF_LINES and plus == 0
    assert body.splitlines()[-1] == f"… cut at {MAX_DIFF_LINES:,} lines"


def test_a_run_without_a_kept_start_says_so(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    diff = run_diff(tmp_path)
    assert diff.files == [] and "kept no starting workspace" in (diff.problem or "")


def test_a_tree_swapped_for_a_link_is_never_walked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "workspace").mkdir(parents=True)
    (outside / "workspace" / "secret.txt").write_text("OUTSIDE\n")
    run = tmp_path / "run"
    (run / "workspace").mkdir(parents=True)
    os.symlink(outside, run / "task")  # what an unsandboxed Case could plant
    diff = run_diff(run)
    assert diff.files == [] and "task is a symbolic link, never followed" in (diff.problem or "")


def test_diff_of_a_real_run_and_of_its_baseline(harness: Harness) -> None:
    """A real run (the test Case, the scripted endpoint, the sandbox): the start is kept in
    the run and attested; `diff` shows the Case's solution and, with --baseline, the fake
    engine's naive one; a blocked run and a non-run say what to do in one line."""
    _, result = harness.run_json("run", "--task", "r1-string-slugify", timeout=300)
    run_dir = Path(result["run_dir"])
    start = RunPaths(run_dir).start_workspace
    assert (start / "slugify.py").read_text().count("NotImplementedError") == 1
    assert "task/workspace/slugify.py" in harness.report(run_dir)["artifacts"], \
        "hashed with the rest, so under the attestation"
    code, diff = harness.run_json("diff", str(run_dir))
    assert code == 0 and [f["path"] for f in diff["files"]] == ["slugify.py"]
    assert "-    raise NotImplementedError" in diff["files"][0]["diff"]
    code, base = harness.run_json("diff", run_dir.name, "--baseline")
    assert code == 0 and base["after"] == "baseline/workspace"
    assert base["files"][0]["diff"] != diff["files"][0]["diff"]
    text = harness.run("diff", run_dir.name)
    assert text.returncode == 0 and text.stdout.startswith("workspace against task/workspace:")
    assert "M slugify.py +" in text.stdout
    missing = harness.run("diff", "no-such-run")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_diff_never_prints_the_configured_secret(harness: Harness, tmp_path: Path) -> None:
    """A workspace is the Case's and not redacted on disk: a Case that wrote the endpoint
    into a file's name and content leaves `diff`'s output masked all the same."""
    secret = harness.env["CTO_HARNESS_CASE_LOCAL_BASE_URL"]
    run = tmp_path / "copied-run"
    (run / "task" / "workspace").mkdir(parents=True)
    (run / "workspace" / "notes").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (run / "workspace" / "notes" / "found.txt").write_text(f"endpoint was {secret}\n")
    (run / "workspace" / "notes" / secret.replace("/", "_")).write_text("x\n")
    for args in ((), ("--json",)):
        out = harness.run("diff", str(run), *args)
        assert out.returncode == 0, out.stderr
        assert "endpoint was" in out.stdout and "found.txt" in out.stdout
        assert secret not in out.stdout
        host = secret.split("://", 1)[1].split("/", 1)[0]
        assert host not in out.stdout, "nor a recognisable part of it"
