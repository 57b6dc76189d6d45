"""MLflow tracking of a finished bake-off, and registration of a promoted adapter in MLflow's model registry.

A bake-off is one parent run; each candidate is a nested run (and each training seed a run nested in its candidate's,
when a benchmark ran several seeds). Everything logged is read from the typed results model (results.json) and the
report files written beside it: nothing is recomputed here. mlflow is imported only by this module, and this module
only when a tracking URI is set, so a run without tracking never loads it.

Metric keys are `benchmark/split/metric` (with `_ci_low` / `_ci_high`), `benchmark/train_loss` and
`benchmark/val_loss` at their optimizer steps, `benchmark/step_loss` (the training loss at every logged step),
`benchmark/forgetting/probe`, `benchmark/bias/suite/change` and
`cost/...`. Tags carry the gate verdicts (`gate/<gate name>` on the candidate's run), the recommendation and the
exit code (`sftbench.*` on the parent run).
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import EXIT_USAGE, SftbenchError
from harness.results.model import BenchmarkRow, CandidateRow, MetricScore, Results

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARTIFACTS = ("results.json", "report.html", "summary.md")  # the run's files, beside results.json
ALIAS = "champion"
_BATCH = 1000  # MLflow's log_batch limit on metrics per call (params: 100, tags: 100)


class TrackingError(SftbenchError):
    """The tracking store could not be reached or written; the results on disk are kept."""

    exit_code = EXIT_USAGE


def log_run(results: Results, out: Path, uri: str, exit_code: int) -> str:
    """Log a finished bake-off to the MLflow store at `uri`; returns the parent run's id."""
    try:
        return _log(_client(uri), results, out, exit_code)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 - any store failure is one line naming the URI, not a traceback
        raise _failure(uri, err, "the results on disk are kept") from None


def register(results: dict[str, Any], candidate: str, uri: str, name: str) -> tuple[str, str]:
    """Register `candidate`'s kept adapter of a stored run as a new version of model `name`, aliased `champion`.
    The adapter comes from the candidate's tracked run when the run was logged to this store, else it is logged now
    from the unit folder. Returns (model name, version)."""
    try:
        return _register(_client(uri), Results.from_json(results), candidate, name)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _failure(uri, err, "the baseline is promoted in the run store; promote again to register it") from None


def _client(uri: str) -> MlflowClient:
    """A client of the store at `uri` (creating it connects, and creates a new database's tables)."""
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise TrackingError("MLflow tracking needs mlflow: pip install 'sftbench[mlflow]'") from None
    for name in ("mlflow", "alembic"):  # their INFO lines (creating tables, migrations) would bury the leaderboard
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _failure(uri: str, err: Exception, kept: str) -> TrackingError:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return TrackingError(f"MLflow tracking store {uri} is unreachable or not a database ({first[:200]}); {kept}")


def _reliability_tags(results: Results) -> dict[str, str]:
    """How reliable the recommendation is, in words (harness/gates/stability.py), and what would settle it."""
    extra = results.recommendation_agreement or {}
    if results.recommendation is None or not extra.get("reliability"):
        return {}
    share = results.recommendation_stability or 0.0
    tags = {"sftbench.recommendation_reliability": f"{extra['reliability']} ({share:.0%} bootstrap agreement)"}
    if extra.get("settle"):
        tags["sftbench.recommendation_settle"] = str(extra["settle"])
    return tags


def _adaptive_tags(results: Results) -> dict[str, str]:
    """Adaptive seeds: fine-tunes run against the full grid, why the run stopped, the rule's stability, and each
    candidate and setting's seeds and why it stopped."""
    ad = results.adaptive
    if not ad:
        return {}
    tags = {"sftbench.adaptive_fine_tunes": f"{ad['fine_tunes']} of {ad['full_grid']}",
            "sftbench.adaptive_stopped_because": str(ad["stopped_because"]),
            "sftbench.adaptive_stability": f"{ad['stability']:.3f}"}
    for arm in ad["arms"]:
        tags[f"sftbench.adaptive.{arm['candidate']}.lr_{arm['learning_rate']:g}.ep_{arm['epochs']}"] = \
            f"{arm['seeds']} seeds: {arm['stopped']}"
    return tags


def _log(client: MlflowClient, results: Results, out: Path, exit_code: int) -> str:
    experiment = _experiment(client, results.name)
    stored = dict(results.config.get("recipe", {}))
    options = stored.pop("options", None) or {}  # the tuner's own options, as flat params beside the shared ones
    recipe = {f"recipe.{k}": v for k, v in {**stored, **options}.items()}
    parent = client.create_run(experiment, run_name=results.name, tags={
        "sftbench.run_id": results.run_id, "sftbench.config_hash": results.config_hash,
        "sftbench.git_sha": results.git_sha, "sftbench.recommendation": results.recommendation or "none",
        "sftbench.recommendation_reason": results.recommendation_reason, "sftbench.passed": str(results.passed),
        **_reliability_tags(results), **_adaptive_tags(results),
        "sftbench.exit_code": str(exit_code),
        "sftbench.gates": f"{sum(g.passed for g in results.gates)}/{len(results.gates)} passed"}).info.run_id
    _batch(client, parent, params=recipe | {"sweep": results.config.get("sweep"),
                                            "candidates": ", ".join(c.name for c in results.candidates)})
    for name in ARTIFACTS:
        if (out / name).is_file():
            client.log_artifact(parent, str(out / name))
    for cand in results.candidates:
        _log_candidate(client, experiment, parent, results, cand, recipe)
    client.set_terminated(parent, "FINISHED" if exit_code in (0, 1) else "FAILED")
    return parent


def _log_candidate(client: MlflowClient, experiment: str, parent: str, results: Results, cand: CandidateRow,
                   recipe: dict[str, Any]) -> None:
    tags = {"mlflow.parentRunId": parent, "sftbench.run_id": results.run_id, "sftbench.candidate": cand.name,
            "sftbench.status": cand.status, "sftbench.recommended": str(cand.name == results.recommendation)}
    tags |= {f"gate/{_key(g.gate)}": f"{'passed' if g.passed else 'failed'}: {g.message}"[:5000]
             for g in results.gates if g.candidate == cand.name}
    tags |= {"sftbench.reason": cand.reason} if cand.reason else {}
    run = client.create_run(experiment, run_name=cand.name, tags=tags).info.run_id
    params: dict[str, Any] = recipe | {k: getattr(cand, k) for k in (
        "model", "source", "path", "revision", "weights_sha", "kind", "architecture", "params", "trainable_params")}
    params |= {"zero_shot": cand.zero_shot}
    cost = cand.cost.to_json()
    metrics: list[tuple[str, float, int]] = [(f"cost/{k}", v, 0) for k, v in cost.items()
                                             if isinstance(v, (int, float))]
    # what a cost figure was measured under (latency's conditions: items, threads, device, hardware) beside it
    params |= {f"cost.{k}.{part}": value for k, v in cost.items() if isinstance(v, dict) for part, value in v.items()}
    for bench in cand.benchmarks:
        params |= _setting(bench, results.config)
        metrics += _benchmark_metrics(bench)
        adapter = Path(bench.unit) / "adapter" if bench.unit else None
        if adapter is not None and adapter.is_dir():
            client.log_artifacts(run, str(adapter), f"adapter/{bench.benchmark}")
    _batch(client, run, params=params, metrics=metrics)
    for seed in sorted({s for b in cand.benchmarks if b.seeds and len(b.seeds) > 1 for s in b.seeds}):
        _log_seed(client, experiment, run, results, cand, seed)
    client.set_terminated(run, "FINISHED" if cand.status == "ok" else "FAILED")


def _log_seed(client: MlflowClient, experiment: str, parent: str, results: Results, cand: CandidateRow,
              seed: int) -> None:
    """One training seed: each benchmark's score under that seed, its training time and loss, its adapter."""
    run = client.create_run(experiment, run_name=f"{cand.name} seed {seed}", tags={
        "mlflow.parentRunId": parent, "sftbench.run_id": results.run_id, "sftbench.candidate": cand.name,
        "sftbench.seed": str(seed)}).info.run_id
    metrics: list[tuple[str, float, int]] = []
    for bench in cand.benchmarks:
        if not bench.seeds or seed not in bench.seeds:
            continue
        i = bench.seeds.index(seed)
        for split, by_metric in bench.scores.items():
            metrics += [(f"{bench.benchmark}/{split}/{m}", s.seeds[i], 0) for m, s in by_metric.items()
                        if s.seeds and i < len(s.seeds) and s.seeds[i] is not None]
        row = (bench.seed_runs or [{}] * (i + 1))[i]
        metrics += [(f"{bench.benchmark}/{k}", row[k], 0) for k in ("train_seconds", "final_val_loss")
                    if isinstance(row.get(k), (int, float))]
        adapter = Path(row["unit"]) / "adapter" if row.get("unit") else None
        if adapter is not None and adapter.is_dir():
            client.log_artifacts(run, str(adapter), f"adapter/{bench.benchmark}")
    _batch(client, run, params={"seed": seed}, metrics=metrics)
    client.set_terminated(run, "FINISHED")


def _setting(bench: BenchmarkRow, config: dict[str, Any]) -> dict[str, Any]:
    """The chosen setting (the sweep's chosen row, else the recipe's) and what the row was computed from."""
    chosen = next((row for row in bench.sweep or [] if row.get("chosen")), {})
    epochs = chosen.get("epochs", config.get("recipe", {}).get("epochs"))
    b = bench.benchmark
    return {f"{b}.learning_rate": bench.learning_rate, f"{b}.epochs": None if bench.zero_shot else epochs,
            f"{b}.version": bench.version, f"{b}.seeds": bench.seeds, f"{b}.status": bench.status}


def _benchmark_metrics(bench: BenchmarkRow) -> list[tuple[str, float, int]]:
    b, out = bench.benchmark, []
    for split, by_metric in bench.scores.items():
        for metric, score in by_metric.items():
            out += _interval(f"{b}/{split}/{metric}", score)
    for point in (bench.train or {}).get("curve") or []:
        out += [(f"{b}/{k}", point[k], int(point["step"])) for k in ("train_loss", "val_loss", "val_metric")
                if isinstance(point.get(k), (int, float))]
    # the training loss at every logged optimizer step (harness/training/loop.py), not only at evaluations
    out += [(f"{b}/step_loss", float(loss), int(step)) for step, loss in (bench.train or {}).get("step_loss") or []]
    for probe in bench.probes:
        out += _interval(f"{b}/forgetting/{probe.probe}", probe.forgetting)
        out += _interval(f"{b}/probe/{probe.probe}/before", probe.before)
        out += _interval(f"{b}/probe/{probe.probe}/after", probe.after)
    for suite in bench.bias:
        out += _interval(f"{b}/bias/{suite.probe}/change", suite.change)
        out += _interval(f"{b}/bias/{suite.probe}/flip_rate_before", suite.flip_rate_before)
        out += _interval(f"{b}/bias/{suite.probe}/flip_rate_after", suite.flip_rate_after)
    gap = bench.generalisation
    out += _interval(f"{b}/generalisation_gap", MetricScore(value=gap.gap, ci_low=gap.gap_ci_low,
                                                            ci_high=gap.gap_ci_high))
    if bench.latency_ms_per_item is not None:
        out.append((f"{b}/latency_ms_per_item", bench.latency_ms_per_item, 0))
    return out


def _interval(key: str, score: MetricScore | None) -> list[tuple[str, float, int]]:
    if score is None:
        return []
    pairs = ((key, score.value), (f"{key}_ci_low", score.ci_low), (f"{key}_ci_high", score.ci_high))
    return [(k, float(v), 0) for k, v in pairs if isinstance(v, (int, float))]


def _batch(client: MlflowClient, run: str, params: dict[str, Any] | None = None,
           metrics: list[tuple[str, float, int]] | None = None) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    ps = [Param(_key(k), str(v)[:6000]) for k, v in (params or {}).items() if v is not None]
    ms = [Metric(_key(k), v, now, step) for k, v, step in metrics or []]
    for i in range(0, len(ps), 100):
        client.log_batch(run, params=ps[i:i + 100])
    for i in range(0, len(ms), _BATCH):
        client.log_batch(run, metrics=ms[i:i + _BATCH])


def _key(name: str) -> str:
    """MLflow keys allow letters, digits, `_ - . / ` and space: a gate named `a.b >= 0.5` becomes `a.b _= 0.5`."""
    return re.sub(r"[^\w\-./ ]", "_", name)[:250]


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _register(client: MlflowClient, results: Results, candidate: str, name: str) -> tuple[str, str]:
    cand = results.candidate(candidate)
    bench = next((b for b in cand.benchmarks if b.unit and (Path(b.unit) / "adapter").is_dir()), None) if cand \
        else None
    if cand is None or bench is None:
        raise TrackingError(f"candidate '{candidate}' of run {results.run_id} has no kept adapter folder to register "
                            "(a peft tuner keeps one in its unit; a zero-shot row or a full fine-tune has none); "
                            "the baseline is promoted in the run store")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.`sftbench.run_id` = '{results.run_id}' AND tags.`sftbench.candidate` = '{candidate}'"
        " AND tags.`sftbench.seed` IS NULL", max_results=1)
    artifact = f"adapter/{bench.benchmark}"
    if runs:
        run = runs[0].info.run_id
    else:  # the run was not tracked in this store: log the adapter now, in a run of its own
        run = client.create_run(_experiment(client, results.name), run_name=f"{candidate} (promoted)", tags={
            "sftbench.run_id": results.run_id, "sftbench.candidate": candidate}).info.run_id
        client.log_artifacts(run, str(Path(bench.unit or "") / "adapter"), artifact)
        client.set_terminated(run, "FINISHED")
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MlflowException RESOURCE_DOES_NOT_EXIST: the first version of this model
        client.create_registered_model(name, description=f"sftbench adapters promoted from bake-off {results.name}")
    source = client.get_run(run).info.artifact_uri.rstrip("/") + f"/{artifact}"
    version = client.create_model_version(name, source, run_id=run, tags={
        "sftbench.run_id": results.run_id, "sftbench.candidate": candidate, "sftbench.model": cand.model or "",
        "sftbench.weights_sha": cand.weights_sha or "", "sftbench.benchmark": bench.benchmark}).version
    client.set_registered_model_alias(name, ALIAS, str(version))
    return name, str(version)
