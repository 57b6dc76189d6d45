from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import SuiteRef, load_config
from harness.data.specs import load_benchmark
from harness.data.validate import Finding, estimate_tokens, lint_benchmark, near_pairs, normalise
from harness.execution.preflight import lint, validate
from reports.format import LISTED
from tests.conftest import ROOT


def brute_force(left, right, threshold):
    def jaccard(a, b):
        return len(a & b) / len(a | b) if a and b else 0.0

    if right is None:
        pairs = itertools.combinations(range(len(left)), 2)
        return {(i, j) for i, j in pairs if jaccard(left[i], left[j]) >= threshold}
    return {(i, j) for i in range(len(left)) for j in range(len(right)) if jaccard(left[i], right[j]) >= threshold}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 0.9, 1.0])
def test_prefix_filtering_finds_exactly_the_brute_force_pairs(threshold):
    rng = random.Random(threshold)
    vocab = [f"w{i}" for i in range(25)]
    left = [frozenset(rng.sample(vocab, rng.randint(0, 12))) for _ in range(250)]
    right = [frozenset(rng.sample(vocab, rng.randint(1, 12))) for _ in range(150)]
    assert {(i, j) for i, j, _ in near_pairs(left, None, threshold)} == brute_force(left, None, threshold)
    assert {(i, j) for i, j, _ in near_pairs(left, right, threshold)} == brute_force(left, right, threshold)


def test_normalise_and_token_estimate():
    assert normalise("  Refund, PLEASE!!\n my_order ") == "refund please my order"
    assert estimate_tokens("a" * 400) == 100  # chars/4 for long words
    assert estimate_tokens("a b c d e f") == 8  # words*4/3 for short ones


def test_finding_format():
    assert str(Finding("warning", "d/train.jsonl", 3, "x")) == "d/train.jsonl:3: warning: x"
    assert str(Finding("error", "c.yaml", None, "y")) == "c.yaml: error: y"
    assert Finding("error", "c.yaml", None, "y").to_dict() == {"level": "error", "path": "c.yaml", "line": None,
                                                               "message": "y"}


def write_bench(tmp_path, train, test, labels=("refund", "billing", "shipping")):
    return write_splits(tmp_path, {"train": train, "test": test}, labels)


SENTENCE = "the parcel was left at the wrong house and nobody answered the door when i called the depot"


def test_lint_names_each_problem_at_its_line(tmp_path):
    train = [("I want my money back", "refund"),  # line 1
             ("Why was I charged twice?", "billing"),  # 2
             ("I want my money back", "refund"),  # 3: exact duplicate of 1
             ("why was i CHARGED twice", "refund"),  # 4: duplicate of 2 after normalisation, other label
             (SENTENCE, "billing"),  # 5
             (SENTENCE + " yesterday", "billing")]  # 6: near-duplicate of 5 (Jaccard 15/16)
    test = [("Where is my parcel", "billing"),  # 1
            ("I want my money back!", "billing")]  # 2: leaks train line 1, other label
    spec, splits = write_bench(tmp_path, train, test)
    findings = lint_benchmark(spec, splits, max_length=20)
    by_line: dict = {}
    for f in findings:
        by_line.setdefault((f.path.split("/")[-1], f.line), []).append(f.message)
    assert by_line[("train.jsonl", 3)] == ["exact duplicate of line 1 in train"]
    assert by_line[("train.jsonl", 4)] == ["duplicate after normalisation of line 2 in train, with a different "
                                           "label ('refund' here, 'billing' there)"]
    assert by_line[("train.jsonl", 6)][0] == "near-duplicate (Jaccard 0.94) of line 5 in train"
    assert by_line[("test.jsonl", 2)] == ["leakage: duplicate after normalisation of train line 1 (train.jsonl), "
                                          "with a different label ('billing' here, 'refund' there)"]
    assert ("test.jsonl", 1) not in by_line and ("train.jsonl", 1) not in by_line
    assert by_line[("train.jsonl", None)] == ["label 'shipping' has no train rows: the model never sees it"]
    long_rows = [f for f in findings if "over recipe.max_length 20" in f.message]
    assert [f.line for f in long_rows] == [5, 6] and all(f.level == "warning" for f in findings)


def write_splits(tmp_path, splits: dict[str, list[tuple[str, str]]], labels=("refund", "billing", "shipping")):
    """A classification benchmark with the given splits (name -> (text, label) rows), loaded."""
    for name, rows in splits.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    (tmp_path / "benchmark.yaml").write_text(json.dumps({
        "name": "b", "version": 1, "task": "classification", "prompt": "{input}", "labels": list(labels),
        "fields": {"input": "text", "target": "label"}, "metrics": ["accuracy"],
        "splits": {name: f"{name}.jsonl" for name in splits}}))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_leakage_into_validation_and_shifted_is_found_at_its_line(tmp_path):
    train = [("I want my money back", "refund"), ("Why was I charged twice?", "billing"), (SENTENCE, "shipping")]
    validation = [("track my parcel please", "shipping"),  # 1
                  ("why was I charged TWICE", "billing")]  # 2: train line 2 after normalisation
    test = [("Where is my parcel", "shipping")]
    shifted = [("hey", "refund"),  # 1
               (SENTENCE + " yesterday", "shipping"),  # 2: near-duplicate of train line 3
               ("I want my money back", "billing")]  # 3: exact copy of train line 1, with another label
    spec, splits = write_splits(tmp_path, {"train": train, "validation": validation, "test": test, "shifted": shifted})
    leaks = [(Path(f.path).name, f.line, f.message) for f in lint_benchmark(spec, splits, max_length=256)
             if f.message.startswith("leakage")]
    assert leaks == [
        ("validation.jsonl", 2, "leakage: duplicate after normalisation of train line 2 (train.jsonl)"),
        ("shifted.jsonl", 2, "leakage: near-duplicate (Jaccard 0.94) of train line 3 (train.jsonl)"),
        ("shifted.jsonl", 3, "leakage: exact duplicate of train line 1 (train.jsonl), with a different label "
                             "('billing' here, 'refund' there)")]


def test_leakage_is_linted_on_the_rows_a_run_uses(tmp_path):
    """Caps apply before the lint: a validation row past max_validation, or a shifted row past max_test, is never
    scored, so its copy of a train row is not leakage; a train row past max_train was never trained on."""
    train = [("I want my money back", "refund"), ("Why was I charged twice?", "billing")]
    spec_dir = tmp_path / "b"
    spec_dir.mkdir()
    write_splits(spec_dir, {"train": train, "test": [("Where is my parcel", "shipping")],
                            "validation": [("hello", "refund"), ("I want my money back", "refund")],
                            "shifted": [("hi", "refund"), ("Why was I charged twice?", "billing")]})
    cfg = load_config(None, [f"benchmarks=[{{spec: {spec_dir / 'benchmark.yaml'}, max_validation: 1, max_test: 1}}]",
                             "probes=[]", "bias=[]", "gates=[]"])
    assert not [f for f in lint(cfg) if f.message.startswith("leakage")]
    cfg = load_config(None, [f"benchmarks=[{{spec: {spec_dir / 'benchmark.yaml'}, max_train: 1}}]",
                             "probes=[]", "bias=[]", "gates=[]"])
    leaks = [(Path(f.path).name, f.line) for f in lint(cfg) if f.message.startswith("leakage")]
    assert leaks == [("validation.jsonl", 2)]  # train line 2 is past max_train, so its shifted copy is no leak


def test_label_imbalance_and_every_finding_with_its_kind(tmp_path):
    """The lint returns every finding, each with its kind and benchmark: the listings cap them per kind
    (tests/test_first_hour.py), results.json and warnings.txt keep them all."""
    train = [(f"refund request number {i} for order {i * 7}", "refund") for i in range(44)]
    train += [("the invoice total is wrong", "billing"), ("card charged on the wrong day", "billing"),
              ("track my parcel", "shipping"), ("parcel is late", "shipping"), ("wrong address", "shipping")]
    test = [(f"refund request number {i} for order {i * 7}", "refund") for i in range(LISTED + 3)]
    spec, splits = write_bench(tmp_path, train, test)
    findings = lint_benchmark(spec, splits, max_length=256)
    assert "label imbalance in train: 'refund' has 44 rows, 'billing' 2 (ratio 22.0 > 10)" in [f.message
                                                                                            for f in findings]
    leaks = [f for f in findings if f.message.startswith("leakage")]
    assert len(leaks) == LISTED + 3 and {(f.kind, f.benchmark) for f in leaks} == {
        ("test rows that also appear in train", "b")}
    assert leaks[0].to_dict() == {"level": "warning", "path": str(tmp_path / "test.jsonl"), "line": 1,
                                  "message": leaks[0].message, "kind": "test rows that also appear in train",
                                  "benchmark": "b"}


def test_ten_thousand_rows_lint_fast(tmp_path):
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    train = [(" ".join(rng.choices(vocab, k=rng.randint(5, 40))), "refund" if i % 2 else "billing")
             for i in range(10_000)]
    test = [(" ".join(rng.choices(vocab, k=20)), "refund") for _ in range(2000)] + [train[7]]
    spec, splits = write_bench(tmp_path, train, test, labels=("refund", "billing"))
    start = time.perf_counter()
    findings = lint_benchmark(spec, splits, max_length=256)
    assert time.perf_counter() - start < 10  # all-pairs Jaccard on 10k x 10k rows would take minutes
    assert [f.line for f in findings if f.message.startswith("leakage")] == [2001]


def test_bundled_suites_are_clean():
    """Every bundled benchmark, probe and bias suite at the demo's recipe: no error and no warning."""
    cfg = load_config(None, ["benchmarks=[support_intents, ticket_summaries]", "bias=[intent_bias]"])
    assert lint(cfg) == []


def test_gates_on_what_no_benchmark_produces_are_errors_with_the_closest_name(tmp_path):
    cfg = load_config(None, ["gates=[{metric: support_intents.bleu}, {metric: nosuch.accuracy}, "
                             "{metric: support_intents.macro_f1.shifted}, "
                             "{metric: support_intents.accuracy.validation}, {metric: support_intents.acuracy}, "
                             "{metric: support_intent.macro_f1, baseline: demo}]"])
    assert [(f.level, f.message) for f in lint(cfg)] == [("error", m) for m in (
        "gate 'support_intents.bleu >= 0': benchmark 'support_intents' does not compute 'bleu' (accuracy, macro_f1)",
        "gate 'nosuch.accuracy >= 0': no benchmark 'nosuch' in the config (support_intents)",
        "gate 'support_intents.accuracy.validation >= 0': benchmark 'support_intents' scores no 'validation' split "
        "(test, shifted); did you mean 'support_intents.accuracy' (the test split)?",
        "gate 'support_intents.acuracy >= 0': benchmark 'support_intents' does not compute 'acuracy' (accuracy, "
        "macro_f1); did you mean 'support_intents.accuracy'?",
        "gate 'support_intent.macro_f1 no regression vs demo (margin 0)': no benchmark 'support_intent' in the config "
        "(support_intents); did you mean 'support_intents.macro_f1'?")]


def test_gates_on_conditional_metrics_are_accepted():
    """Loss and perplexity exist on generation benchmarks only, shifted scores where a shifted split is declared,
    corpus metrics (BLEU) where declared; caps name probes and suites, not metrics."""
    cfg = load_config(None, ["benchmarks=[support_intents, ticket_summaries]", "gates=["
                             "{metric: ticket_summaries.loss, op: '<=', value: 9}, "
                             "{metric: ticket_summaries.perplexity, op: '<=', value: 1e9}, "
                             "{metric: ticket_summaries.rougeL.test}, "
                             "{metric: ticket_summaries.bleu}, "
                             "{metric: support_intents.macro_f1.shifted, on: ci_low}, "
                             "{metric: support_intents.accuracy, baseline: demo, margin: 0.02}, "
                             "{forgetting: '*', max: 0.1}, {cost: params, max: 1e9}, {bias: intent_bias, max: 0.1}]"])
    assert [f for f in lint(cfg) if f.level == "error"] == []


def test_errors_are_collected_per_suite(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\ncandidates: [no such model]\nbenchmarks: [nosuch, support_intents]\nprobes: [nosuchprobe]\n")
    errors = [(f.path, f.message.split(";")[0].split(":")[0]) for f in validate(cfg) if f.level == "error"]
    assert errors == [(str(cfg), "no benchmark.yaml found for 'nosuch'"),
                      (str(cfg), "no probe.yaml found for 'nosuchprobe'"),
                      (str(cfg), "unknown model 'no such model'")]


def test_uncached_hub_model_is_a_warning_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = load_config(None, ["candidates=[someorg/somemodel]"])
    assert [(f.level, f.path) for f in lint(cfg)] == [("warning", "someorg/somemodel")]


def test_cli_prints_findings_on_stderr_and_exits_0_on_warnings(tmp_path, capsys):
    spec_dir = tmp_path / "b"
    spec_dir.mkdir()
    write_bench(spec_dir, [("refund me", "refund"), ("refund me", "refund"), ("bill", "billing"),
                           ("ship it", "shipping")], [("where is my parcel, it was due on monday", "shipping")])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\ncandidates: [minilm-l6]\nbenchmarks: [b/benchmark.yaml]\n")
    assert main(["validate", str(cfg)]) == 0
    out = capsys.readouterr()
    assert out.err == f"{spec_dir / 'train.jsonl'}:2: warning: exact duplicate of line 1 in train\n"
    assert out.out == f"{cfg}: 0 errors, 1 warning\n"
    assert main(["validate", str(cfg), "recipe.max_length=8"]) == 0
    assert "over recipe.max_length 8" in capsys.readouterr().err


def test_validate_imports_no_torch():
    code = ("import sys; from harness.cli import main; assert main(['validate']) == 0; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'loaded a model library'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---- every field that reaches the model (issue 25) ----------------------------------------------------------------

PREMISE = "a man in a blue coat is reading the morning paper on a bench by the river"


def write_pairs(tmp_path, splits: dict[str, list[tuple[str, str, str]]]):
    """An NLI benchmark (premise, hypothesis, label), both fields in the prompt and read by an encoder as a pair."""
    for name, rows in splits.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"premise": p, "hypothesis": h, "label": lab}) + "\n"
                                                        for p, h, lab in rows))
    (tmp_path / "benchmark.yaml").write_text(json.dumps({
        "name": "nli", "version": 1, "task": "classification", "prompt": "{premise}\n{hypothesis}\nAnswer:",
        "labels": ["entailment", "neutral", "contradiction"], "metrics": ["accuracy"],
        "fields": {"premise": "premise", "hypothesis": "hypothesis", "target": "label"},
        "splits": {name: f"{name}.jsonl" for name in splits}}))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_rows_sharing_a_premise_are_not_duplicates_and_a_duplicate_pair_still_is(tmp_path):
    """NLI gives every premise three hypotheses: the lint compares both fields, each on its own, so those rows are
    not duplicates (nor near ones: hypotheses one word apart), while a repeated pair is, in train and across
    splits."""
    train = [(PREMISE, "a man is reading", "entailment"),  # 1
             (PREMISE, "a man is sleeping", "contradiction"),  # 2: the same premise, one word apart
             (PREMISE, "the man is reading about the election", "neutral"),  # 3
             ("two dogs run across a snowy field", "animals are outside", "entailment"),  # 4
             (PREMISE, "a man is reading", "entailment"),  # 5: an exact duplicate of 1
             ("two dogs run across a snowy field", "Animals are outside!", "neutral")]  # 6: 4 after normalisation
    test = [(PREMISE, "a woman is reading", "contradiction"),  # 1: the train premise, another hypothesis
            ("two dogs run across a snowy field", "the animals are inside", "contradiction"),  # 2
            (PREMISE, "a man is sleeping", "contradiction"),  # 3: leaks train line 2
            (PREMISE + " today", "a man is reading", "entailment")]  # 4: near train line 1 in both fields
    spec, splits = write_pairs(tmp_path, {"train": train, "test": test})
    found = [(Path(f.path).name, f.line, f.message) for f in lint_benchmark(spec, splits, max_length=256)]
    assert found == [
        ("train.jsonl", 5, "exact duplicate of line 1 in train"),
        ("train.jsonl", 6, "duplicate after normalisation of line 4 in train, with a different label ('neutral' "
                           "here, 'entailment' there)"),
        ("test.jsonl", 3, "leakage: exact duplicate of train line 2 (train.jsonl)"),
        ("test.jsonl", 4, "leakage: near-duplicate (Jaccard 0.93) of train line 1 (train.jsonl)")]


def test_chat_rows_are_compared_whole(tmp_path):
    """A chat row's messages are one text: the same question with another answer is another row; the same
    conversation is a duplicate, and a leak when it is in test too."""
    def chat(question: str, answer: str) -> dict:
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}

    train = [chat("when does my parcel ship", "it ships on monday from the depot"),
             chat("when does my parcel ship", "we refund you within five working days"),
             chat("when does my parcel ship", "it ships on monday from the depot")]
    test = [chat("when does my parcel ship", "it ships on monday from the depot"), chat("hello", "hi there")]
    for name, rows in (("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "benchmark.yaml").write_text(json.dumps({
        "name": "c", "version": 1, "task": "generation", "fields": {"messages": "messages"}, "metrics": ["exact_match"],
        "splits": {"train": "train.jsonl", "test": "test.jsonl"}}))
    spec, splits = load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)
    found = [(Path(f.path).name, f.line, f.message) for f in lint_benchmark(spec, splits, max_length=256)]
    assert found == [("train.jsonl", 3, "exact duplicate of line 1 in train"),
                     ("test.jsonl", 1, "leakage: exact duplicate of train line 1 (train.jsonl)")]


def test_a_label_in_test_that_train_lacks_bears_on_the_scores(tmp_path):
    train = [("I want my money back", "refund"), ("Why was I charged twice?", "billing")]
    test = [("Where is my parcel", "shipping"), ("track my order", "shipping"), ("refund please", "refund")]
    spec, splits = write_splits(tmp_path, {"train": train, "test": test}, labels=("refund", "billing", "shipping",
                                                                                 "other"))
    labels = {f.message: f for f in lint_benchmark(spec, splits, max_length=256)
              if f.kind == "labels with no train rows"}
    shipping = labels["label 'shipping' has no train rows, but 2 test row(s): no tuned model can learn it, and its "
                      "test rows count against every candidate"]
    other = labels["label 'other' has no train rows: the model never sees it"]
    assert (shipping.scores, shipping.benchmark, other.scores) == (True, "b", False)
    assert shipping.to_dict()["scores"] is True and "scores" not in other.to_dict()
