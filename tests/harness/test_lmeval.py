"""lm-eval tasks as probes and benchmarks (harness/data/lmeval.py, harness/scoring/lmeval.py): the task read by
lm-eval's TaskManager, scored by sftbench, equal to lm-eval's own simple_evaluate item by item; a bake-off with one
as a probe reports paired forgetting on it, with one as a benchmark scores its untuned row as lm-eval does and tunes
the other; the output types it refuses and a hub dataset offline are one line, exit 2. Needs the `lmeval` extra (CI
installs it)."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from harness.config import SuiteRef
from harness.errors import ConfigError
from tests.harness.lmeval_task import lmeval_reference, needs, write_sums_task


@pytest.fixture(autouse=True)
def _lmeval_installed(monkeypatch):
    needs("lm_eval", "lmeval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    return write_sums_task(tmp_path_factory.mktemp("lmeval-task"))


@pytest.fixture(scope="module")
def llama(tiny_llama):
    from harness.models.loading import load_model, load_tokenizer, resolve

    handle = resolve(str(tiny_llama))
    return load_model(handle), load_tokenizer(handle)


@pytest.fixture(scope="module")
def reference(llama, task) -> dict:
    """lm-eval's simple_evaluate on the tiny model: all 300 documents, two shots each."""
    needs("lm_eval", "lmeval")
    return lmeval_reference(*llama, task)


def test_acc_acc_norm_and_every_verdict_equal_lm_evals_simple_evaluate(llama, task, reference):
    from harness.scoring.probes import load_probe, score_probe

    spec, items, _ = load_probe(SuiteRef(lm_eval="sums", include_path=str(task)), Path("."))
    assert (spec.kind, spec.version, len(items)) == ("lm_eval", "1.0", 300)
    assert items[0].prompt.count("Question:") == 3  # two few-shot examples before the document, as lm-eval builds
    got = score_probe(spec, items, *llama)
    assert got.correct == reference["per_item"]
    assert got.correct_norm == reference["per_item_norm"]
    assert got.correct != got.correct_norm  # the two decide differently here, so both are really compared
    assert sum(got.correct) / 300 == pytest.approx(reference["acc"], abs=0)
    assert sum(got.correct_norm) / 300 == pytest.approx(reference["acc_norm"], abs=0)


def test_bakeoff_with_an_lmeval_probe_reports_paired_forgetting_equal_to_lm_eval(tmp_path, tiny_llama, task,
                                                                                    reference):
    from harness.cli import main

    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f"""
name: lmeval-probe
candidates:
  - {{model: "{tiny_llama}", name: tiny-llama, learning_rate: 5e-2}}
recipe: {{epochs: 1, batch_size: 8, max_length: 96, bf16: "off"}}
benchmarks:
  - {{spec: support_intents, max_train: 16, max_validation: 8, max_test: 8}}
probes:
  - {{lm_eval: sums, include_path: "{task}", limit: 60}}
bootstrap_resamples: 100
""")
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(cfg), "--out", str(out)])
    assert code in (0, 1), stdout.getvalue()[-2000:]
    probe = json.loads((out / "results.json").read_text())["candidates"][0]["benchmarks"][0]["probes"][0]
    assert (probe["probe"], probe["kind"], probe["version"], probe["n"]) == ("sums", "lm_eval", "1.0", 60)
    assert probe["per_item"]["before"] == reference["per_item"][:60]  # the base model, to the item
    assert probe["before"]["value"] == pytest.approx(sum(reference["per_item"][:60]) / 60, abs=0)
    assert probe["before_norm"]["value"] == pytest.approx(sum(reference["per_item_norm"][:60]) / 60, abs=0)
    lost = sum(b and not a for b, a in zip(probe["per_item"]["before"], probe["per_item"]["after"]))
    assert probe["forgotten"] == lost and lost > 0  # 5e-2 on a tiny model moves its choices
    f = probe["forgetting"]
    assert f["ci_low"] <= f["value"] <= f["ci_high"] and f["ci_method"]
    assert len(probe["most_forgotten"]) == min(10, lost)
    assert probe["most_forgotten"][0]["prompt"].endswith("Answer:")
    assert "sums" in stdout.getvalue()


def test_the_data_hash_covers_the_documents_and_the_limit(tmp_path):
    from harness.scoring.probes import load_probe

    folder = write_sums_task(tmp_path / "t", n=12)
    ref = SuiteRef(lm_eval="sums", include_path=str(folder))
    _, _, digest = load_probe(ref, tmp_path)
    assert load_probe(ref, tmp_path)[2] == digest
    assert load_probe(SuiteRef(lm_eval="sums", include_path=str(folder), limit=5), tmp_path)[2] != digest
    capped = load_probe(SuiteRef(lm_eval="sums", include_path=str(folder), max_items=5), tmp_path)  # `--cap 5`
    assert len(capped[1]) == 5 and capped[2] != digest
    test = folder / "test.jsonl"
    test.write_text(test.read_text().replace("What is", "What's", 1))
    assert load_probe(ref, tmp_path)[2] != digest


@pytest.mark.parametrize("output_type", ["generate_until", "loglikelihood"])
def test_output_types_other_than_multiple_choice_are_refused_in_one_line(tmp_path, output_type):
    from harness.scoring.probes import load_probe

    folder = write_sums_task(tmp_path / "t", n=4, output_type=output_type)
    with pytest.raises(ConfigError, match=f"output_type {output_type}; sftbench scores output_type multiple_choice"):
        load_probe(SuiteRef(lm_eval="sums", include_path=str(folder)), tmp_path)


@pytest.mark.parametrize("where", ["probes", "benchmarks"])
def test_a_hub_dataset_offline_is_one_line_exit_2_before_any_model_loads(tmp_path, tiny_llama, monkeypatch, where):
    from harness.cli import main

    folder = write_sums_task(tmp_path / "t", n=4, dataset="no-such-org/no-such-dataset")
    cfg = tmp_path / "bakeoff.yaml"
    entry = f'{{lm_eval: sums, include_path: "{folder}"}}'
    cfg.write_text(f"""
name: offline
candidates: [{{model: "{tiny_llama}"}}]
benchmarks: [{entry if where == "benchmarks" else "support_intents"}]
{f"probes: [{entry}]" if where == "probes" else ""}
""")
    monkeypatch.setattr("harness.models.loading.load_model", lambda *a, **k: pytest.fail("a model loaded"))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["run", str(cfg), "--out", str(tmp_path / "out")])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, lines
    assert f"{where}: lm_eval task 'sums'" in lines[0]
    assert "'no-such-org/no-such-dataset' is on the Hugging Face hub" in lines[0]
    assert "offline" in lines[0]


def test_an_unknown_task_and_misplaced_keys_are_config_errors(tmp_path):
    from harness.scoring.probes import load_probe

    folder = write_sums_task(tmp_path / "t", n=4)
    with pytest.raises(ConfigError, match="no such task among the tasks in .*; did you mean 'sums'"):
        load_probe(SuiteRef(lm_eval="sumz", include_path=str(folder)), tmp_path)
    with pytest.raises(ConfigError, match="include_path and limit belong to lm_eval entries"):
        SuiteRef(spec="general_knowledge", limit=3)
    with pytest.raises(ConfigError, match="either spec"):
        SuiteRef(spec="general_knowledge", lm_eval="sums")


def test_an_lmeval_task_as_a_benchmark_equals_simple_evaluate_zero_shot_and_is_tuned(tmp_path, tiny_llama, task,
                                                                                     reference):
    """`benchmarks: [{lm_eval: ...}]`: the untuned row's acc, acc_norm and every verdict equal lm-eval's; the tuned
    row trains on the task's training split and is scored with intervals, its version and data hash the task's."""
    from harness.cli import main

    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f"""
name: lmeval-benchmark
zero_shot: true
candidates:
  - {{model: "{tiny_llama}", name: tiny-llama, learning_rate: 5e-2}}
recipe: {{epochs: 1, batch_size: 8, max_length: 96, bf16: "off"}}
benchmarks:
  - {{lm_eval: sums, include_path: "{task}", limit: 60}}
bootstrap_resamples: 100
""")
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(cfg), "--out", str(out)])
    assert code in (0, 1), stdout.getvalue()[-2000:]
    results = json.loads((out / "results.json").read_text())
    rows = {c["name"]: c["benchmarks"][0] for c in results["candidates"]}
    base, tuned = rows["tiny-llama-zero-shot"], rows["tiny-llama"]
    for row in (base, tuned):
        assert (row["benchmark"], row["task"], row["version"], row["status"]) == ("sums", "lm_eval", "1.0", "ok")
        assert set(row["data_sha256"]) == {"train", "test"}
        for metric in ("acc", "acc_norm"):
            s = row["scores"]["test"][metric]
            assert s["n"] == 60 and s["ci_method"] == "wilson" and s["ci_low"] <= s["value"] <= s["ci_high"]
    assert base["scores"]["test"]["acc"]["per_item"] == reference["per_item"][:60]  # lm-eval's, to the item
    assert base["scores"]["test"]["acc_norm"]["per_item"] == reference["per_item_norm"][:60]
    assert base["scores"]["test"]["acc"]["value"] == pytest.approx(sum(reference["per_item"][:60]) / 60, abs=0)
    assert tuned["train"]["tokens"] > 0 and tuned["trainable_params"] > 0  # tuned on the 20 training documents
    assert tuned["predictions"]["test"] != base["predictions"]["test"]  # 5e-2 on a tiny model moves its choices
    assert tuned["chance"]["test"]["how"] == "a uniform guess among each document's choices"
    assert "sums" in stdout.getvalue() and "acc_norm" in stdout.getvalue()


def test_validate_examples_shows_an_lmeval_benchmarks_own_requests(tmp_path, tiny_llama, tiny_bert, capsys):
    """`sftbench validate --examples`: lm-eval's context as it is (no chat template) and the gold continuation; an
    encoder has no rows (it cannot rank choices by log-likelihood)."""
    from harness.cli import main

    folder = write_sums_task(tmp_path / "t", n=4)
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f'name: x\ncandidates: [{{model: "{tiny_llama}", name: l}}, {{model: "{tiny_bert}", name: b}}]\n'
                   f'benchmarks: [{{lm_eval: sums, include_path: "{folder}"}}]\n')
    assert main(["validate", str(cfg), "--examples", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    test = next(r for r in rows if r["split"] == "test")
    doc = json.loads((folder / "test.jsonl").read_text().splitlines()[0])
    assert test["input"].endswith(f"Question: {doc['question']}\nAnswer:") and test["input"].count("Question:") == 3
    assert test["target"] == " " + doc["choices"][doc["label"]]
    assert {r["candidate"] for r in rows} == {"l"} and {r["split"] for r in rows} == {"train", "test"}


def test_an_lmeval_benchmark_hashes_its_documents_and_refuses_a_task_without_a_training_split(tmp_path):
    from harness.data.specs import load_benchmark

    folder = write_sums_task(tmp_path / "t", n=12)
    ref = SuiteRef(lm_eval="sums", include_path=str(folder))
    spec, splits = load_benchmark(ref, tmp_path)
    assert (spec.version, spec.metrics, [len(splits[s].examples) for s in splits]) == ("1.0", ("acc", "acc_norm"),
                                                                                       [20, 12])
    assert splits["train"].examples[0].prompt.count("Question:") == 1  # tuned on zero-shot contexts
    test = folder / "test.jsonl"
    test.write_text(test.read_text().replace("What is", "What's", 1))
    changed = load_benchmark(ref, tmp_path)[1]
    assert changed["test"].sha256 != splits["test"].sha256 and changed["train"].sha256 == splits["train"].sha256
    yaml = folder / "sums.yaml"
    yaml.write_text(yaml.read_text().replace("training_split: train\n", "").replace("fewshot_split: train\n", "")
                    .replace("num_fewshot: 2", "num_fewshot: 0"))
    with pytest.raises(ConfigError, match="benchmarks: lm_eval task 'sums': 'sums' has no training split.*as a probe"):
        load_benchmark(ref, tmp_path)
