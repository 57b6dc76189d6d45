"""evaluate modules as metrics (harness/scoring/hf_evaluate.py), offline, with the local modules in tests/fixtures:
values equal to the module's own output, declared direction, intervals per item, by bootstrap or none (and the
reports say "point only"), and a bake-off whose benchmark carries one. Needs the `evaluate` extra (CI installs it)."""
from __future__ import annotations

import contextlib
import io
import json
import math
import pickle

import pytest

from harness.errors import ConfigError, RunFailure
from tests.conftest import INTENTS, ROOT
from tests.harness.lmeval_task import needs

FIXTURES = ROOT / "tests" / "fixtures" / "evaluate"
PREDS = ["billing", "refund", "shipping", "refund", "billing", "bug_report"]
REFS = [["billing"], ["refund"], ["refund"], ["refund"], ["shipping"], ["bug_report"]]


@pytest.fixture(autouse=True)
def _evaluate_installed(monkeypatch):
    """Offline, and each test leaves the metric registry as it found it: a module a test declares is registered
    process-wide, and another test file in the same worker (test_score's registry check) must not see it."""
    needs("evaluate", "evaluate")
    from harness.scoring import hf_evaluate
    from harness.scoring.metrics import METRICS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    monkeypatch.setattr(METRICS, "_lazy", dict(METRICS._lazy))
    monkeypatch.setattr(hf_evaluate, "_DECLARED", dict(hf_evaluate._DECLARED))


def declare(**entry):
    from harness.scoring.hf_evaluate import parse_entry

    return parse_entry({"higher_is_better": True, **entry}, FIXTURES)


def own_output(module: str, preds, refs) -> dict:
    import evaluate

    return evaluate.load(str(FIXTURES / module)).compute(predictions=preds, references=[r[0] for r in refs])


def test_a_local_module_scores_as_its_own_output_with_a_per_item_interval():
    from harness.scoring.metrics import METRICS, score

    m = declare(evaluate="label_match", interval="per_item")
    assert (m.name, METRICS.get("label_match").higher_is_better) == ("label_match", True)
    got = score("label_match", PREDS, REFS, resamples=200, seed=0)
    assert got.value == own_output("label_match", PREDS, REFS)["label_match"] == 4 / 6
    assert got.per_item == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert got.ci_method == "wilson" and got.ci_low < got.value < got.ci_high
    assert got.value == score("accuracy", PREDS, REFS).value  # the same thing as the built-in, here


def test_a_corpus_module_is_bootstrapped_and_refuses_a_per_item_interval():
    from harness.scoring.metrics import METRICS, score

    declare(evaluate="length_ratio.py", key="ratio", higher_is_better=False)
    got = score("length_ratio", PREDS, REFS, resamples=200, seed=0)
    assert got.value == own_output("length_ratio.py", PREDS, REFS)["ratio"]
    assert got.ci_method.startswith("bootstrap(resamples=200,seed=0)") and got.ci_low <= got.value <= got.ci_high
    assert len(got.per_item) == 6 and not METRICS.get("length_ratio").higher_is_better
    declare(evaluate="length_ratio.py", key="ratio", name="ratio_per_item", interval="per_item")
    with pytest.raises(RunFailure, match="not a mean of per-item scores"):
        score("ratio_per_item", PREDS, REFS)


def test_point_only_has_no_interval_and_the_reports_say_so():
    from harness.scoring.metrics import score
    from reports.format import metric_text

    declare(evaluate="label_match", name="label_match_point", interval="none")
    got = score("label_match_point", PREDS, REFS)
    assert got.value == 4 / 6 and math.isnan(got.ci_low) and "point only" in got.ci_method
    assert metric_text(got) == "66.7 (point only)"


def test_a_declaration_registers_itself_where_it_is_unpickled():
    from harness.scoring import hf_evaluate
    from harness.scoring.metrics import METRICS

    m = declare(evaluate="label_match", name="label_match_pickled", interval="per_item")
    METRICS._items.pop("label_match_pickled")  # as in a fresh process (a Ray worker) that never parsed the spec
    hf_evaluate._DECLARED.pop("label_match_pickled")
    assert pickle.loads(pickle.dumps(m)) == m and "label_match_pickled" in METRICS


@pytest.mark.parametrize("entry, message", [
    ({"evaluate": "label_match"}, "needs higher_is_better"),
    ({"evaluate": "label_match", "higher_is_better": True, "interval": "jackknife"}, "interval must be one of"),
    ({"evaluate": "label_match", "higher_is_better": True, "scale": 0}, "scale must be a positive number"),
    ({"evaluate": "label_match", "higher_is_better": True, "scale": "percent"}, "scale must be a positive number"),
    ({"evaluate": "label_match", "higher_is_better": True, "name": "accuracy"}, "already a metric"),
    ({"evaluate": "missing/module.py", "higher_is_better": True}, "not found"),
    ({"evaluate": "label_match", "higher_is_better": True, "direction": "up"}, "unknown key 'direction'"),
])
def test_bad_entries_are_config_errors(entry, message):
    from harness.scoring.hf_evaluate import parse_entry

    with pytest.raises(ConfigError, match=message):
        parse_entry(entry, FIXTURES)


def test_a_benchmark_with_an_evaluate_metric_runs_offline_and_equals_the_modules_output(tmp_path, tiny_llama):
    """Its main metric is a module on a 0-100 scale (`scale: 100`): every report shows it as it is, not in percent."""
    from harness.cli import main

    spec = (INTENTS / "benchmark.yaml").read_text().replace(
        "metrics: [accuracy, macro_f1]",
        f'metrics: [{{evaluate: "{FIXTURES / "label_match_percent.py"}", higher_is_better: true, scale: 100, '
        f'interval: per_item}}, accuracy, '
        f'{{evaluate: "{FIXTURES / "label_match"}", higher_is_better: true, interval: per_item}}]')
    spec = spec.replace(": train.jsonl", f": {INTENTS / 'train.jsonl'}").replace(
        ": validation.jsonl", f": {INTENTS / 'validation.jsonl'}").replace(
        ": test.jsonl", f": {INTENTS / 'test.jsonl'}").replace(": shifted.jsonl", f": {INTENTS / 'shifted.jsonl'}")
    (tmp_path / "intents").mkdir()
    (tmp_path / "intents" / "benchmark.yaml").write_text(spec)
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f"""
name: evaluate-metric
candidates: [{{model: "{tiny_llama}", name: tiny-llama}}]
recipe: {{epochs: 1, batch_size: 8, max_length: 96, bf16: "off"}}
benchmarks: [{{spec: intents, max_train: 16, max_validation: 8, max_test: 24}}]
bootstrap_resamples: 100
gates: [{{metric: support_intents.label_match, op: ">=", value: 0.0}}]
""")
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(cfg), "--out", str(out)])
    assert code in (0, 1), stdout.getvalue()[-2000:]
    results = json.loads((out / "results.json").read_text())
    bench = results["candidates"][0]["benchmarks"][0]
    test = bench["scores"]["test"]
    refs = [[json.loads(line)["label"].replace(" ", "_")] for line in
            (INTENTS / "test.jsonl").read_text().splitlines()[:24]]
    assert test["label_match"]["value"] == own_output("label_match", bench["predictions"]["test"], refs)["label_match"]
    assert test["label_match"]["value"] == test["accuracy"]["value"]
    percent = test["label_match_percent"]
    assert percent["value"] == own_output("label_match_percent.py", bench["predictions"]["test"], refs)[
        "label_match_percent"] == pytest.approx(100 * test["accuracy"]["value"])
    assert results["metric_scales"] == {"label_match": 100.0, "label_match_percent": 1.0}
    terminal = stdout.getvalue()  # shown as it is: no "%", no factor of 100
    assert f"{percent['value']:.3f} [{percent['ci_low']:.3f}, {percent['ci_high']:.3f}]" in terminal
    assert "label_match_percent" in terminal and "label_match_percent %" not in terminal
    markdown, html = (out / "summary.md").read_text(), (out / "report.html").read_text()
    assert f"{percent['value']:.2f} [{percent['ci_low']:.2f}, {percent['ci_high']:.2f}]" in markdown
    assert "label\\_match\\_percent [95% CI]" in markdown and "label\\_match\\_percent %" not in markdown
    assert f'<td class="num">{percent["value"]:.1f} ' in html and "label_match_percent [95% CI]" in html
    assert f"[{percent['ci_low']:.1f}, {percent['ci_high']:.1f}]" in html
    assert f"label_match {100 * test['label_match']['value']:.1f}" in html  # the 0-1 module: in percent


def test_the_reports_and_compare_read_a_declared_metrics_display_scale():
    from rich.console import Console

    from harness.results.model import Results
    from reports.compare import comparison_table
    from reports.format import metric_scale

    results = Results.from_json(Results(metric_scales={"score100": 1.0, "share": 100.0}).to_json())
    assert [metric_scale(m, results) for m in ("score100", "share", "accuracy", "bleu")] == [1.0, 100.0, 100.0, 1.0]
    assert [metric_scale(m) for m in ("score100", "bleu")] == [100.0, 1.0]  # a run written before: by name only
    row = {"candidate": "c", "benchmark": "b", "split": "test", "metric": "score100", "a": 62.5, "b": 50.0,
           "diff": 12.5, "ci_low": 2.5, "ci_high": 22.5, "p_value": 0.01, "significant": True,
           "higher_is_better": True}
    console = Console(width=200, record=True)
    for scale, shown in ((1.0, "62.50"), (None, "6250.0")):
        console.print(comparison_table({"a": {"run_id": "x"}, "b": {"run_id": "y"},
                                        "rows": [row | ({"scale": scale} if scale else {})]}))
        text = console.export_text()
        assert shown in text and ("score100 %" in text) == (scale is None)


BUILT_INS = {"accuracy": "accuracy", "macro_f1": "f1", "bleu": "sacrebleu", "rouge1": "rouge"}


@pytest.mark.parametrize("ours, theirs", sorted(BUILT_INS.items()))
def test_built_ins_equal_evaluates_modules_of_the_same_name_where_available_locally(ours, theirs):
    import evaluate

    try:
        module = evaluate.load(theirs)
    except Exception as err:  # evaluate ships no metric scripts: each one is fetched from the hub on first use
        pytest.skip(f"evaluate's '{theirs}' module is not available offline (evaluate 0.4.6 ships no metric scripts, "
                    "nor does any package on PyPI (README, 'Metrics, lm-eval tasks and evaluate modules'); load "
                    f"fetches them from the Hugging Face hub, and it is not cached here): {type(err).__name__}")
    from harness.scoring.metrics import score

    if ours in ("accuracy", "macro_f1"):
        labels = sorted({r[0] for r in REFS} | set(PREDS))
        p, r = [labels.index(x) for x in PREDS], [labels.index(x[0]) for x in REFS]
        out = module.compute(predictions=p, references=r, **({"average": "macro"} if ours == "macro_f1" else {}))
        assert score(ours, PREDS, REFS).value == pytest.approx(out[theirs], abs=1e-12)
    else:
        texts, refs = ["the cat sat on the mat", "a dog"], [["the cat sat on a mat"], ["the dog"]]
        out = module.compute(predictions=texts, references=refs)
        key = "score" if ours == "bleu" else "rouge1"
        assert score(ours, texts, refs).value == pytest.approx(out[key], abs=1e-9)
