"""The prepared GPU check (tools/gpu_check.sh) is valid shell, and its parity verdict is what it claims: equal runs
agree, a changed recommendation, gate, metric or loss does not (tools/device_parity.py compare)."""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parity():
    spec = importlib.util.spec_from_file_location("device_parity", ROOT / "tools" / "device_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_scripts_parse():
    for script in ("gpu_check.sh", "gpu_wheels.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "tools" / script)], check=True)


def test_parity_accepts_bf16_noise_and_flags_a_different_verdict():
    parity = _parity()
    cpu = {"recommendation": "a", "gates": [("a", "acc >= 0.5", True)],
           "a/b": {"metrics": {"accuracy": 0.75, "macro_f1": 0.5}, "loss": 1.0}}
    assert parity.compare(cpu, copy.deepcopy(cpu)) == []
    noisy = copy.deepcopy(cpu)
    noisy["a/b"] = {"metrics": {"accuracy": 0.75 - 1 / 24, "macro_f1": 0.52}, "loss": 1.01}
    assert parity.compare(cpu, noisy) == []
    for change in ({"recommendation": None}, {"gates": [("a", "acc >= 0.5", False)]},
                   {"a/b": {"metrics": {"accuracy": 0.5, "macro_f1": 0.5}, "loss": 1.0}},
                   {"a/b": {"metrics": {"accuracy": 0.75, "macro_f1": 0.5}, "loss": 1.2}},
                   {"a/b": {"metrics": {}, "loss": 1.0}}):
        assert parity.compare(cpu, {**cpu, **change}), change


def test_gpu_speed_rows_share_a_prefix_and_the_check_measures_with_and_without_it():
    from benchmarks.speed.gpu_training import rows
    from harness.training.shared import shared_length

    items = rows(16, 512, (16, 48), seed=1, prefix=12)
    assert all(it.input_ids[:12] == items[0].input_ids[:12] for it in items)
    assert all(all(label == -100 for label in it.labels[:13]) and it.labels[-1] == it.input_ids[-1] for it in items)
    assert shared_length(items) >= 12  # the loop shares at least the common tokens
    assert shared_length(rows(16, 512, (16, 48), seed=1)) < 3  # without --prefix: random rows, nothing in common
    assert "gpu_training.py --prefix 96" in (ROOT / "tools" / "gpu_check.sh").read_text()


def test_the_prefix_arm_runs_its_gpu_command_on_the_cpu(tmp_path):
    """The scoring arm with and without the shared prompt prefix, as gpu_check.sh runs it but on the tiny synthetic
    model on the CPU: both arms timed, the same predictions, the shared one computing fewer tokens."""
    line = next(line for line in (ROOT / "tools" / "gpu_check.sh").read_text().splitlines() if "step prefix" in line)
    assert "benchmarks/speed/prefix.py --synthetic 1b --device cuda" in line
    out = tmp_path / "prefix.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed" / "prefix.py"), "--synthetic", "tiny",
                    "--repeats", "1", "--json", str(out)], check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    [race] = json.loads(out.read_text())
    assert len(race["pipeline"]) == len(race["today"]) == len(race["ratios"]) == 1 and race["median_ratio"] > 0
    assert race["agreement"].startswith("same prediction on 64/64 items") and "path shared prefix" in race["agreement"]
