"""Trained parameters per benchmark (issue 26, point 3): an encoder tunes a new head per benchmark, as many outputs as
the benchmark has labels, so its trained count differs by benchmark. The candidate's count was the last benchmark's
(MiniLM 74.9K in one run, 74.5K in another); each benchmark's is now in its row, the candidate's is the largest in
either order, and the reports show the range with a line per benchmark."""
from __future__ import annotations

import json

from harness.cli import main
from reports.costs import params_text


def _binary_benchmark(folder):
    labels = ["bad", "good"]
    rows = [{"text": f"item {i} is {labels[i % 2]}", "label": labels[i % 2]} for i in range(24)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "polarity", "version": 1, "task": "classification", "prompt": "Text: {input}\nLabel:",
            "fields": {"input": "text", "target": "label"}, "labels": {"good": "good", "bad": "bad"},
            "metrics": ["accuracy"], "splits": {s: "rows.jsonl" for s in ("train", "validation", "test")}}
    (folder / "benchmark.yaml").write_text(json.dumps(spec))
    return str(folder / "benchmark.yaml")


def test_trained_parameters_are_per_benchmark_and_do_not_depend_on_order(tiny_config, tiny_bert, tmp_path, capsys):
    polarity = _binary_benchmark(tmp_path)
    intents = "{spec: support_intents, max_train: 16, max_validation: 8, max_test: 12}"
    base = ["run", str(tiny_config), "--quiet", "probes=[]", "bias=[]", "gates=[]",
            f"candidates=[{{model: '{tiny_bert}', name: tiny-bert}}]"]
    runs = {}
    for order in ((intents, f"{{spec: '{polarity}'}}"), (f"{{spec: '{polarity}'}}", intents)):
        out = tmp_path / f"out{len(runs)}"
        main([*base, "--out", str(out), f"benchmarks=[{', '.join(order)}]"])
        runs[order[0] == intents] = (json.loads((out / "results.json").read_text()), capsys.readouterr().out)
    (first, printed), (second, _) = runs[True], runs[False]
    cand, again = first["candidates"][0], second["candidates"][0]
    per = {b["benchmark"]: b["trainable_params"] for b in cand["benchmarks"]}
    assert per == {b["benchmark"]: b["trainable_params"] for b in again["benchmarks"]}
    # the head: (hidden + 1) outputs per label, so 7 labels against 2 differ by 5 (hidden + 1)
    assert per["support_intents"] > per["polarity"] > 0
    assert (per["support_intents"] - per["polarity"]) % 5 == 0
    assert cand["trainable_params"] == again["trainable_params"] == per["support_intents"]
    assert cand["params"] == again["params"] == max(b["params"] for b in cand["benchmarks"])
    low, high = params_text(per["polarity"]), params_text(per["support_intents"])
    assert f"tiny-bert: trained parameters per benchmark (each tunes its own head): support_intents {high}, " \
           f"polarity {low}" in printed
    md = (tmp_path / "out0" / "summary.md").read_text()
    assert f"({low}-{high})" in md or low == high


def test_a_row_scored_as_it_is_trains_nothing_and_says_0():
    from reports.costs import trained_text
    from tests.reports.sample import typed

    bench = {"benchmark": "t", "status": "ok", "scores": {}, "trainable_params": 0}
    row = {"name": "m-zero-shot", "status": "ok", "params": 10, "zero_shot": True, "benchmarks": [bench]}
    assert trained_text(typed({"candidates": [row]}).candidates[0]) == "0"  # was "0.0K"
