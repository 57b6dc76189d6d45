"""Chance and `learned` (harness/scoring/chance.py) on constructed data, hand-computed; the recommendation never goes to a
candidate that did not learn or to a zero-shot reference row; a sweep in which every setting ties says so."""
from __future__ import annotations

import json
import math

import pytest

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.gates.check import Verdict, recommend
from harness.results.model import MetricScore
from harness.scoring.chance import LEARN_MARGIN, Chance, chance, learned, margin
from reports.format import learning_lines, sweep_lines, verdict
from tests.reports.sample import typed


def _bench(tmp_path, rows, task="classification", **extra):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "t", "version": 1, "task": task, "prompt": "Q: {input}\nA:", "fields": {"input": "text", "target": "label"},
            "metrics": ["accuracy"], "splits": {"train": "d.jsonl", "test": "d.jsonl"}} | extra
    if task == "classification":
        spec["labels"] = ["a", "b", "c"]
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_classification_chance_is_the_majority_class_by_the_same_metric(tmp_path):
    rows = [{"text": f"x{i}", "label": lab} for i, lab in enumerate("aaabbc")]
    spec, splits = _bench(tmp_path, rows, metrics=["accuracy", "macro_f1"])
    acc = chance(spec, splits["test"], "accuracy")
    assert acc.value == pytest.approx(3 / 6) and "'a'" in acc.how
    # always 'a': F1(a) = 2 * (3/6 * 1) / (3/6 + 1) = 2/3, F1(b) = F1(c) = 0 -> macro-F1 over the gold labels 2/9
    assert chance(spec, splits["test"], "macro_f1").value == pytest.approx((2 / 3) / 3)


def test_generation_chance_is_the_better_trivial_output(tmp_path):
    rows = [{"text": "the cat sat on the mat", "label": "the cat sat on the mat today"},
            {"text": "a dog barked", "label": "a dog barked loudly"}]
    spec, splits = _bench(tmp_path, rows, task="generation", metrics=["rougeL"])
    c = chance(spec, splits["test"], "rougeL")
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    copy = sum(scorer.score(r["label"], r["text"])["rougeL"].fmeasure for r in rows) / 2
    assert c.how == "copying the input" and c.value == pytest.approx(copy)
    # against unrelated references both trivial outputs score 0
    rows = [{"text": "zzz qqq", "label": "the cat"}, {"text": "www", "label": "a dog"}]
    spec, splits = _bench(tmp_path, rows, task="generation", metrics=["rougeL"])
    assert chance(spec, splits["test"], "rougeL").value == 0.0
    spec, splits = _bench(tmp_path, rows, task="generation", metrics=["loss"])
    assert chance(spec, splits["test"], "loss") is None  # loss has no trivial prediction


def _mv(value, low, high):
    return MetricScore(value, low, high, 100, "wilson")


@pytest.mark.parametrize("test, val, expected, phrase", [
    (_mv(0.80, 0.72, 0.86), None, True, "beats it by 0.3"),
    (_mv(0.51, 0.41, 0.61), None, False, "does not beat chance by the margin"),
    (_mv(0.40, 0.31, 0.50), None, False, "does not beat chance by the margin"),  # below chance
    (_mv(0.56, 0.46, 0.66), None, False, "its 95% interval includes it"),  # beats by 6 points, interval overlaps
    (_mv(0.80, 0.72, 0.86), 0.51, False, "validation accuracy 0.51 does not beat"),
    (_mv(0.80, 0.72, 0.86), 0.60, True, "beats it"),
])
def test_learned_rule(test, val, expected, phrase):
    did, why = learned("accuracy", test, Chance(0.5, "always 'a'"), val, Chance(0.5, "always 'a'") if val else None)
    assert did is expected and phrase in why


def test_learned_is_unknown_without_a_baseline_or_with_nan():
    assert learned("accuracy", _mv(0.8, 0.7, 0.9), None)[0] is None
    assert learned("accuracy", _mv(math.nan, math.nan, math.nan), Chance(0.5, "x"))[0] is None


def test_margin_follows_the_metric_scale_and_direction():
    assert margin("accuracy") == LEARN_MARGIN and margin("bleu") == 100 * LEARN_MARGIN
    assert learned("bleu", MetricScore(3.0, 2.5, 3.5, 50, "bootstrap"), Chance(2.0, "copy"))[0] is False  # +1 < 2 BLEU
    assert learned("bleu", MetricScore(9.0, 6.0, 12.0, 50, "bootstrap"), Chance(2.0, "copy"))[0] is True


def _cand(name, params, *, learned_=True, zero=False):
    bench = {"benchmark": "t", "status": "ok", "learned": learned_, "sweep": [], "scores": {}}
    return {"name": name, "status": "ok", "params": params, "cost": {"train_seconds": 1.0}, "zero_shot": zero,
            "did_not_learn": [] if learned_ else ["t"], "benchmarks": [bench]}


def test_a_candidate_that_did_not_learn_is_never_recommended():
    cands = [_cand("small", 1, learned_=False), _cand("zero", 1, zero=True), _cand("big", 9)]
    verdicts = [Verdict(c["name"], "g", True, 1.0, "ok") for c in cands]
    name, reason = recommend(cands, verdicts)
    assert name == "big" and "small did not learn t" in reason
    name, reason = recommend(cands[:2], verdicts[:2])
    assert name is None and "small: did not learn t" in reason
    assert "zero passes every gate untuned (a zero-shot reference row)" in reason
    results = typed({"gates": [v.to_json() for v in verdicts], "candidates": cands})
    rows = results.candidates
    assert verdict(results, rows[0]) == ("DID NOT LEARN", "t at chance level")
    assert verdict(results, rows[1])[0] == "reference" and verdict(results, rows[2]) == ("pass", "")
    failing = typed({"gates": [{"candidate": "big", "gate": "t.accuracy >= 0.9", "passed": False}], "candidates": cands})
    assert verdict(failing, rows[2]) == ("FAIL", "t.accuracy >= 0.9")  # learned, but worse: a gate FAIL


def test_a_sweep_in_which_every_setting_ties_says_so():
    rows = [{"learning_rate": lr, "epochs": 1, "validation": 0.5, "chosen": lr == 1e-3, "tied": True} for lr in (1e-3, 1e-2)]
    cand = _cand("m", 1, learned_=False)
    cand["benchmarks"][0]["sweep"] = rows
    (line,) = sweep_lines(typed({"candidates": [cand]}))
    assert "all 2 settings tied on validation: none is better" in line and "(chosen)" not in line
    rows[1]["validation"], rows[0]["tied"], rows[1]["tied"] = 0.7, False, False
    assert "(chosen)" in sweep_lines(typed({"candidates": [cand]}))[0]


def test_tuning_bought_line_against_the_zero_shot_row():
    def with_score(c, v):
        c["benchmarks"][0]["scores"] = {"test": {"accuracy": {"value": v, "ci_low": v - .1, "ci_high": v + .1}}}
        c["benchmarks"][0]["generalisation"] = {"metric": "accuracy"}
        return c

    cands = [with_score(_cand("m", 1), 0.8), with_score(_cand("m-zero-shot", 1, zero=True), 0.35)]
    assert "m / t: tuning bought +45.0 points of accuracy over zero-shot (35.0 -> 80.0)" in learning_lines(typed(
        {"candidates": cands}))
