"""Hidden checks for r4-cli-wordcount: the tool run as a real process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import wordcount

WORKSPACE = Path(wordcount.__file__).resolve().parent.parent


def run(*args, stdin=""):
    env = {**os.environ, "PYTHONPATH": str(WORKSPACE)}
    return subprocess.run([sys.executable, "-m", "wordcount", *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=WORKSPACE, timeout=30)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the cat and the hat. The cat's hat!\nand a bat, and THE end\n")
    return path


def test_counts_most_common_first_ties_alphabetical(text_file) -> None:
    proc = run("--top", "5", str(text_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["3\tand", "2\that", "2\tthe", "1\tTHE", "1\tThe"]


def test_ignore_case(text_file) -> None:
    proc = run("--ignore-case", "--top", "3", str(text_file))
    assert proc.stdout.splitlines() == ["4\tthe", "3\tand", "2\that"]


def test_apostrophes_are_part_of_words(text_file) -> None:
    assert "1\tcat's" in run("--top", "50", str(text_file)).stdout.splitlines()


def test_default_top_is_ten(tmp_path) -> None:
    path = tmp_path / "many.txt"
    path.write_text(" ".join(f"w{i:02d}" for i in range(30)))
    lines = run(str(path)).stdout.splitlines()
    assert lines == [f"1\tw{i:02d}" for i in range(10)]


def test_several_files_and_stdin(text_file, tmp_path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("zebra zebra zebra zebra")
    proc = run("--top", "2", str(text_file), "-", str(other), stdin="and and")
    assert proc.stdout.splitlines() == ["5\tand", "4\tzebra"]


def test_unreadable_file(tmp_path) -> None:
    proc = run(str(tmp_path / "missing.txt"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"wordcount: cannot read {tmp_path / 'missing.txt'}"


def test_no_file_is_a_usage_error() -> None:
    proc = run()
    assert proc.returncode == 2 and "usage" in proc.stderr.lower()
