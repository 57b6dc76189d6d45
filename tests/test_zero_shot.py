"""The zero-shot reference row and a sweep whose settings all tie, through a real (tiny) bake-off."""
from __future__ import annotations

import json

from harness.cli import main
from tests.conftest import TINY_EXIT


def test_zero_shot_rows_score_the_untuned_base(tiny_config, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", str(tiny_config), "--out", str(out), "zero_shot=true", "bias=[]",
                 "probes=[{spec: general_knowledge, max_items: 12}]"])
    stdout = capsys.readouterr().out
    assert code == TINY_EXIT
    results = json.loads((out / "results.json").read_text())
    by_name = {c["name"]: c for c in results["candidates"]}
    assert set(by_name) == {"tiny-llama", "tiny-bert", "tiny-llama-zero-shot", "tiny-bert-zero-shot"}
    zero, tuned = by_name["tiny-llama-zero-shot"], by_name["tiny-llama"]
    b, t = zero["benchmarks"][0], tuned["benchmarks"][0]
    assert zero["zero_shot"] and zero["trainable_params"] == 0
    assert zero["params"] == tuned["params"] - tuned["trainable_params"]  # the tuned count includes LoRA's
    assert b["status"] == "ok" and b["train"] is None and b["sweep"] == [] and b["unit"] is None
    # the zero-shot test score is the base model's: the tuned row's probe "before" is the same model on other items,
    # and the zero-shot probe is before == after (nothing was tuned, nothing forgotten)
    probe = b["probes"][0]
    assert probe["before"] == probe["after"] and probe["forgetting"]["value"] == 0.0
    assert probe["before"] == t["probes"][0]["before"]
    assert len(b["predictions"]["test"]) == 24 and b["chance"]["test"] == t["chance"]["test"]
    bert = by_name["tiny-bert-zero-shot"]["benchmarks"][0]
    assert bert["status"] == "n/a" and "zero-shot is n/a for an encoder" in bert["reason"]
    assert "reference" in stdout and "tiny-llama / support_intents: tuning bought" in stdout
    assert "tiny-llama-zero-shot" not in (results["recommendation"] or "")


def test_every_sweep_setting_tied(tiny_config, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", str(tiny_config), "--out", str(out), "sweep={learning_rate: [0.0, 0.0]}", "probes=[]", "bias=[]",
                 "candidates=[{model: " + json.dumps(str(_model(tiny_config))) + ", name: tiny-bert}]"])
    stdout = capsys.readouterr().out
    assert code == TINY_EXIT
    (bench,) = json.loads((out / "results.json").read_text())["candidates"][0]["benchmarks"]
    assert [s["tied"] for s in bench["sweep"]] == [True, True]
    assert "all 2 settings tied on validation: none is better" in stdout
    assert "all 2 settings tied" in (out / "summary.md").read_text() and "did not learn" in stdout


def _model(cfg):
    line = next(x for x in cfg.read_text().splitlines() if "tiny-bert" in x)
    return line.split('model: "')[1].split('"')[0]
