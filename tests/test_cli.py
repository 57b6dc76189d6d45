"""End to end through `main(argv)` on tiny local models: files written, schema, exit codes."""
from __future__ import annotations

import json

import pytest

from harness.cli import main
from tests.conftest import TINY_EXIT


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tiny_bakeoff_end_to_end(tiny_run):
    out_dir, code, stdout, stderr = tiny_run.out, tiny_run.code, tiny_run.stdout, tiny_run.stderr
    assert code == TINY_EXIT, stderr
    results = json.loads((out_dir / "results.json").read_text())
    assert results["schema_version"] == 2 and results["passed"] is False
    assert "tiny-llama" in (out_dir / "report.html").read_text()
    report_md = (out_dir / "report.md").read_text()
    assert "## Forgetting" in report_md and "| tiny-llama | support\\_intents | general\\_knowledge |" in report_md
    assert len(results["config_hash"]) == 16 and results["packages"]["torch"].startswith("2.")
    by_name = {c["name"]: c for c in results["candidates"]}
    llama, bert = by_name["tiny-llama"], by_name["tiny-bert"]
    assert llama["kind"] == "causal" and bert["kind"] == "encoder"
    assert 0 < llama["trainable_params"] < llama["params"]
    bench = llama["benchmarks"][0]
    assert bench["status"] == "ok" and bench["learning_rate"] == 1e-3
    acc = bench["scores"]["test"]["accuracy"]
    assert acc["n"] == 24 and acc["ci_low"] <= acc["value"] <= acc["ci_high"] and len(acc["per_item"]) == 24
    assert set(bench["scores"]) == {"test", "shifted"} and "gap" in bench["generalisation"]
    assert set(bench["per_class_f1"]["test"]) <= {"billing", "refund", "account_access", "bug_report", "shipping", "cancellation", "feature_request"}
    assert len(bench["predictions"]["test"]) == 24
    assert len(bench["train"]["val_loss"]) == 2 and set(bench["data_sha256"]) == {"train", "validation", "test", "shifted"}
    # probes go to the kind they test: knowledge for the causal LM, paraphrase ranking for the encoder
    assert [p["probe"] for p in bench["probes"]] == ["general_knowledge"]
    assert [p["probe"] for p in bert["benchmarks"][0]["probes"]] == ["paraphrase_probe"]
    # the bias probe runs through the tuned task on causal candidates (an encoder head is untrained before)
    assert [b["probe"] for b in bench["bias"]] == ["intent_bias"] and bert["benchmarks"][0]["bias"] == []
    probe = bench["probes"][0]
    assert probe["n"] == 12 and len(probe["per_item"]["before"]) == 12
    assert probe["forgetting"]["value"] == pytest.approx(probe["before"]["value"] - probe["after"]["value"])
    # neither tiny model learned: each is called out with chance and what to try, and neither is recommended
    assert "tiny-llama" in stdout and "Recommendation [FAIL]" in stdout and stdout.count("DID NOT LEARN") == 2
    for c in (llama, bert):
        b = c["benchmarks"][0]
        assert c["did_not_learn"] == ["support_intents"] and b["learned"] is False
        assert set(b["chance"]) == {"validation", "test", "shifted"} and "majority class" in b["chance"]["test"]["how"]
        assert "does not beat chance" in b["learned_reason"] and "sweep.learning_rate" in b["learned_reason"]
        assert f"{c['name']}: did not learn support_intents" in results["recommendation_reason"]
    assert results["recommendation"] is None


def test_failing_gate_exits_1(tiny_run, tmp_path, capsys):
    # the session's tiny bake-off under another gate: its units are reused, only the verdict is new
    code, results = tiny_run.again("gates=[{metric: support_intents.accuracy, value: 1.01}]", out=tmp_path / "o")
    stdout = capsys.readouterr().out
    assert code == 1 and results["units"]["computed"] == 0
    assert results["passed"] is False and results["recommendation"] is None
    assert "Recommendation [FAIL]" in stdout and "no candidate passes" in stdout


def test_a_gate_on_a_metric_no_benchmark_produces_is_exit_2_before_training(tiny_run, tmp_path, capsys):
    code = main(["run", str(tiny_run.config), "gates=[{metric: support_intents.bleu, value: 0}]",
                 "--out", str(tmp_path / "o"), "--store", str(tiny_run.store)])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "o").exists()
    assert ("gate 'support_intents.bleu >= 0': benchmark 'support_intents' does not compute 'bleu' "
            "(accuracy, macro_f1)") in err


def test_a_gate_file_on_a_missing_metric_fails_closed(tiny_run, tmp_path, capsys):
    """`sftbench gate RUN --gates FILE` is not checked against a config: a metric the stored run lacks fails closed."""
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - {metric: support_intents.bleu, value: 0}\n")
    capsys.readouterr()
    code = main(["gate", tiny_run.results["run_id"], "--gates", str(gates), "--store", str(tiny_run.store)])
    out = capsys.readouterr().out
    assert code == 1 and "fails closed: no metric 'bleu'" in out, out


@pytest.mark.parametrize("argv, fragment", [
    (["run", "/nonexistent/bakeoff.yaml"], "bakeoff.yaml: file not found"),
    (["run", "recipe.epoch=1"], "unknown key 'epoch' in recipe"),
    (["run", "candidates=[not-a-model]"], "unknown model 'not-a-model'"),
    (["run", "benchmarks=[nosuchbench]"], "no benchmark.yaml found for 'nosuchbench'"),
    (["run", "recipe.tuner=magic"], "unknown tuner 'magic'; known: freeze, full, ia3, lora"),
    (["run", "executor.kind=slurm"], "demo.yaml: executor.kind must be one of local, ray (got 'slurm')"),
    (["validate", "executor.kind=slurm"], "demo.yaml: error: executor.kind must be one of local, ray (got 'slurm')"),
    (["frobnicate"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(argv, fragment, capsys):
    code, _, stderr = run(argv, capsys)
    assert code == 2
    assert fragment in stderr
    assert "Traceback" not in stderr


def test_ls_lists_everything(capsys):
    code, stdout, _ = run(["ls"], capsys)
    assert code == 0
    for word in ("support_intents", "general_knowledge", "accuracy (higher is better)", "lora", "smollm2-135m", "minilm-l6"):
        assert word in stdout
    # each tuner with its own options (tuners/<name>/config.py)
    assert "full (no options), ia3 (target_modules), lora (r, alpha, dropout, target_modules)" in stdout


def test_score_command_matches_sacrebleu(tmp_path, capsys):
    import sacrebleu

    hyps = ["the cat sat on the mat", "a dog barked loudly", "Grüße aus München"]
    refs = ["the cat is on the mat", "the dog barked loudly", "Grüße aus Berlin"]
    (tmp_path / "p.txt").write_text("\n".join(hyps) + "\n")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n")
    code, stdout, _ = run(["score", "--metric", "bleu", "--predictions", str(tmp_path / "p.txt"),
                           "--references", str(tmp_path / "r.txt")], capsys)
    out = json.loads(stdout)
    assert code == 0 and out["n"] == 3
    assert out["value"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert out["ci_low"] <= out["value"] <= out["ci_high"] and "tok:13a" in out["signature"]


def test_score_command_mismatch_is_a_data_error(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("a\nb\n")
    (tmp_path / "r.txt").write_text("a\n")
    code, _, stderr = run(["score", "--metric", "rougeL", "--predictions", str(tmp_path / "p.txt"),
                           "--references", str(tmp_path / "r.txt")], capsys)
    assert code == 2 and "r.txt" in stderr and "Traceback" not in stderr


def test_sweep_picks_each_candidates_setting_on_validation(tiny_config, tmp_path, capsys):
    code, stdout, stderr = run(["run", str(tiny_config), "--out", str(tmp_path / "o"),
                                "sweep={learning_rate: [0.0, 5e-3]}", "probes=[]"], capsys)
    assert code == TINY_EXIT, stderr
    # the reports say which setting won for whom
    assert "sweep tiny-llama / support_intents (validation accuracy): lr 0, 1 ep -> " in stdout
    for text in (stdout, (tmp_path / "o" / "summary.md").read_text(), (tmp_path / "o" / "report.html").read_text()):
        assert "sweep tiny-bert" in text and "lr 0.005, 1 ep" in text and text.count("(chosen)") + text.count("settings tied on validation") == 2
    for cand in json.loads((tmp_path / "o" / "results.json").read_text())["candidates"]:
        bench = cand["benchmarks"][0]
        assert [t["learning_rate"] for t in bench["sweep"]] == [0.0, 5e-3]
        chosen = [t for t in bench["sweep"] if t["chosen"]]
        assert len(chosen) == 1 and bench["learning_rate"] == chosen[0]["learning_rate"]
        assert chosen[0]["validation"] == max(t["validation"] for t in bench["sweep"])
    # the validation score of each setting is the metric fit() measured at the kept weights (eval_metric auto);
    # scoring validation again after training, as eval_metric off does, gives the same numbers
    code, _, stderr = run(["run", str(tiny_config), "--out", str(tmp_path / "off"), "sweep={learning_rate: [0.0, 5e-3]}",
                           "probes=[]", "bias=[]", "recipe.eval_metric=off"], capsys)
    assert code == TINY_EXIT, stderr
    tried = [[t["validation"] for t in c["benchmarks"][0]["sweep"]]
             for name in ("o", "off") for c in json.loads((tmp_path / name / "results.json").read_text())["candidates"]]
    assert tried[:2] == tried[2:]


def test_validation_metric_while_training(tiny_config, tmp_path, capsys):
    """recipe.eval_metric auto evaluates the main metric at every evaluation on both kinds of classifier (the tiny
    intents validation split has 16 items) without changing any training number or score; monitor: metric keeps
    the evaluation with the best metric."""
    def bakeoff(name, *overrides):
        code, _, err = run(["run", str(tiny_config), "--out", str(tmp_path / name), "probes=[]", "bias=[]",
                            "recipe.eval_every=2", *overrides], capsys)
        assert code == TINY_EXIT, err
        results = json.loads((tmp_path / name / "results.json").read_text())
        return results, {c["name"]: c["benchmarks"][0] for c in results["candidates"]}

    auto, on = bakeoff("auto")
    off_results, off = bakeoff("off", "recipe.eval_metric=off")
    assert off_results["units"]["reused"] == 0  # eval_metric is in the tune key: nothing kept by "auto" is reused
    for name in ("tiny-llama", "tiny-bert"):
        curve = on[name]["train"]["curve"]
        assert [c["step"] for c in curve] == [0, 2, 4]
        assert all(0.0 <= c["val_metric"] <= 1.0 and c["val_metric"] * 16 == round(c["val_metric"] * 16) for c in curve)
        assert [c["val_metric"] for c in off[name]["train"]["curve"]] == [None] * 3
        without = lambda curve: [{k: v for k, v in c.items() if k not in ("val_metric", "val_loss")}  # noqa: E731
                                 for c in curve]
        assert without(curve) == without(off[name]["train"]["curve"])  # same training
        # the same validation loss: the causal LM's comes from the metric's scoring pass (the gold label's text + EOS
        # is a validation row's learned tokens), batched differently, so equal within float noise; the encoder's
        # head computes it as before
        loss_on, loss_off = ([c["val_loss"] for c in cv] for cv in (curve, off[name]["train"]["curve"]))
        assert loss_on == (pytest.approx(loss_off, rel=1e-5) if name == "tiny-llama" else loss_off)
        assert on[name]["scores"] == off[name]["scores"] and on[name]["predictions"] == off[name]["predictions"]
    assert "Main metric on validation during training</figcaption><svg" in (tmp_path / "auto" / "report.html").read_text()
    assert "Main metric on validation during training: no data to plot." in (tmp_path / "off" / "report.html").read_text()
    _, monitored = bakeoff("metric", "recipe.monitor=metric", "candidates=[{model: %s, name: tiny-bert, "
                           "learning_rate: 5e-3}]" % auto["candidates"][1]["path"])
    curve = monitored["tiny-bert"]["train"]["curve"]
    best = max(curve[1:], key=lambda c: c["val_metric"])  # the first of equals
    assert monitored["tiny-bert"]["train"]["best_step"] == best["step"]


def test_validate_reads_the_config_once(tiny_config, monkeypatch, capsys):
    """`sftbench validate --examples` lints, estimates power and prints examples from one loaded config (it loaded
    it three times: harness/commands/validate.py)."""
    import harness.commands.validate
    import harness.config

    loads = []
    real = harness.config.load_config

    def counted(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    for module in (harness.config, harness.commands.validate):
        monkeypatch.setattr(module, "load_config", counted)
    code, out, err = run(["validate", str(tiny_config), "--examples", "1"], capsys)
    assert code == 0 and "bakeoff.yaml: 0 errors" in err and out.count("\n") >= 2
    assert len(loads) == 1


def test_every_command_is_one_module_of_harness_commands():
    from harness.cli import _parser
    from harness.commands import COMMANDS

    commands = set(_parser()._subparsers._group_actions[0].choices) - {"simulate"}  # type: ignore[union-attr]
    assert commands == set(COMMANDS)
