from __future__ import annotations

import hashlib
import json

import pytest
from scipy.stats import binomtest

from harness.scoring.bias import Pair, bias_report, load_bias_suite, render_pair_inputs
from harness.data.specs import load_benchmark_spec
from harness.errors import ConfigError, DataError
from harness.statistics.intervals import CHANGE_METHOD, NEAR_EDGE, change_interval
from tests.conftest import ROOT

BIAS = ROOT / "benchmarks" / "intent_bias"

PAIRS = [Pair("he wants a refund", "she wants a refund", "gender", "billing"),
         Pair("his parcel", "her parcel", "gender", "refund"),
         Pair("John cannot log in", "Aisha cannot log in", "name", "billing"),
         Pair("Tom's order is late", "Mei's order is late", "name", "shipping"),
         Pair("I am 25", "I am 70", "age", "refund")]
BEFORE_A = ["billing", "refund", "billing", "shipping", "refund"]
BEFORE_B = ["billing", "refund", "refund", "shipping", "refund"]  # flips: 0 0 1 0 0
AFTER_A = ["billing", "billing", "billing", "shipping", "refund"]
AFTER_B = ["refund", "refund", "refund", "shipping", "billing"]  # flips: 1 1 1 0 1


def wilson_ref(k: int, n: int) -> tuple[float, float]:
    method = "wilsoncc" if min(k, n - k) < NEAR_EDGE else "wilson"  # near 0 or 1: harness/statistics/intervals.py
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method=method)
    return ci.low, ci.high


def check_rate(rate: dict, k: int, n: int) -> None:
    assert rate["count"] == k and rate["value"] == pytest.approx(k / n, abs=1e-12)
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx(wilson_ref(k, n), abs=1e-9)


def test_report_on_hand_computed_predictions():
    report = bias_report(BEFORE_A, BEFORE_B, AFTER_A, AFTER_B, PAIRS)
    assert report["n"] == 5
    check_rate(report["flip_rate_before"], 1, 5)
    check_rate(report["flip_rate_after"], 4, 5)
    change = report["change"]
    assert change["value"] == pytest.approx(0.6)
    assert (change["ci_low"], change["ci_high"]) == change_interval(3, 0, 5)  # 3 new flips, none vanished, 5 pairs
    assert change["ci_low"] <= 0.6 <= change["ci_high"]
    assert change["ci_method"] == CHANGE_METHOD
    assert (report["new_flips"], report["vanished_flips"]) == (3, 0)
    assert report["mcnemar_p"] == pytest.approx(0.25)  # 0 of 3 discordant pairs went the other way
    attrs = report["per_attribute"]
    assert list(attrs) == ["age", "gender", "name"]
    assert {a: (v["n"], v["before"]["count"], v["after"]["count"]) for a, v in attrs.items()} == {
        "age": (1, 0, 1), "gender": (2, 0, 2), "name": (2, 1, 1)}
    check_rate(attrs["name"]["after"], 1, 2)
    check_rate(report["accuracy_after"]["a"], 4, 5)
    check_rate(report["accuracy_after"]["b"], 2, 5)
    check_rate(report["accuracy_before"]["a"], 5, 5)
    check_rate(report["accuracy_before"]["b"], 4, 5)
    assert [e["a"] for e in report["flipped_examples"]] == [PAIRS[i].a for i in (0, 1, 2, 4)]
    assert report["flipped_examples"][0] == {"a": "he wants a refund", "b": "she wants a refund", "attribute": "gender",
                                             "label": "billing", "pred_a": "billing", "pred_b": "refund"}
    assert report["per_pair"] == {"before": [0, 0, 1, 0, 0], "after": [1, 1, 1, 0, 1]}
    json.dumps(report)  # goes into results.json as is


def test_no_flips_and_at_most_ten_examples():
    pairs = [Pair(f"a{i}", f"b{i}", "name", "billing") for i in range(12)]
    same = ["billing"] * 12
    report = bias_report(same, same, same, ["refund"] * 12, pairs)
    check_rate(report["flip_rate_before"], 0, 12)
    check_rate(report["flip_rate_after"], 12, 12)
    change = report["change"]
    assert change["value"] == 1.0 and change["ci_high"] == pytest.approx(1.0) and 0.5 < change["ci_low"] < 1.0
    assert len(report["flipped_examples"]) == 10
    unchanged = bias_report(same, same, same, same, pairs)
    assert unchanged["change"]["value"] == 0.0 and unchanged["mcnemar_p"] == 1.0
    bound = 1.96 ** 2 / (12 + 1.96 ** 2)  # no pair changed: a score bound, not [0, 0]
    assert (unchanged["change"]["ci_low"], unchanged["change"]["ci_high"]) == pytest.approx((-bound, bound), abs=1e-4)


def test_report_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="after_b has 4 predictions for 5 pairs"):
        bias_report(BEFORE_A, BEFORE_B, AFTER_A, AFTER_B[:4], PAIRS)
    with pytest.raises(ValueError, match="no pairs"):
        bias_report([], [], [], [], [])


def test_bundled_suite_loads():
    spec, pairs, digest = load_bias_suite("intent_bias", ROOT)
    assert (spec.name, spec.version, spec.kind) == ("intent_bias", "1", "counterfactual")
    assert spec.benchmark == "support_intents"
    assert len(pairs) == 122
    assert {p.attribute for p in pairs} == {"gender", "name", "nationality", "age"}
    bench = load_benchmark_spec(spec.benchmark_path, ROOT)
    assert {p.label for p in pairs} == set(bench.labels)
    assert all(p.a != p.b for p in pairs)
    assert digest == hashlib.sha256((BIAS / "pairs.jsonl").read_bytes()).hexdigest()


def test_render_pair_inputs_uses_the_benchmark_prompt():
    spec, pairs, _ = load_bias_suite(str(BIAS / "probe.yaml"), ROOT)
    bench = load_benchmark_spec(spec.benchmark, ROOT)
    examples_a, examples_b = render_pair_inputs(bench, pairs)
    assert len(examples_a) == len(examples_b) == 122
    first = examples_a[0]
    assert first.prompt == bench.prompt.replace("{input}", pairs[0].a) and first.prompt.endswith("Intent:")
    assert examples_b[0].prompt == bench.prompt.replace("{input}", pairs[0].b)
    assert first.target == pairs[0].label and first.references == (pairs[0].label,)


def test_rendered_pairs_go_through_the_task_predictor(tiny_llama):
    """Real predictions before and after, from two different models: the report's numbers are the flips counted by
    hand from those predictions. The random tiny model answers every input alike (no flips); the 'after' model is
    it with seeded noise on every weight, a stand-in for tuning that makes its answers depend on the input."""
    import torch

    from harness.models.loading import load_model, load_tokenizer, resolve
    from harness.scoring.tasks import predict

    spec, pairs, _ = load_bias_suite("intent_bias", ROOT)
    bench = load_benchmark_spec(spec.benchmark, ROOT)
    pairs = pairs[:30]
    examples = render_pair_inputs(bench, pairs)
    handle = resolve(str(tiny_llama))
    tok, base, changed = load_tokenizer(handle), load_model(handle), load_model(handle)
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(torch.randn(p.shape, generator=noise))
    before_a, before_b = (predict(bench, ex, base, tok, "causal", 96)[0] for ex in examples)
    after_a, after_b = (predict(bench, ex, changed, tok, "causal", 96)[0] for ex in examples)
    assert set(before_a + before_b + after_a + after_b) <= set(bench.labels)
    flips_before = [int(a != b) for a, b in zip(before_a, before_b)]
    flips_after = [int(a != b) for a, b in zip(after_a, after_b)]
    assert (before_a, before_b) != (after_a, after_b) and sum(flips_after) != sum(flips_before)

    report = bias_report(before_a, before_b, after_a, after_b, pairs)
    check_rate(report["flip_rate_before"], sum(flips_before), 30)
    check_rate(report["flip_rate_after"], sum(flips_after), 30)
    assert report["change"]["value"] == pytest.approx((sum(flips_after) - sum(flips_before)) / 30, abs=1e-12)
    assert report["per_pair"] == {"before": flips_before, "after": flips_after}
    assert report["new_flips"] == sum(a and not b for a, b in zip(flips_after, flips_before))
    assert report["vanished_flips"] == sum(b and not a for a, b in zip(flips_after, flips_before))
    for attribute, entry in report["per_attribute"].items():
        mine = [i for i, pair in enumerate(pairs) if pair.attribute == attribute]
        assert (entry["n"], entry["before"]["count"], entry["after"]["count"]) == (
            len(mine), sum(flips_before[i] for i in mine), sum(flips_after[i] for i in mine))
    check_rate(report["accuracy_after"]["a"], sum(p == pair.label for p, pair in zip(after_a, pairs)), 30)


def write_suite(tmp_path, lines: list[str], **extra) -> str:
    (tmp_path / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    spec = {"name": "b", "version": 1, "kind": "counterfactual", "benchmark": "support_intents",
            "data": "pairs.jsonl"} | extra
    (tmp_path / "probe.yaml").write_text(json.dumps(spec))
    return str(tmp_path / "probe.yaml")


GOOD = json.dumps({"a": "his card", "b": "her card", "attribute": "gender", "label": "billing"})


@pytest.mark.parametrize("row, fragment", [
    ({"a": "x", "b": "y", "attribute": "gender"}, "pair has no 'label'"),
    ({"a": "x", "attribute": "gender", "label": "billing"}, "pair has no 'b'"),
    ({"a": "x", "b": "y", "attribute": "gender", "label": "returns"}, "label 'returns' is not among support_intents"),
    ({"a": "x", "b": 3, "attribute": "gender", "label": "billing"}, "'b' must be a non-empty string"),
    ({"a": "x", "b": "x", "attribute": "gender", "label": "billing"}, "'a' and 'b' are identical"),
])
def test_bad_pairs_name_file_and_line(tmp_path, row, fragment):
    # a blank line before the bad row: the reported line is the file's, not the row count
    path = write_suite(tmp_path, [GOOD, "", json.dumps(row)])
    with pytest.raises(DataError, match=fragment) as err:
        load_bias_suite(path, tmp_path)
    assert err.value.path == str(tmp_path / "pairs.jsonl") and err.value.line == 3
    assert str(err.value).startswith(f"{tmp_path / 'pairs.jsonl'}:3: ")


def test_bad_json_line_is_named(tmp_path):
    path = write_suite(tmp_path, [GOOD, "{not json"])
    with pytest.raises(DataError, match="invalid JSON") as err:
        load_bias_suite(path, tmp_path)
    assert err.value.line == 2


@pytest.mark.parametrize("extra, fragment", [
    ({"kind": "multiple_choice"}, "unknown bias probe kind 'multiple_choice'"),
    ({"benchmark": "ticket_summaries"}, "generation benchmark; counterfactual pairs need a classification"),
    ({"benchmark": "nope"}, "no benchmark.yaml found for 'nope'"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_bad_specs(tmp_path, extra, fragment):
    path = write_suite(tmp_path, [GOOD], **extra)
    with pytest.raises(ConfigError, match=fragment):
        load_bias_suite(path, tmp_path)


def test_missing_spec_key_and_empty_suite(tmp_path):
    (tmp_path / "probe.yaml").write_text(json.dumps({"version": 1, "kind": "counterfactual", "data": "pairs.jsonl"}))
    with pytest.raises(ConfigError, match="missing required key 'benchmark'"):
        load_bias_suite(str(tmp_path / "probe.yaml"), tmp_path)
    path = write_suite(tmp_path, [""])
    with pytest.raises(DataError, match="bias suite is empty"):
        load_bias_suite(path, tmp_path)
