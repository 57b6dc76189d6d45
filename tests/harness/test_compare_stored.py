"""compare_runs between two runs read back from the store: corpus metrics (macro-F1, BLEU, chrF) are the
reference libraries' corpus scores recomputed from the stored predictions and references, never a per-item mean
under the metric's name; a row that cannot be computed is omitted with the reason."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import sacrebleu
from sklearn.metrics import f1_score

from harness.results.compare import compare_runs
from harness.gates.baseline import baseline_test
from harness.scoring.metrics import score, score_losses
from harness.storage.store import Store

LABELS = ["billing", "refund", "login", "shipping"]
SHA = "t" * 64


def run_results(run_id: str, benchmark: str, task: str, predictions: list[str], references: list[list[str]],
                metrics: tuple[str, ...], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A schema-1 results dict (harness/results/finish.py) of one candidate scored by harness.scoring.metrics on real predictions,
    with the run's `references` as harness/results/finish.py keeps them (harness/data/references.py)."""
    scores = {m: score(m, predictions, references, resamples=50).to_json() for m in metrics} | (extra or {})
    bench = {"benchmark": benchmark, "version": "1", "task": task, "status": "ok", "reason": "",
             "data_sha256": {"test": SHA}, "scores": {"test": scores}, "probes": [],
             "predictions": {"test": list(predictions)}}
    cand = {"name": "cand", "model": "m", "status": "ok", "reason": "", "params": 1, "trainable_params": 1,
            "cost": {}, "benchmarks": [bench]}
    return {"schema_version": 1, "run_id": run_id, "name": "nightly", "created": "2026-01-01T00:00:00+0000",
            "config_hash": "c" * 16, "config": {}, "passed": True, "recommendation": "cand",
            "recommendation_reason": "", "gates": [], "candidates": [cand],
            "references": {benchmark: {"test": {"data_sha256": SHA, "items": references}}}}


def stored(tmp_path, *runs: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs as `sftbench compare` reads them: saved to a store and read back (JSON through SQLite)."""
    with Store(tmp_path / "runs.sqlite") as store:
        return [store.get(store.save(r)) for r in runs]


def row(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    (found,) = [r for r in rows if r["metric"] == metric]
    return found


def classification_runs(tmp_path, n: int = 150) -> tuple[list[dict[str, Any]], list[str], list[str], list[str]]:
    rng = np.random.Generator(np.random.PCG64(7))  # a named bit generator: see tests/harness/test_coverage.py
    gold = [LABELS[i] for i in rng.integers(0, 4, n)]
    # a is good on every class; b is as accurate overall but never says "login": macro-F1 and accuracy disagree
    pa = [g if rng.random() < 0.75 else LABELS[rng.integers(0, 4)] for g in gold]
    pb = [("refund" if g == "login" else g) if rng.random() < 0.95 else "billing" for g in gold]
    refs = [[g] for g in gold]
    runs = stored(tmp_path, run_results("run-a", "intents", "classification", pa, refs, ("accuracy", "macro_f1")),
                  run_results("run-b", "intents", "classification", pb, refs, ("accuracy", "macro_f1")))
    return runs, gold, pa, pb


def test_macro_f1_between_stored_runs_is_the_scikit_learn_difference(tmp_path):
    (a, b), gold, pa, pb = classification_runs(tmp_path)
    assert set(pa) | set(pb) <= set(gold)  # scikit-learn's default labels are then the gold labels, as harness.scoring.metrics's
    rows = compare_runs(a, b, resamples=300)
    f1 = row(rows, "macro_f1")
    want_a, want_b = f1_score(gold, pa, average="macro"), f1_score(gold, pb, average="macro")
    assert f1["a"] == pytest.approx(want_a, abs=1e-12) and f1["b"] == pytest.approx(want_b, abs=1e-12)
    assert f1["diff"] == pytest.approx(want_a - want_b, abs=1e-12)
    assert f1["test"].startswith("macro-F1 from predictions and gold")
    assert f1["ci_low"] <= f1["diff"] <= f1["ci_high"]
    acc = row(rows, "accuracy")
    assert abs(acc["diff"] - f1["diff"]) > 0.05  # the accuracy figures would have been caught under this name
    assert f1["significant"] in (True, False) and acc["significant"] in (True, False)


def generation_runs(tmp_path, extra: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list, list, list]:
    refs = [["the cat sat on the mat", "a cat was sitting on the mat"],
            ["a dog barked loudly at night", "the dog barked at night"],
            ["rain is expected tomorrow", "tomorrow it will rain"],
            ["she reads a book every evening", "every evening she reads a book"],
            ["prices rose sharply in may", "in may prices rose sharply"]] * 6
    ha = ["the cat sat on a mat", "a dog barked at night", "rain expected tomorrow", "she reads books every evening",
          "prices rose in may"] * 6
    hb = ["cat on mat", "the dog barked at night", "rain tomorrow", "she reads", "in may prices rose sharply"] * 6
    metrics = ("bleu", "chrf")
    runs = stored(tmp_path, run_results("gen-a", "summaries", "generation", ha, refs, metrics, extra),
                  run_results("gen-b", "summaries", "generation", hb, refs, metrics, extra))
    return runs, refs, ha, hb


def test_bleu_and_chrf_between_stored_runs_are_the_sacrebleu_differences(tmp_path):
    (a, b), refs, ha, hb = generation_runs(tmp_path)
    streams = [[r[k] for r in refs] for k in range(2)]
    rows = compare_runs(a, b, resamples=200)
    for metric, corpus in (("bleu", sacrebleu.corpus_bleu), ("chrf", sacrebleu.corpus_chrf)):
        got, want_a, want_b = row(rows, metric), corpus(ha, streams).score, corpus(hb, streams).score
        assert got["a"] == pytest.approx(want_a, abs=1e-9) and got["b"] == pytest.approx(want_b, abs=1e-9)
        assert got["diff"] == pytest.approx(want_a - want_b, abs=1e-9)
        assert got["test"].startswith(f"corpus {metric} from sacrebleu statistics")
        sentence_mean = np.mean(a["candidates"][0]["benchmarks"][0]["scores"]["test"][metric]["per_item"])
        assert got["a"] != pytest.approx(sentence_mean, abs=1e-3)  # the mean of sentence scores is another number


def test_loss_is_omitted_without_token_counts(tmp_path):
    losses = score_losses([1.0, 2.0, 4.0] * 10, [1, 3, 9] * 10, resamples=50)
    extra = {m: v.to_json() for m, v in losses.items()}
    (a, b), *_ = generation_runs(tmp_path, extra)
    rows = compare_runs(a, b, resamples=100)
    for metric in ("loss", "perplexity"):
        got = row(rows, metric)
        assert "a" not in got and "diff" not in got and "token counts are not stored" in got["omitted"]
    assert "significant" in row(rows, "bleu")


def test_a_run_stored_without_references_omits_corpus_rows_and_says_why(tmp_path):
    (a, b), *_ = classification_runs(tmp_path)
    old = copy.deepcopy(a) | {"run_id": "old-run"}
    del old["references"]
    (old,) = stored(tmp_path, old)
    for first, second in ((old, b), (b, old)):
        rows = compare_runs(first, second, resamples=200)
        f1 = row(rows, "macro_f1")
        assert set(f1) == {"candidate", "benchmark", "split", "metric", "higher_is_better", "omitted"}
        assert "run old-run stores no references for intents/test" in f1["omitted"]
        assert "significant" in row(rows, "accuracy")  # the rest is still compared
        assert not any(r.get("test", "").startswith("NOT") for r in rows)  # never a stand-in under the name


def test_references_of_other_data_or_missing_predictions_are_never_paired(tmp_path):
    (a, b), *_ = classification_runs(tmp_path)
    other = copy.deepcopy(a)
    other["references"]["intents"]["test"]["data_sha256"] = "u" * 64
    assert "not of the scored data" in row(compare_runs(other, b, resamples=100), "macro_f1")["omitted"]
    short = copy.deepcopy(a)
    short["references"]["intents"]["test"]["items"].pop()
    assert "150 predictions of cand but 149 references" in row(compare_runs(short, b, resamples=100), "macro_f1")["omitted"]
    none = copy.deepcopy(a)
    none["candidates"][0]["benchmarks"][0]["predictions"] = {}
    assert "stores no predictions of cand" in row(compare_runs(none, b, resamples=100), "macro_f1")["omitted"]


def test_a_recomputed_value_that_differs_from_the_stored_one_is_not_shown(tmp_path):
    (a, b), *_ = classification_runs(tmp_path)
    wrong = copy.deepcopy(a)
    wrong["references"]["intents"]["test"]["items"] = [["billing"]] * 150  # references that are not the gold
    got = row(compare_runs(wrong, b, resamples=100), "macro_f1")
    assert "a" not in got and "recomputed from what run run-a stores is" in got["omitted"]
    assert f"not the {a['candidates'][0]['benchmarks'][0]['scores']['test']['macro_f1']['value']}" in got["omitted"]


def test_explicit_references_replace_the_stored_ones(tmp_path):
    (a, b), gold, pa, pb = classification_runs(tmp_path)
    for r in (a, b):
        del r["references"]
    f1 = row(compare_runs(a, b, resamples=100, references={("intents", "test"): [[g] for g in gold]}), "macro_f1")
    assert f1["diff"] == pytest.approx(f1_score(gold, pa, average="macro") - f1_score(gold, pb, average="macro"),
                                       abs=1e-12)


def test_a_baseline_gate_on_macro_f1_uses_the_baseline_runs_references(tmp_path):
    (a, b), gold, pa, pb = classification_runs(tmp_path)
    candidate = copy.deepcopy(a["candidates"][0])  # as build_results hands it to the gates: no run-level references
    res, why = baseline_test(candidate, "intents.macro_f1", (b, "cand"), margin=0.02, resamples=200)
    assert why == "" and res["test"].startswith("macro-F1 from predictions and gold")
    want = f1_score(gold, pa, average="macro") - f1_score(gold, pb, average="macro")
    assert res["diff"] == pytest.approx(want, abs=1e-12)
    del b["references"]  # an old baseline: the stand-in is tested, and says so
    res, _ = baseline_test(candidate, "intents.macro_f1", (b, "cand"), margin=0.02, resamples=200)
    assert res["test"].startswith("NOT macro-F1")
