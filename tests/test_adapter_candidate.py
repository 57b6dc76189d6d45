"""A peft adapter folder as a candidate (`model: base, adapter: folder, tuner: none`), through real (tiny) bake-offs:
the adapter sftbench kept for a tuned run, scored as it is, gives that run's scores and forgetting. It is a
candidate like a tuned row (labelled as an adapter, gated, recommendable), compared with its base's zero-shot row."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.cli import main
from harness.config import load_config
from harness.errors import ConfigError
from harness.gates.check import Verdict, recommend
from reports.format import learning_lines, verdict
from tests.conftest import TINY_EXIT
from tests.reports.sample import typed

# lr 0.05: enough for the tiny model's probe answers to move, so the base (adapter off) and the adapter differ
OVERRIDES = ["bias=[]", "probes=[{spec: general_knowledge, max_items: 12}]", "recipe.learning_rate=0.05",
          "benchmarks=[{spec: support_intents, max_train: 16, max_test: 12}]", "bootstrap_resamples=100"]


def _run(cfg, out, candidates, capsys):
    code = main(["run", str(cfg), "--out", str(out), "--quiet", f"candidates={json.dumps(candidates)}", *OVERRIDES])
    capsys.readouterr()
    return code, json.loads((out / "results.json").read_text())


def _row(name, accuracy, *, model="base", zero=False, adapter=None, params=10):
    bench = {"benchmark": "t", "status": "ok", "learned": True, "sweep": [],
             "scores": {"test": {"accuracy": {"value": accuracy, "ci_low": accuracy - .1, "ci_high": accuracy + .1}}},
             "generalisation": {"metric": "accuracy"}}
    return {"name": name, "model": model, "status": "ok", "params": params, "cost": {"train_seconds": 0.0},
            "zero_shot": zero, "did_not_learn": [], "benchmarks": [bench]} | ({"adapter": adapter} if adapter else {})


def test_an_adapter_row_is_a_candidate_compared_with_its_base_zero_shot_row():
    adapter, base = _row("my-lora", 0.857, adapter="/x/my-lora"), _row("base-zero-shot", 0.6, zero=True)
    other = _row("other", 0.9, model="bigger", params=99)
    verdicts = [Verdict(c["name"], "t.accuracy >= 0.5", True, c["benchmarks"][0]["scores"]["test"]["accuracy"]["value"],
                        "ok") for c in (adapter, base, other)]
    # gated like any row: it passes, so it is the recommendation (the smallest passing candidate), and exit 0 follows
    assert recommend([adapter, base, other], verdicts)[0] == "my-lora"
    results = typed({"gates": [v.to_json() for v in verdicts], "candidates": [adapter, base, other]})
    row = results.candidate("my-lora")
    assert row.adapter == "/x/my-lora" and not row.zero_shot
    assert verdict(results, row) == ("pass", "peft adapter, scored as it is")  # not "zero-shot, untuned"
    failing = typed({"gates": [{"candidate": "my-lora", "gate": "t.accuracy >= 0.9", "passed": False}],
                     "candidates": [adapter, base]})
    assert verdict(failing, failing.candidate("my-lora")) == ("FAIL",
                                                              "t.accuracy >= 0.9; peft adapter, scored as it is")
    assert recommend([adapter, base], [Verdict("my-lora", "t.accuracy >= 0.9", False, 0.857, "below")])[0] is None
    lines = learning_lines(results)
    assert ("my-lora / t: the adapter scores +25.7 points of accuracy over its base's zero-shot row base-zero-shot "
            "(60.0 -> 85.7)") in lines
    assert not any("over zero-shot" in line or "other" in line for line in lines)  # no base row of `bigger`


def test_an_adapter_or_zero_shot_row_is_never_compared_with_itself():
    """The trial's note 'tuning bought +0.0 points over zero-shot (85.7 -> 85.7)' compared an adapter with itself."""
    alone = typed({"candidates": [_row("kept-adapter", 0.857, adapter="/x/kept-adapter")]})
    assert learning_lines(alone) == []
    zero = typed({"candidates": [_row("base", 0.6, zero=True)]})  # a user's own `tuner: none` row, no suffix
    assert learning_lines(zero) == []


def test_an_adapter_sftbench_wrote_scores_as_the_run_that_made_it(tiny_config, tiny_llama, tmp_path, capsys):
    code, tuned = _run(tiny_config, tmp_path / "tuned", [{"model": str(tiny_llama), "name": "tiny-llama"}], capsys)
    assert code == TINY_EXIT
    made = tuned["candidates"][0]["benchmarks"][0]
    adapter = tmp_path / "kept-adapter"
    shutil.copytree(f"{made['unit']}/adapter", adapter)  # where `keep` wrote it, copied as a user would
    assert (adapter / "adapter_model.safetensors").is_file()

    code, scored = _run(tiny_config, tmp_path / "scored",
                        [{"model": str(tiny_llama), "adapter": str(adapter), "tuner": "none"}], capsys)
    assert code == TINY_EXIT
    cand = scored["candidates"][0]
    again = cand["benchmarks"][0]
    assert cand["name"] == "kept-adapter" and again["status"] == "ok" and again["train"] is None
    # a candidate, not a reference row: it is gated and eligible (the tiny model is at chance, hence TINY_EXIT)
    assert cand["adapter"] == str(adapter) and cand["zero_shot"] is False and again["zero_shot"] is False
    assert "did not learn" in scored["recommendation_reason"] and "untuned" not in scored["recommendation_reason"]
    assert again["predictions"] == made["predictions"]
    assert again["scores"] == made["scores"]
    # forgetting: the base with the adapter disabled before, the adapter after, as in the run that tuned it
    (probe,), (was,) = again["probes"], made["probes"]
    assert probe["per_item"] == was["per_item"] and probe["forgetting"] == was["forgetting"]
    assert probe["per_item"]["before"] != probe["per_item"]["after"]  # lr 0.05 moves the tiny model: on and off differ
    # the adapter is part of the weights the units are keyed by and the results record
    assert cand["weights_sha"] != tuned["candidates"][0]["weights_sha"]


def test_adapter_needs_tuner_none_and_safetensors(tmp_path, tiny_llama, tiny_config, capsys):
    with pytest.raises(ConfigError, match="adapter: 'x' is scored as it is, so it needs tuner: none"):
        load_config(tiny_config, [f"candidates=[{{model: '{tiny_llama}', adapter: x}}]"])
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04.")
    code = main(["validate", str(tiny_config), f"candidates=[{{model: '{tiny_llama}', adapter: '{folder}', "
                 "tuner: none}]"])
    err = capsys.readouterr().err
    assert code == 2 and "only adapter_model.bin, refusing to unpickle" in err
