"""A peft adapter folder as a candidate (`model: base, adapter: folder, tuner: none`), through real (tiny) bake-offs:
the adapter sftbench kept for a tuned run, scored as it is, gives that run's scores and forgetting."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.cli import main
from harness.config import load_config
from harness.errors import ConfigError
from tests.conftest import TINY_EXIT

# lr 0.05: enough for the tiny model's probe answers to move, so the base (adapter off) and the adapter differ
OVERRIDES = ["bias=[]", "probes=[{spec: general_knowledge, max_items: 12}]", "recipe.learning_rate=0.05",
          "benchmarks=[{spec: support_intents, max_train: 16, max_test: 12}]", "bootstrap_resamples=100"]


def _run(cfg, out, candidates, capsys):
    code = main(["run", str(cfg), "--out", str(out), "--quiet", f"candidates={json.dumps(candidates)}", *OVERRIDES])
    capsys.readouterr()
    return code, json.loads((out / "results.json").read_text())


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
