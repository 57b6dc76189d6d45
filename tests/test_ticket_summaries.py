"""The bundled generation benchmark, ticket_summaries, in a tiny capped bake-off through the CLI: the causal
candidate is tuned, generates and is scored (ROUGE and BLEU equal to rouge-score and sacrebleu on the stored
predictions, reference loss and perplexity), and the encoder candidate is `n/a` with the reason, fails its gates
closed, and is never recommended."""
from __future__ import annotations

import json
import math

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer

from harness.cli import main
from tests.conftest import ROOT

N_TEST = 6


def test_ticket_summaries_bakeoff(tmp_path, tiny_llama, tiny_bert, capsys):
    cfg = tmp_path / "summaries.yaml"
    cfg.write_text(f"""
name: summaries
candidates:
  - {{model: "{tiny_llama}", name: tiny-llama}}
  - {{model: "{tiny_bert}", name: tiny-bert}}
recipe: {{epochs: 1, batch_size: 8, max_length: 192, learning_rate: 1e-3, bf16: "off"}}
benchmarks: [{{spec: ticket_summaries, max_train: 16, max_test: {N_TEST}}}]
bootstrap_resamples: 100
gates: [{{metric: ticket_summaries.rougeL, op: ">=", value: 0.0}}]
""")
    code = main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"])
    assert code in (0, 1), capsys.readouterr().err  # no usage error, no crash; the verdict is not the point here
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    llama, bert = (next(c for c in results["candidates"] if c["name"] == n) for n in ("tiny-llama", "tiny-bert"))

    # the encoder: n/a with the reason, its gate fails closed, never the recommendation
    assert bert["status"] == "ok" and [b["status"] for b in bert["benchmarks"]] == ["n/a"]
    assert bert["benchmarks"][0]["reason"] == "an encoder-only model cannot generate text"
    assert bert["benchmarks"][0]["scores"] == {} and bert["benchmarks"][0]["train"] is None
    verdict = next(g for g in results["gates"] if g["candidate"] == "tiny-bert")
    assert not verdict["passed"] and verdict["message"] == (
        "fails closed: benchmark ticket_summaries n/a: an encoder-only model cannot generate text")
    assert results["recommendation"] != "tiny-bert"
    assert "tiny-bert: no applicable benchmark" in results["recommendation_reason"] or results["recommendation"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert next(line for line in summary.splitlines() if line.startswith("| tiny-bert |")).count("n/a") >= 1

    # the causal LM: tuned, generated, scored on every declared metric plus the reference loss
    bench = llama["benchmarks"][0]
    assert bench["status"] == "ok" and bench["task"] == "generation"
    assert bench["train"]["steps"] == 2 and len(bench["train"]["train_loss"]) == 1
    test = bench["scores"]["test"]
    assert set(test) == {"rougeL", "rouge1", "rouge2", "bleu", "loss", "perplexity"}
    assert set(bench["scores"]) == {"test"} and bench["generalisation"] == {}  # no shifted split, no validation
    preds = bench["predictions"]["test"]
    refs = [json.loads(line)["summary"] for line in
            (ROOT / "benchmarks" / "ticket_summaries" / "test.jsonl").read_text().splitlines()[:N_TEST]]
    assert len(preds) == N_TEST and all(isinstance(p, str) and "\n" not in p for p in preds)
    for kind in ("rougeL", "rouge1", "rouge2"):
        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        per_item = [scorer.score(r, p)[kind].fmeasure for p, r in zip(preds, refs)]
        assert test[kind]["per_item"] == per_item and test[kind]["value"] == float(np.mean(per_item))
        assert test[kind]["n"] == N_TEST
    assert test["bleu"]["value"] == sacrebleu.corpus_bleu(preds, [refs]).score
    assert 0 < test["loss"]["value"] < 10 and test["perplexity"]["value"] == math.exp(test["loss"]["value"])
    assert test["loss"]["ci_low"] <= test["loss"]["value"] <= test["loss"]["ci_high"]
    assert next(g for g in results["gates"] if g["candidate"] == "tiny-llama")["passed"]  # rougeL >= 0
