"""The bundled demo through `main(argv)`, end to end through the gates: run it, promote the recommendation, run it
again with a non-inferiority gate and caps (passes, exit 0), then a degraded variant that trains nothing (exit 1,
junit.xml names the failing gate), then `sftbench gate` on the stored degraded run with caps only.

To fit a few minutes on a shared CPU the data are capped (120 training rows, 50 test and 50 shifted items, 20 and 40
probe items), batches are 2 rows (so MiniLM takes 60 steps on those rows), and only the second run includes
SmolLM2: the first and the third run the demo's MiniLM candidate alone, which is what the gate compares."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from reports.markdown import escape

pytestmark = pytest.mark.integration

CAPPED = ["benchmarks=[{spec: support_intents, max_train: 120, max_validation: 16, max_test: 50}]",
          "probes=[{spec: general_knowledge, max_items: 20}, {spec: paraphrase_probe, max_items: 40}]",
          "bias=[]", "recipe.batch_size=2",  # the demo's bias suite is not what this test is about
          "recipe.epochs=2"]  # MiniLM reading the message: 0.32 test accuracy after 1 epoch at these caps, 0.80 after 2
MINILM = "candidates=[{model: minilm-l6, learning_rate: 5e-3}]"  # the demo's own setting for it
NON_INFERIOR = "support_intents.accuracy non-inferior to demo (margin 0.05)"
GATES = ("gates=[{metric: support_intents.accuracy, baseline: demo, margin: 0.05}, "
         "{forgetting: '*', max: 0.25}, {cost: params, max: 5e7}]")


def run(overrides: list[str], out: Path) -> tuple[int, dict[str, Any]]:
    code = main(["run", *overrides, "--out", str(out), "--quiet"])
    return code, json.loads((out / "results.json").read_text())


def verdicts(results: dict[str, Any], candidate: str) -> dict[str, dict[str, Any]]:
    return {v["gate"]: v for v in results["gates"] if v["candidate"] == candidate}


def test_promote_then_gate_the_demo(tmp_path, capsys):
    code, first = run([*CAPPED, MINILM, "gates=[]"], tmp_path / "baseline")
    assert code == 0 and first["recommendation"] == "minilm-l6", first["recommendation_reason"]
    assert main(["promote", first["run_id"]]) == 0

    code, again = run([*CAPPED, GATES], tmp_path / "again")
    minilm, smollm = verdicts(again, "minilm-l6"), verdicts(again, "smollm2-135m")
    assert code == 0 and again["recommendation"] == "minilm-l6", again["recommendation_reason"]
    assert minilm[NON_INFERIOR]["passed"], minilm[NON_INFERIOR]["message"]
    assert "Holm-adjusted over 1 baseline gate" in minilm[NON_INFERIOR]["message"]
    assert minilm["forgetting * <= 0.25"]["passed"] and "paraphrase_probe" in minilm["forgetting * <= 0.25"]["message"]
    assert not smollm["cost params <= 5e+07"]["passed"]  # 135M parameters: the cost cap rules it out
    assert "general_knowledge" in smollm["forgetting * <= 0.25"]["message"]  # each kind ran its own probe

    code, degraded = run([*CAPPED, MINILM, GATES, "recipe.epochs=0"], tmp_path / "degraded")
    failed = verdicts(degraded, "minilm-l6")[NON_INFERIOR]
    assert code == 1 and degraded["recommendation"] is None
    assert not failed["passed"] and failed["message"].startswith("significant regression"), failed["message"]
    junit = (tmp_path / "degraded" / "junit.xml").read_text()
    case = junit[junit.index(f'<testcase classname="minilm-l6" name="{NON_INFERIOR}"'):]
    assert case.index("<failure") < case.index("</testcase>")
    assert f"minilm-l6 / {escape(NON_INFERIOR)}" in (tmp_path / "degraded" / "summary.md").read_text()

    # caps only, on the stored degraded run: an untrained model forgets nothing and stays small, so it passes both
    # caps; it is still not recommended, because it did not learn the task (at chance: harness/scoring/chance.py)
    caps = tmp_path / "caps.yaml"
    caps.write_text("gates:\n  - {forgetting: '*', max: 0.0}\n  - {cost: params, max: 5e7}\n")
    capsys.readouterr()
    assert main(["gate", degraded["run_id"], "--gates", str(caps)]) == 1
    out = capsys.readouterr().out
    assert "Recommendation [FAIL]" in out and "minilm-l6: did not learn support_intents" in out
    assert "DID NOT LEARN" in out and "FAIL" not in out.split("Recommendation")[0].replace("DID NOT LEARN", "")
