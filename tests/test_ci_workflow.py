"""The GitHub Actions workflow of docs/ci.md: the file docs/examples/sftbench.yml is the one the page shows, it
validates against GitHub's workflow schema (check-jsonschema's vendored copy, offline), and its key steps exist in
order: install sftbench from a spec into the user's checkout, run the bake-off keeping its exit code, post or update
one marked pull-request comment, upload report.html, and fail the job on the code after all of that. The two shell
steps that carry the exit code are run with bash, with a stand-in `sftbench` on PATH that exits with each code; the
comment script runs in node (where it is installed) against a recorder in place of GitHub's API client."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "sftbench.yml"
MARKER = "<!-- sftbench-bakeoff -->"


def steps() -> dict[str, dict[str, Any]]:
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return {s.get("name") or s["uses"].split("@")[0]: s for s in job["steps"]}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=60)


def test_docs_ci_md_shows_the_example_file_verbatim():
    page = (ROOT / "docs" / "ci.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", page, flags=re.S)
    assert WORKFLOW.read_text() in blocks and "examples/sftbench.yml" in page


def test_workflow_validates_against_the_github_workflow_schema(tmp_path):
    done = validate(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the same check rejects a misspelt key: it is a real check
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert validate(broken).returncode == 1


def test_key_steps_exist_in_order_and_run_whatever_the_outcome():
    s = steps()
    names = list(s)
    install = s["Install sftbench"]["run"]
    assert "$SFTBENCH" in install and "make install" not in install and "-e ." not in install  # not a copy of this repo
    assert "git+https://" in yaml.safe_load(WORKFLOW.read_text())["jobs"]["bakeoff"]["env"]["SFTBENCH"]
    assert "sftbench run" in s["Bake-off"]["run"] and s["Bake-off"]["id"] == "bakeoff"
    comment = s["Comment on the pull request"]
    assert comment["uses"].startswith("actions/github-script@") and comment["if"].startswith("always()")
    script = comment["with"]["script"]
    assert MARKER in script and "updateComment" in script and "createComment" in script and "paginate" in script
    upload = s["Upload the report"]
    assert upload["if"] == "always()" and "sftbench-out/report.html" in upload["with"]["path"]
    fail = s["Fail on sftbench's exit code"]
    assert names[-1] == "Fail on sftbench's exit code" and fail["if"] == "always()"
    assert fail["env"]["CODE"] == "${{ steps.bakeoff.outputs.code }}"
    assert names.index("Bake-off") < names.index("Comment on the pull request") < names.index("Upload the report")
    assert "pull-requests" in yaml.safe_load(WORKFLOW.read_text())["permissions"]


def bash(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], **env})


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_the_exit_code_is_kept_then_fails_the_job_last(tmp_path, code):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sftbench"  # stands in for the installed sftbench: writes a summary, exits with the code
    fake.write_text('#!/bin/sh\n[ "$1" = run ] && mkdir -p sftbench-out && echo "| table |" > sftbench-out/summary.md\n'
                    f'[ "$1" = run ] && exit {code}\nexit 0\n')
    fake.chmod(0o755)
    out, summary = tmp_path / "output", tmp_path / "summary"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
           "SFTBENCH_CONFIG": "bakeoff.yaml"}
    ran = bash(steps()["Bake-off"]["run"], tmp_path, **env)
    assert ran.returncode == 0, ran.stderr  # the bake-off step itself never fails: later steps must run
    assert out.read_text() == f"code={code}\n" and summary.read_text() == "| table |\n"
    last = bash(steps()["Fail on sftbench's exit code"]["run"], tmp_path, CODE=str(code))
    assert last.returncode == code and (code == 0) == ("::error" not in last.stdout)


def test_no_exit_code_fails_the_job(tmp_path):
    last = bash(steps()["Fail on sftbench's exit code"]["run"], tmp_path, CODE="")
    assert last.returncode == 1 and "did not run" in last.stdout


NODE_HARNESS = """
const fs = require("fs");
const [comments, calls] = [JSON.parse(process.env.COMMENTS), []];
const github = {
  paginate: async (fn, args) => { calls.push(["list", args]); return comments; },
  rest: { issues: {
    listComments: "listComments",
    updateComment: async (args) => calls.push(["update", args]),
    createComment: async (args) => calls.push(["create", args]) } } };
const context = { serverUrl: "https://github.com", runId: 7, repo: { owner: "o", repo: "r" }, issue: { number: 5 } };
(async () => { SCRIPT
})().then(() => fs.writeFileSync("calls.json", JSON.stringify(calls)));
"""


def comment_calls(tmp_path: Path, comments: list[dict[str, Any]], summary: str | None) -> list[list[Any]]:
    """Run the github-script step's JavaScript in node with GitHub's client replaced by a recorder (the API is the
    one thing not run here); the calls it made."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the comment script is checked where it is")
    if summary is not None:
        (tmp_path / "sftbench-out").mkdir()
        (tmp_path / "sftbench-out" / "summary.md").write_text(summary)
    script = NODE_HARNESS.replace("SCRIPT", steps()["Comment on the pull request"]["with"]["script"])
    (tmp_path / "run.js").write_text(script)
    done = subprocess.run([node, "run.js"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "COMMENTS": json.dumps(comments), "CODE": "2"})
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "calls.json").read_text())


def test_the_comment_is_created_once_then_updated_in_place(tmp_path):
    calls = comment_calls(tmp_path, [{"id": 1, "user": {"type": "User"}, "body": f"quoting {MARKER}"}], "| t |\n")
    assert [c[0] for c in calls] == ["list", "create"]  # a person's comment quoting the marker is not ours
    body = calls[1][1]["body"]
    assert body.startswith("| t |\n") and body.rstrip().endswith(MARKER) and calls[1][1]["issue_number"] == 5
    ours = {"id": 9, "user": {"type": "Bot"}, "body": f"old\n{MARKER}\n"}
    (tmp_path / "again").mkdir()
    calls = comment_calls(tmp_path / "again", [ours], "| u |\n")
    assert [c[0] for c in calls] == ["list", "update"] and calls[1][1]["comment_id"] == 9


def test_a_long_summary_is_cut_and_a_missing_one_still_comments(tmp_path):
    calls = comment_calls(tmp_path, [], "x" * 100_000)
    body = calls[1][1]["body"]
    assert len(body) <= 65_000 and "(cut: see the artifact)" in body and MARKER in body
    (tmp_path / "none").mkdir()
    calls = comment_calls(tmp_path / "none", [], None)
    assert calls[1][1]["body"].startswith("sftbench exited 2 without a summary")
