"""The bundled demo runs to completion through the installed console script, as `make demo` does."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_to_completion(tmp_path):
    exe = shutil.which("sftbench") or str(Path(sys.executable).parent / "sftbench")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([exe, "run", "--out", str(tmp_path / "demo")], capture_output=True, text=True, env=env,
                          timeout=1800, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert [c["name"] for c in results["candidates"]] == ["smollm2-135m", "minilm-l6"]
    for cand in results["candidates"]:
        bench = cand["benchmarks"][0]
        assert bench["status"] == "ok", bench["reason"]
        assert {"accuracy", "macro_f1"} <= set(bench["scores"]["test"])
        assert bench["probes"], "each candidate is probed for forgetting"
    assert [b["probe"] for b in results["candidates"][0]["benchmarks"][0]["bias"]] == ["intent_bias"]
    assert {g["gate"] for g in results["gates"]} >= {"support_intents.accuracy >= 0.6"}
    assert len(results["gates"]) == 4  # two gates for each of the two candidates
    assert "accuracy" in proc.stdout and "Recommendation" in proc.stdout and "bias" in proc.stdout
    assert "Traceback" not in proc.stderr
