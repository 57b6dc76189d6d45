"""The suite's own guard (tests/conftest.py): a test that writes .sftbench/ or runs/ in the working directory or the
repository is found, whether it writes a new file or changes one, and an untouched tree is not flagged."""
from __future__ import annotations

from tests.conftest import snapshot, untracked, written


def test_the_guard_finds_a_store_or_runs_folder_written_in_the_working_directory(tmp_path):
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "results.json").write_text("{}")
    before = snapshot([tmp_path])
    assert written(before, snapshot([tmp_path])) == []  # nothing written: nothing flagged
    (tmp_path / ".sftbench").mkdir()
    (tmp_path / ".sftbench" / "runs.sqlite").write_bytes(b"x")
    leaked = written(before, snapshot([tmp_path]))
    assert leaked == [str(tmp_path / ".sftbench"), str(tmp_path / ".sftbench" / "runs.sqlite")]
    before = snapshot([tmp_path])
    import os

    os.utime(tmp_path / "runs" / "demo" / "results.json", ns=(1, 1))  # an existing file rewritten
    assert written(before, snapshot([tmp_path])) == [str(tmp_path / "runs" / "demo" / "results.json")]


def test_untracked_files_are_listed_in_a_git_checkout(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert untracked(tmp_path) == set()
    (tmp_path / "bakeoff.yaml").write_text("name: x\n")
    assert untracked(tmp_path) == {"bakeoff.yaml"}
    assert untracked(tmp_path / "not-a-repo") == set()
