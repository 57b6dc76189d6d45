"""Issue 13's regression on real data: MiniLM, given a benchmark whose `prompt` is a causal LM's instruction, reads
the review itself (encoder_input defaults to {input}) and learns SST-2; before the fix it stayed at chance."""
from __future__ import annotations

import json

import pytest

from harness.cli import main
from tests.conftest import shared_data

pytestmark = pytest.mark.integration


def test_minilm_learns_sst2_under_an_instruction_prompt(tmp_path, capsys):
    train, dev = shared_data("sst2", "train.tsv"), shared_data("sst2", "dev.tsv")
    (tmp_path / "benchmark.yaml").write_text(f"""
name: sst2
version: 1
task: classification
prompt: "Is the sentiment of this review positive or negative?\\nReview: {{input}}\\nSentiment:"
fields: {{input: sentence, target: label}}
labels: {{"0": negative, "1": positive}}
metrics: [accuracy]
splits: {{train: "{train}", validation: "{dev}", test: "{dev}"}}
""")
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f"""
name: sst2-minilm
candidates: [{{model: minilm-l6, learning_rate: 5e-3}}]
recipe: {{epochs: 1, batch_size: 8, max_length: 128, seed: 0}}
benchmarks: [{{spec: "{tmp_path / 'benchmark.yaml'}", max_train: 300, max_validation: 200, max_test: 300}}]
""")
    code = main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet", "--no-cache", "--no-store"])
    (bench,) = json.loads((tmp_path / "out" / "results.json").read_text())["candidates"][0]["benchmarks"]
    validation = bench["train"]["curve"][-1]["val_metric"]  # recipe.eval_metric auto: measured while training
    chance = bench["chance"]["validation"]["value"]
    # Measured (torch 2.13 CPU, bf16): 0.735 validation reading the review; 0.605 when the encoder is made to read
    # the instruction prompt (encoder_input set to it: the old behaviour), against chance 0.505. The bound sits
    # between the two, so this test fails if the encoder is given the causal LM's prompt again.
    assert validation >= chance + 0.18, (validation, chance, bench["learned_reason"])
    assert bench["learned"] is True and code == 0, bench["learned_reason"]
