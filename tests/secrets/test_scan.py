"""The leak scan over real files, a real git index, and the `cto-harness scan` command."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from core.secrets.redact import Redactor
from core.secrets.scan import find_leaks, scan_git_index, scan_paths, scrub
from tests.support.harness import unprivileged
from tests.support.signing import harness_setting

CLI = Path(sys.executable).with_name("cto-harness")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def endpoint() -> str:
    return f"http://spark-{secrets.token_hex(4)}.internal:8000/v1?key={secrets.token_hex(6)}"


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=False)


def test_scan_paths_names_file_line_secret_and_form_never_the_value(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    (tmp_path / "workspace" / "src").mkdir(parents=True)
    (tmp_path / "workspace" / "src" / "app.py").write_text(f"a = 1\n\nURL = '{secret}'\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\x00\xfe\n" + base64.b64encode(secret.encode()))
    (tmp_path / "clean.txt").write_text("nothing here\n")
    (tmp_path / "link").symlink_to(tmp_path / "workspace" / "src" / "app.py")
    findings = scan_paths([tmp_path], redactor, root=tmp_path)
    got = sorted((f.file, f.line, f.secret, f.form.split(":")[0]) for f in findings)
    assert got == [("blob.bin", 2, "endpoint", "base64"),
                   ("workspace/src/app.py", 3, "endpoint", "full")]
    assert secret not in repr(findings)


def test_scan_reads_a_file_larger_than_it_holds(tmp_path: Path) -> None:
    """A Case can leave a log or a workspace file of many gigabytes: the scan reads it
    piece by piece (memory stays near a few read sizes) and still finds a leak at its end."""
    secret = endpoint()
    big = tmp_path / "case.log"
    with big.open("wb") as fh:
        for _ in range(64):
            fh.write(b"chatter\n" * (1 << 17))  # 1 MiB a write, 64 MiB in all
        fh.write(f"at the end {secret}\n".encode())
    tracemalloc.start()
    try:
        findings = scan_paths([big], Redactor({"endpoint": secret}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(f.line, f.form) for f in findings] == [(64 * (1 << 17) + 1, "full")]
    assert peak < 16 << 20, f"peak {peak >> 20} MiB for a 64 MiB file"


def test_scan_finds_forms_across_read_pieces_and_counts_lines(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    big = tmp_path / "big.log"
    filler = b"x" * 99 + b"\n"
    with big.open("wb") as fh:
        fh.write(filler * 10485)  # the secret straddles the 1 MiB read boundary
        fh.write(b"y" * 60 + secret.encode() + b"\n" + "é".encode() * 3 + b"\n")
    findings = scan_paths([big], redactor, root=tmp_path)
    assert [(f.line, f.form) for f in findings] == [(10486, "full")]


@needs_git
def test_scan_git_index_sees_what_is_staged_not_the_work_tree(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    assert git(tmp_path, "init", "-q").returncode == 0
    (tmp_path / "ok.txt").write_text("fine\n")
    (tmp_path / "config.json").write_text(f'{{"base_url": "{secret}"}}\n')
    git(tmp_path, "add", "ok.txt", "config.json")
    (tmp_path / "config.json").write_text("{}\n")  # the work tree is clean, the index is not
    findings = scan_git_index(tmp_path, redactor)
    assert [(f.file, f.line, f.form) for f in findings] == [("config.json", 1, "full")]
    git(tmp_path, "add", "config.json")
    assert scan_git_index(tmp_path, redactor) == []


def run_cli(*args: str, cwd: Path, secret: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    if secret is not None:
        env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = secret
    return subprocess.run([str(CLI), "scan", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    secret = endpoint()
    (tmp_path / "leak.txt").write_text(f"one\n{secret.split('://')[1]}\n")
    (tmp_path / "clean.txt").write_text("one\n")
    hit = run_cli("leak.txt", "--json", cwd=tmp_path, secret=secret)
    assert hit.returncode == 1 and secret not in hit.stdout + hit.stderr
    assert '"line": 2' in hit.stdout and '"form": "no_scheme"' in hit.stdout
    clean = run_cli("clean.txt", cwd=tmp_path, secret=secret)
    assert clean.returncode == 0 and "clean" in clean.stderr
    missing = run_cli("nope.txt", cwd=tmp_path, secret=secret)
    assert missing.returncode == 2 and "nope.txt" in missing.stderr
    assert "Traceback" not in missing.stderr
    unset = run_cli("clean.txt", cwd=tmp_path, secret=None)
    assert unset.returncode == 2 and "no secret is configured" in unset.stderr


@needs_git
def test_pre_commit_hook_refuses_a_commit_holding_the_secret(tmp_path: Path) -> None:
    secret = endpoint()
    assert git(tmp_path, "init", "-q").returncode == 0
    hook = tmp_path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nexec {CLI} scan --staged\n")
    hook.chmod(0o755)
    env_secret = {**os.environ, "CTO_HARNESS_CASE_LOCAL_BASE_URL": secret}
    (tmp_path / "notes.md").write_text("the endpoint is " + quote_all(secret) + "\n")
    git(tmp_path, "add", "notes.md")
    refused = subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                              "user.email=t@example.invalid", "commit", "-qm", "x"],
                             capture_output=True, text=True, env=env_secret, check=False)
    assert refused.returncode != 0  # git shows a hook's output on its stderr
    assert "notes.md:1: endpoint (percent)" in refused.stdout + refused.stderr
    assert secret not in refused.stdout + refused.stderr
    (tmp_path / "notes.md").write_text("the endpoint is configured at run time\n")
    git(tmp_path, "add", "notes.md")
    accepted = subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                               "user.email=t@example.invalid", "commit", "-qm", "x"],
                              capture_output=True, text=True, env=env_secret, check=False)
    assert accepted.returncode == 0, accepted.stderr


def quote_all(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def plant_names(root: Path, secret: str) -> str:
    """Write `secret` into names and a link target under `root`, never into bytes, beside a
    clean non-UTF-8 name; returns its host:port."""
    host_port = secret.split("://", 1)[1].split("/", 1)[0]
    folder = root / "ws" / quote_all(secret)
    folder.mkdir(parents=True)
    (folder / f"{host_port}.log").write_text(f"and in the bytes: {secret}\n")
    os.symlink(secret, root / "ws" / "x")
    raw = os.fsencode(root / "ws")
    for name in (b"caf\xe9-" + host_port.encode(), b"caf\xe9"):
        Path(os.fsdecode(os.path.join(raw, name))).write_bytes(b"\xff clean\n")
    return host_port


def test_scan_paths_finds_the_secret_in_names_and_link_targets(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    plant_names(tmp_path, secret)
    findings = scan_paths([tmp_path], redactor, root=tmp_path)
    mark = "[REDACTED:endpoint]"
    got = sorted((f.file, f.line, f.where, f.form) for f in findings)
    assert got == [(f"ws/{mark}", 0, "name", "percent"),
                   (f"ws/{mark}/{mark}.log", 0, "name", "host_port"),
                   (f"ws/{mark}/{mark}.log", 1, "content", "full"),
                   (f"ws/caf\ufffd-{mark}", 0, "name", "host_port"),
                   ("ws/x", 0, "link_target", "full")]
    assert secret.split("://")[1].split("/")[0] not in repr(findings)
    given = scan_paths([tmp_path / "ws" / "x"], redactor)  # a link named itself: its target
    assert [(f.file, f.where) for f in given] == [((tmp_path / "ws" / "x").as_posix(),
                                                   "link_target")]


def test_scrub_renames_bottom_up_retargets_links_and_keeps_other_bytes(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    host_port = plant_names(tmp_path, secret)
    ws = tmp_path / "ws"
    mark = "[REDACTED:endpoint]"
    (ws / f"{mark}.txt").write_text("taken\n")  # the masked name of the next one exists
    (ws / f"{host_port}.txt").write_text("mine\n")
    key = secret.rsplit("=", 1)[1]
    long_name = "k" * 3 + key * 20  # fits; masked it would not (19 bytes a 12-byte key)
    (ws / long_name).write_text("long\n")
    leaks = find_leaks([tmp_path], redactor, root=tmp_path)
    findings = scrub(leaks, redactor, tmp_path)
    assert scan_paths([tmp_path], redactor, root=tmp_path) == []
    assert (ws / f"{mark}.txt").read_text() == "taken\n"
    assert (ws / f"{mark}.txt.2").read_text() == "mine\n"
    assert (ws / mark / f"{mark}.log").read_text() == f"and in the bytes: {mark}\n"
    assert os.readlink(ws / "x") == mark
    names = set(os.listdir(os.fsencode(ws)))
    assert {b"caf\xe9", b"caf\xe9-" + mark.encode()} <= names
    assert Path(os.fsdecode(os.path.join(os.fsencode(ws), b"caf\xe9"))).read_bytes() == (
        b"\xff clean\n")
    cut = next(n for n in names if n.startswith(b"kkk"))
    assert len(cut) == 255 and key.encode() not in cut
    assert not [n for n in names if n.startswith(b".cto-harness-")]
    # Each finding now names its entry where it is on disk.
    for finding in findings:
        assert os.path.lexists(tmp_path / finding.file) or "\ufffd" in finding.file
    assert f"ws/{mark}.txt.2" in {f.file for f in findings}


def test_cli_reports_a_name_without_its_value(tmp_path: Path) -> None:
    secret = endpoint()
    (tmp_path / quote_all(secret)).mkdir()
    hit = run_cli(".", cwd=tmp_path, secret=secret)
    assert hit.returncode == 1, hit.stderr
    assert hit.stdout == "[REDACTED:endpoint] (in its name): endpoint (percent)\n"
    assert quote_all(secret) not in hit.stdout + hit.stderr


@needs_git
def test_scan_git_index_sees_a_staged_path_named_by_the_secret(tmp_path: Path) -> None:
    secret = endpoint()
    redactor = Redactor({"endpoint": secret})
    assert git(tmp_path, "init", "-q").returncode == 0
    host_port = secret.split("://", 1)[1].split("/", 1)[0]
    (tmp_path / f"{host_port}.json").write_text("{}\n")
    git(tmp_path, "add", ".")
    findings = scan_git_index(tmp_path, redactor)
    assert [(f.file, f.line, f.where) for f in findings] == [
        ("[REDACTED:endpoint].json", 0, "name")]


def test_cli_names_what_it_cannot_read_and_does_not_call_it_clean(tmp_path: Path) -> None:
    """A folder it cannot list or a file it cannot open once passed as scanned: `clean`."""
    secret = endpoint()
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "locked" / "notes.txt").write_text(secret)
    (tree / "sealed.txt").write_text(secret)
    (tree / "ok.txt").write_text("fine\n")
    env = {k: v for k, v in os.environ.items() if not harness_setting(k)}
    env["CTO_HARNESS_CASE_LOCAL_BASE_URL"] = secret
    (tree / "locked").chmod(0)
    (tree / "sealed.txt").chmod(0)
    try:
        proc = subprocess.run(unprivileged([str(CLI), "scan", str(tree), "--json"]), env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        (tree / "locked").chmod(0o755)
        (tree / "sealed.txt").chmod(0o644)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["clean"] is False and out["findings"] == []
    assert sorted(out["unread"]) == [
        f"{tree / 'locked'}: cannot be listed (Permission denied)",
        f"{tree / 'sealed.txt'}: cannot be read (Permission denied)"]
    assert secret not in proc.stdout + proc.stderr


def test_scan_paths_reads_a_sparse_file_by_its_data(tmp_path: Path) -> None:
    """`cto-harness scan` on a 4 GiB file of holes: the data at 3 GiB is found, with its
    line, without reading the zeros (that took 21 s)."""
    secret = endpoint()
    big = tmp_path / "big.img"
    with big.open("wb") as fh:
        fh.truncate(4 << 30)
        fh.seek(1 << 30)
        fh.write(b"a\nb\n")
        fh.seek(3 << 30)
        fh.write(f"c\n{secret}\n".encode())
    findings = scan_paths([big], Redactor({"endpoint": secret}))
    assert [(f.line, f.form) for f in findings] == [(4, "full")]
