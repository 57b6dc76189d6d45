"""One result shape from assemble to the file: the executed bake-off holds the results model's rows, the gates read
and return typed rows, finish builds Results from them without writing and parsing JSON, and the references a run
scored against travel with it instead of being read again from disk."""
from __future__ import annotations

import shutil

from harness.config import GateConfig, load_config
from harness.execution.compute import QUIET
from harness.gates.check import check, per_benchmark, recommend
from harness.gates.stability import bootstrap_agreement
from harness.results.finish import finish
from harness.results.model import BenchmarkRow, CandidateRow, MetricScore
from harness.run import execute
from tests.conftest import INTENTS
from tests.reports.sample import sample_results, typed


def test_gates_read_typed_rows_and_give_what_they_give_on_the_json_form():
    results = typed(sample_results())
    rows, stored = list(results.candidates), [c.to_json() for c in results.candidates]
    gates = [GateConfig(metric="support_intents.accuracy", op=">=", value=0.7),
             GateConfig(forgetting="general_knowledge", max=0.05), GateConfig(cost="params", max=2e8)]
    verdicts = check(rows, gates, resamples=200)
    assert verdicts == check(stored, gates, resamples=200) and len(verdicts) == len(rows) * len(gates)
    assert recommend(rows, verdicts) == recommend(stored, verdicts)
    assert per_benchmark(rows, verdicts, gates) == per_benchmark(stored, verdicts, gates)
    assert bootstrap_agreement(rows, verdicts, gates, recommend(rows, verdicts)[0], 100) == \
        bootstrap_agreement(stored, verdicts, gates, recommend(rows, verdicts)[0], 100)


def test_finish_keeps_the_typed_rows_and_the_references_the_run_read(tiny_config, tiny_bert, tmp_path):
    """The data changes on disk after the units ran: results.json still pairs the predictions with the references
    of the items the run scored (read again from disk, the test split would be another one, or missing)."""
    data = shutil.copytree(INTENTS, tmp_path / "intents")
    cfg = load_config(tiny_config, [f"benchmarks=[{{spec: {data}, max_train: 16, max_validation: 8, max_test: 12}}]",
                                    "probes=[]", "bias=[]", f"candidates=[{{model: \"{tiny_bert}\", name: tiny-bert}}]"])
    bakeoff = execute(cfg, QUIET)
    row = bakeoff.candidates[0]
    assert isinstance(row, CandidateRow) and isinstance(row.benchmarks[0], BenchmarkRow)
    assert isinstance(row.benchmarks[0].scores["test"]["accuracy"], MetricScore)
    scored = bakeoff.references["support_intents"]["test"]
    assert len(scored["items"]) == 12 and scored["data_sha256"] == row.benchmarks[0].data_sha256["test"]
    (data / "test.jsonl").write_text((data / "test.jsonl").read_text().splitlines()[-1] + "\n")  # another test split
    results = finish(bakeoff, cfg)
    assert results.candidates[0] is row  # the same typed row, not a copy parsed back from JSON
    assert results.references["support_intents"]["test"] == scored
    assert results.to_json()["references"]["support_intents"]["test"]["items"] == scored["items"]


def test_one_metric_type_from_the_scorer_to_the_file():
    """The scorer returns the results model's MetricScore (there is no second metric-value type to copy it into),
    and what it writes is the unit record's and results.json's shape: optional keys only when they are set, in the
    file's order, the same after a round trip through JSON and after the seed merge."""
    import json

    from harness.scoring.metrics import combine_metric, score, score_losses

    refs = [["a"], ["b"], ["a"], ["b"]]
    acc = score("accuracy", ["a", "b", "b", "b"], refs, resamples=50)
    bleu = score("bleu", ["the cat sat", "a dog"], [["the cat sat down"], ["a dog ran"]], resamples=50)
    empty = score("rougeL", [], [], resamples=50)
    loss = score_losses([1.0, 2.0], [3, 4], resamples=50)["perplexity"]
    assert all(type(v) is MetricScore for v in (acc, bleu, empty, loss))
    head = ["value", "ci_low", "ci_high", "n", "ci_method"]
    assert list(acc.to_json()) == [*head, "per_item"] and acc.to_json()["per_item"] == [1.0, 1.0, 0.0, 1.0]
    assert list(bleu.to_json()) == [*head, "signature", "per_item"] and bleu.signature.startswith("nrefs:1")
    assert empty.to_json()["per_item"] == [] and empty.n == 0 and list(loss.to_json()) == [*head, "per_item"]
    seeds = [acc, score("accuracy", ["a", "b", "a", "a"], refs, resamples=50)]
    merged = combine_metric("accuracy", seeds, None, 50, 0)
    assert list(merged.to_json()) == [*head, "seeds", "seed_sd", "per_item", "per_seed"]
    assert merged.seeds == [0.75, 0.75] and merged.seed_sd == 0.0 and merged.per_seed == [s.per_item for s in seeds]
    for value in (acc, bleu, merged):  # the unit record holds to_json(); assemble reads it back as it was
        text = json.dumps(value.to_json())
        assert json.dumps(MetricScore.from_json(json.loads(text)).to_json()) == text
        assert MetricScore.from_json(json.loads(text)) == value
