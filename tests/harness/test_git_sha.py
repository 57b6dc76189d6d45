"""results.json's git_sha is the commit of the user's repository (where sftbench runs), not sftbench's own."""
from __future__ import annotations

import subprocess

from harness.results.finish import git_sha


def test_git_sha_is_the_working_directorys_commit(tmp_path, monkeypatch):
    repo = tmp_path / "user-repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@x", "GIT_COMMITTER_NAME": "u", "GIT_COMMITTER_EMAIL": "u@x"}
    for cmd in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env | {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    assert git_sha() == head and len(head) == 40
    sftbench_own = subprocess.run(["git", "rev-parse", "HEAD"], cwd=__file__.rsplit("/", 3)[0], capture_output=True,
                                  text=True).stdout.strip()
    assert git_sha() != sftbench_own


def test_git_sha_outside_a_repository_is_unknown(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # do not find a repository above tmp
    assert git_sha() == "unknown"
