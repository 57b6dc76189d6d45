"""MLflow tracking against a real MLflow store: a sqlite database and a local artifact folder in a temporary folder,
read back with MlflowClient (never a mock). One tiny bake-off (two seeds, one probe, one bias suite) is run once with
`--mlflow` and every test reads it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from tests.conftest import ROOT, TINY_EXIT, skip_unless_ci

SEEDS = (0, 1)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        skip_unless_ci("mlflow is not installed (pip install '.[mlflow]'; make install does)")
    return mlflow


def _config(folder: Path, llama: Path, bert: Path) -> Path:
    cfg = folder / "bakeoff.yaml"
    cfg.write_text(f"""
name: tiny-tracked
candidates:
  - {{model: "{llama}", name: tiny-llama}}
  - {{model: "{bert}", name: tiny-bert, learning_rate: 5e-3}}
recipe: {{epochs: 1, batch_size: 8, max_length: 64, learning_rate: 1e-3, bf16: "off", eval_every: 1,
          seeds: {list(SEEDS)}}}
benchmarks:
  - {{spec: support_intents, max_train: 16, max_validation: 8, max_test: 16}}
probes:
  - {{spec: general_knowledge, max_items: 6}}
bias:
  - {{spec: intent_bias, max_items: 6}}
bootstrap_resamples: 100
gates:
  - {{metric: support_intents.accuracy, op: ">=", value: 0.0}}
""")
    return cfg


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_llama, tiny_bert) -> dict[str, Any]:
    """The tiny bake-off, run once with --mlflow into a sqlite store; its artifacts under the folder's mlruns/."""
    _mlflow()
    folder = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("DO_NOT_TRACK", "true")
        mp.chdir(folder)  # a sqlite store keeps artifacts in ./mlruns
        store = folder / "runs.sqlite"
        code = main(["run", str(_config(folder, tiny_llama, tiny_bert)), "--out", str(folder / "out"), "--quiet",
                     "--store", str(store), "--mlflow", uri])
    return {"folder": folder, "uri": uri, "store": store, "code": code,
            "results": json.loads((folder / "out" / "results.json").read_text())}


@pytest.fixture()
def client(tracked, monkeypatch) -> Any:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    return _mlflow().MlflowClient(tracking_uri=tracked["uri"], registry_uri=tracked["uri"])


def _runs(client: Any, results: dict[str, Any]) -> list[Any]:
    experiment = client.get_experiment_by_name(results["name"])
    return client.search_runs([experiment.experiment_id], f"tags.`sftbench.run_id` = '{results['run_id']}'")


def test_parent_run_tags_params_and_artifacts(tracked, client):
    assert tracked["code"] == TINY_EXIT
    results = tracked["results"]
    parents = [r for r in _runs(client, results) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    tags, params = parent.data.tags, parent.data.params
    assert tags["sftbench.exit_code"] == str(TINY_EXIT) and tags["sftbench.passed"] == "False"
    assert tags["sftbench.recommendation"] == "none" and tags["sftbench.recommendation_reason"]
    assert tags["sftbench.config_hash"] == results["config_hash"]
    assert tags["sftbench.gates"] == f"{sum(g['passed'] for g in results['gates'])}/{len(results['gates'])} passed"
    assert params["recipe.learning_rate"] == "0.001" and params["recipe.seeds"] == str(list(SEEDS))
    assert params["recipe.r"] == "8" and "recipe.options" not in params  # the tuner's options, flat beside the rest
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny-tracked"
    files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"results.json", "report.html", "summary.md"} <= files
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "results.json",
                                                       str(tracked["folder"] / "dl"))).read_text())
    assert logged == results


def test_candidate_runs_params_metrics_and_gate_tags(tracked, client):
    results = tracked["results"]
    runs = _runs(client, results)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags).info.run_id
    by_name = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent}
    assert set(by_name) == {"tiny-llama", "tiny-bert"}
    for cand in results["candidates"]:
        run = by_name[cand["name"]]
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        bench = cand["benchmarks"][0]
        assert params["model"] == cand["model"] and params["weights_sha"] == cand["weights_sha"]
        assert params["source"] == cand["source"] and params.get("revision") == cand["revision"]
        assert float(params["support_intents.learning_rate"]) == bench["learning_rate"]
        assert params["support_intents.epochs"] == "1" and params["recipe.tuner"] == "lora"
        acc = bench["scores"]["test"]["accuracy"]
        assert metrics["support_intents/test/accuracy"] == pytest.approx(acc["value"])
        assert metrics["support_intents/test/accuracy_ci_low"] == pytest.approx(acc["ci_low"])
        assert metrics["support_intents/test/accuracy_ci_high"] == pytest.approx(acc["ci_high"])
        assert "support_intents/shifted/accuracy" in metrics
        for key, value in cand["cost"].items():
            if isinstance(value, dict):  # the conditions a cost was measured under: params beside its metric
                assert value and all(params[f"cost.{key}.{part}"] == str(v) for part, v in value.items()
                                     if v is not None)
            elif value is not None:
                assert metrics[f"cost/{key}"] == pytest.approx(value)
        assert "cost.latency_conditions.threads" in params
        assert {"cost/train_tokens_computed", "cost/scoring_tokens_in_data"} <= set(metrics)  # issue 29's counts
        for probe in bench["probes"]:
            forgetting = probe["forgetting"]["value"]
            assert metrics[f"support_intents/forgetting/{probe['probe']}"] == pytest.approx(forgetting)
            assert f"support_intents/forgetting/{probe['probe']}_ci_high" in metrics
        for suite in bench["bias"]:
            assert metrics[f"support_intents/bias/{suite['probe']}/change"] == pytest.approx(suite["change"]["value"])
        verdicts = [g for g in results["gates"] if g["candidate"] == cand["name"]]
        assert verdicts and all(tags["gate/" + re.sub(r"[^\w\-./ ]", "_", g["gate"])].startswith(
            "passed" if g["passed"] else "failed") for g in verdicts)
        assert tags["sftbench.recommended"] == "False"
    assert any(c["benchmarks"][0]["probes"] for c in results["candidates"])  # the causal one ran the probe
    assert any(c["benchmarks"][0]["bias"] for c in results["candidates"])


def test_curves_are_logged_at_their_steps(tracked, client):
    results = tracked["results"]
    runs = {r.info.run_name: r for r in _runs(client, results)}
    for cand in results["candidates"]:
        curve = cand["benchmarks"][0]["train"]["curve"]
        assert len(curve) >= 2  # eval_every: 1
        run = runs[cand["name"]].info.run_id
        for key in ("train_loss", "val_loss"):
            history = client.get_metric_history(run, f"support_intents/{key}")
            want = [(p["step"], p[key]) for p in curve if p[key] is not None]
            got = sorted((m.step, m.value) for m in history)
            assert [s for s, _ in got] == [s for s, _ in sorted(want)]
            assert [v for _, v in got] == pytest.approx([v for _, v in sorted(want)])
        steps = cand["benchmarks"][0]["train"]["step_loss"]
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run, "support_intents/step_loss"))
        assert steps and [s for s, _ in logged] == [s for s, _ in steps]
        assert [v for _, v in logged] == pytest.approx([v for _, v in steps])


def test_seed_runs_and_adapters(tracked, client):
    results = tracked["results"]
    runs = _runs(client, results)
    for cand in results["candidates"]:
        run = next(r for r in runs if r.info.run_name == cand["name"])
        bench = cand["benchmarks"][0]
        assert bench["seeds"] == list(SEEDS)
        adapter = {f.path for f in client.list_artifacts(run.info.run_id, "adapter/support_intents")}
        assert "adapter/support_intents/adapter_config.json" in adapter
        seeds = {r.data.tags["sftbench.seed"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                 run.info.run_id}
        assert set(seeds) == {str(s) for s in SEEDS}
        for i, seed in enumerate(SEEDS):
            logged = seeds[str(seed)]
            assert logged.data.params["seed"] == str(seed)
            assert logged.data.metrics["support_intents/test/accuracy"] == pytest.approx(
                bench["scores"]["test"]["accuracy"]["seeds"][i])
            assert logged.data.metrics["support_intents/train_seconds"] == pytest.approx(
                bench["seed_runs"][i]["train_seconds"])
            files = {f.path for f in client.list_artifacts(logged.info.run_id, "adapter/support_intents")}
            assert "adapter/support_intents/adapter_config.json" in files


def test_promote_registers_the_adapter_as_champion(tracked, client, capsys):
    results = tracked["results"]
    code = main(["promote", "--store", str(tracked["store"]), results["run_id"], "--candidate", "tiny-llama",
                 "--mlflow", tracked["uri"]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "alias champion" in out.out
    version = client.get_model_version_by_alias("tiny-tracked", "champion")
    assert version.tags["sftbench.candidate"] == "tiny-llama" and version.tags["sftbench.run_id"] == results["run_id"]
    run = client.get_run(version.run_id)
    assert run.info.run_name == "tiny-llama" and "mlflow.parentRunId" in run.data.tags  # the candidate's own run
    assert (Path(version.source) / "adapter_config.json").is_file()  # a local artifact folder here
    # promoting again, with the URI the run was configured with (no --mlflow), makes a new version, moves the alias
    assert main(["promote", "--store", str(tracked["store"]), results["run_id"], "--candidate", "tiny-llama"]) == 0
    assert int(client.get_model_version_by_alias("tiny-tracked", "champion").version) == int(version.version) + 1


def test_bad_tracking_uri_is_one_line_and_keeps_the_results(tmp_path, tiny_bert, monkeypatch, capsys):
    _mlflow()
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.chdir(tmp_path)
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("this is not a database\n" * 100)
    uri = f"sqlite:///{not_a_db}"
    cfg = _config(tmp_path, tiny_bert, tiny_bert)
    code = main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet", "--mlflow", uri,
                 f"candidates=[{{model: '{tiny_bert}', name: tiny-bert}}]", "probes=[]", "bias=[]", "recipe.seeds=1",
                 "recipe.eval_every=0"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err  # one line, the last one
    assert errors[0].startswith(f"sftbench: error: MLflow tracking store {uri} is unreachable or not a database")
    assert "file is not a database" in errors[0] and "results on disk are kept" in errors[0]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["candidates"][0]["name"] == "tiny-bert"
    # the run is in the run store too: promoting it into a good store logs its adapter there, then registers it
    good = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["promote", results["run_id"], "--candidate", "tiny-bert", "--mlflow", good]) == 0
    client = _mlflow().MlflowClient(tracking_uri=good, registry_uri=good)
    version = client.get_model_version_by_alias("tiny-tracked", "champion")
    assert client.get_run(version.run_id).info.run_name == "tiny-bert (promoted)"
    assert (Path(version.source) / "adapter_config.json").is_file()


def test_unreachable_server_is_one_line(tracked, monkeypatch):
    from harness.results.model import Results
    from harness.storage.tracking import TrackingError, log_run

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default retries for about two minutes
    uri = "http://127.0.0.1:9"  # the discard port: nothing listens
    with pytest.raises(TrackingError) as err:
        log_run(Results.from_json(tracked["results"]), tracked["folder"] / "out", uri, 1)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    assert str(err.value).startswith(f"MLflow tracking store {uri} is unreachable or not a database")


def test_tracking_config_is_checked_and_not_hashed(tmp_path):
    from harness.config import load_config
    from harness.errors import ConfigError

    plain = load_config(None)
    tracked = load_config(None, ["tracking.mlflow=sqlite:///mlflow.db"])
    assert tracked.tracking.mlflow == "sqlite:///mlflow.db" and plain.tracking.mlflow is None
    assert tracked.hash() == plain.hash()
    with pytest.raises(ConfigError, match="tracking.mlflow must be a database or tracking-server URI"):
        load_config(None, [f"tracking.mlflow={tmp_path / 'mlruns'}"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["tracking.wandb=x"])


def test_mlflow_is_not_loaded_when_tracking_is_off():
    code = ("import sys; import harness.cli, harness.commands.history, harness.storage.tracking; "
            "from harness.config import load_config; harness.cli._parser(); "
            "load_config(None, ['tracking.mlflow=sqlite:///x.db']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_promote_without_an_adapter_says_so(tracked, monkeypatch):
    import copy

    from harness.storage.tracking import TrackingError, register

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    results = copy.deepcopy(tracked["results"])
    for bench in results["candidates"][0]["benchmarks"]:
        bench["unit"] = None  # as for a zero-shot row or a full fine-tune
    name = results["candidates"][0]["name"]
    with pytest.raises(TrackingError, match=f"candidate '{name}' .* has no kept adapter folder to register"):
        register(results, name, tracked["uri"], "no-adapter")
