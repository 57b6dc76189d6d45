"""The bake-off pipeline: load -> probe (base) -> tune -> score -> probe (tuned) -> compare -> gate."""
from __future__ import annotations

import dataclasses
import gc
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.config import BakeoffConfig, CandidateConfig
from harness.bias import bias_report, render_pair_inputs
from harness.data import BenchmarkSpec, Split, load_benchmark
from harness.device import autocast, peak_rss_mb, set_threads, use_bf16
from harness.errors import ConfigError, SftbenchError
from harness.models import ModelHandle, count_parameters, load_model, load_tokenizer, resolve
from harness.probes import ProbeItem, ProbeSpec, forgetting_report, load_probe, score_probe
from harness.score import METRICS, MetricValue, per_class_f1, score, score_losses
from harness.tasks import applicable, predict, reference_losses, training_items
from harness.train import TrainResult, fit

SCORED_SPLITS = ("test", "shifted")


class Progress(Protocol):
    def stage(self, candidate: str, what: str) -> None: ...
    def step(self, done: int, total: int) -> None: ...


class Quiet:
    def stage(self, candidate: str, what: str) -> None:
        pass

    def step(self, done: int, total: int) -> None:
        pass


@dataclass(frozen=True)
class BenchmarkResult:
    benchmark: str
    version: str
    task: str
    status: str  # ok | n/a | failed
    reason: str = ""
    learning_rate: float | None = None
    data_sha256: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, MetricValue]] = field(default_factory=dict)  # split -> metric -> value
    train: TrainResult | None = None
    latency_ms: float | None = None
    probes: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, list[str]] = field(default_factory=dict, repr=False)
    per_class_f1: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> label -> F1
    sweep: list[dict[str, Any]] = field(default_factory=list)  # settings tried, validation score, which won
    bias: list[dict[str, Any]] = field(default_factory=list)  # counterfactual flip rates before/after tuning


@dataclass(frozen=True)
class CandidateResult:
    name: str
    model: str
    status: str  # ok | failed
    reason: str = ""
    handle: ModelHandle | None = None
    params: int = 0
    trainable_params: int = 0
    peak_rss_mb: float = 0.0
    benchmarks: list[BenchmarkResult] = field(default_factory=list)


@dataclass(frozen=True)
class Suites:
    benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]
    probes: list[tuple[ProbeSpec, list[ProbeItem], str]]
    bias: list[tuple[Any, list[Any], str]] = field(default_factory=list)


def load_suites(cfg: BakeoffConfig) -> Suites:
    """Read every spec and data file before any model loads, so bad input fails fast (exit 2)."""
    from harness.bias import load_bias_suite

    suites = Suites([load_benchmark(b, cfg.base_dir) for b in cfg.benchmarks],
                    [load_probe(p, cfg.base_dir) for p in cfg.probes],
                    [load_bias_suite(b.spec, cfg.base_dir) for b in cfg.bias])
    names = {spec.name for spec, _ in suites.benchmarks}
    for b, _, _ in suites.bias:
        if b.benchmark not in names:
            raise ConfigError(f"bias suite '{b.name}' needs benchmark '{b.benchmark}', which the config does not list",
                              cfg.source or None)
    sweeping = any(len(cfg.settings(c)) > 1 for c in cfg.candidates)
    for spec, splits in suites.benchmarks:
        if sweeping and "validation" not in splits:
            raise ConfigError(f"a sweep picks settings on validation data, and benchmark '{spec.name}' has no "
                              "validation split", cfg.source or None)
    return suites


def resolve_all(cfg: BakeoffConfig) -> dict[str, ModelHandle]:
    return {c.name: resolve(c.model, c.revision, c.trust_remote_code) for c in cfg.candidates}


def run(cfg: BakeoffConfig, progress: Progress = Quiet()) -> tuple[str, list[CandidateResult], dict[str, str]]:
    """Run id, one result per candidate, and each benchmark's main metric."""
    from tuners import load_all

    load_all().get(cfg.recipe.tuner)
    set_threads()
    suites = load_suites(cfg)
    handles = resolve_all(cfg)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    results = [evaluate_candidate(c, handles[c.name], cfg, suites, progress) for c in cfg.candidates]
    return run_id, results, {spec.name: spec.main_metric for spec, _ in suites.benchmarks}


def evaluate_candidate(cand: CandidateConfig, handle: ModelHandle, cfg: BakeoffConfig, suites: Suites,
                       progress: Progress) -> CandidateResult:
    results, params, trainable = [], 0, 0
    for spec, splits in suites.benchmarks:
        reason = applicable(spec, handle.kind)
        if reason:
            results.append(BenchmarkResult(spec.name, spec.version, spec.task, "n/a", reason))
            continue
        try:
            result, params, trainable = tune_and_score(cand, handle, cfg, spec, splits, suites, progress)
        except SftbenchError as err:
            result = BenchmarkResult(spec.name, spec.version, spec.task, "failed", str(err))
        except Exception as err:  # a candidate's crash must not lose the other candidates' results
            last = traceback.extract_tb(err.__traceback__)[-1]
            result = BenchmarkResult(spec.name, spec.version, spec.task, "failed",
                                     f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
                                     f"({last.filename.split('/')[-1]}:{last.lineno})")
        results.append(result)
        gc.collect()
    failed = [r for r in results if r.status == "failed"]
    status = "failed" if failed else "ok"
    return CandidateResult(cand.name, cand.model, status, failed[0].reason if failed else "", handle, params,
                           trainable, peak_rss_mb(), results)


def _load(handle: ModelHandle, spec: BenchmarkSpec, seed: int) -> tuple[Any, Any]:
    import torch

    torch.manual_seed(seed)  # a fresh classifier head is initialised at load time
    head = len(spec.labels) if handle.kind == "encoder" and spec.task == "classification" else None
    return load_model(handle, head_labels=head), load_tokenizer(handle)


def _score_split(spec: BenchmarkSpec, split: Split, model: Any, tokenizer: Any, kind: str, cfg: BakeoffConfig,
                 bf16: bool, metrics: tuple[str, ...]) -> tuple[dict[str, MetricValue], list[str], float]:
    with autocast(bf16):
        preds, seconds_per_item = predict(spec, split.examples, model, tokenizer, kind, cfg.recipe.max_length)
    refs = [list(ex.references) for ex in split.examples]
    scores = {m: score(m, preds, refs, cfg.bootstrap_resamples, cfg.recipe.seed) for m in metrics}
    return scores, preds, seconds_per_item * 1000


def tune_and_score(cand: CandidateConfig, handle: ModelHandle, cfg: BakeoffConfig, spec: BenchmarkSpec,
                   splits: dict[str, Split], suites: Suites, progress: Progress) -> tuple[BenchmarkResult, int, int]:
    recipe = cfg.recipe
    bf16 = use_bf16(recipe.bf16)  # scoring runs under the same precision the recipe trains in
    progress.stage(cand.name, f"loading for {spec.name}")
    model, tokenizer = _load(handle, spec, recipe.seed)
    probes = [(p, items, h) for p, items, h in suites.probes if p.model_kind == handle.kind]
    before = []
    for p, items, _ in probes:
        progress.stage(cand.name, f"probing base model: {p.name}")
        with autocast(bf16):
            before.append(score_probe(p, items, model, tokenizer))
    # Bias "before" needs a model that can already do the task: a causal LM zero-shot. An encoder's new head is
    # untrained before tuning, so its before/after change would be noise; encoders are skipped.
    bias = [(b, pairs, h, *render_pair_inputs(spec, pairs)) for b, pairs, h in suites.bias
            if b.benchmark == spec.name and handle.kind == "causal"]
    bias_before = []
    for b, _, _, ex_a, ex_b in bias:
        progress.stage(cand.name, f"bias probe on base model: {b.name}")
        with autocast(bf16):
            bias_before.append((predict(spec, ex_a, model, tokenizer, handle.kind, recipe.max_length)[0],
                                predict(spec, ex_b, model, tokenizer, handle.kind, recipe.max_length)[0]))
    model, trained, lr, sweep = tune(cand, handle, cfg, spec, splits, model, tokenizer, bf16, progress)
    params, trainable = count_parameters(model)
    scores, predictions, per_class, latency = {}, {}, {}, None
    for split in (s for s in SCORED_SPLITS if s in splits):
        progress.stage(cand.name, f"scoring {spec.name}/{split}")
        scores[split], preds, ms = _score_split(spec, splits[split], model, tokenizer, handle.kind, cfg, bf16, spec.metrics)
        latency = latency if latency is not None else ms
        refs = [list(ex.references) for ex in splits[split].examples]
        if spec.task == "classification":
            per_class[split] = per_class_f1(preds, refs)
        if spec.task == "generation":  # loss and perplexity of the reference text, next to the text metrics
            with autocast(bf16):
                losses, counts = reference_losses(spec, splits[split].examples, model, tokenizer, recipe.max_length)
            scores[split] |= score_losses(losses, counts, cfg.bootstrap_resamples, recipe.seed)
        predictions[split] = preds
    reports = []
    for (p, items, digest), b in zip(probes, before):
        progress.stage(cand.name, f"probing tuned model: {p.name}")
        with autocast(bf16):
            after = score_probe(p, items, model, tokenizer)
        reports.append(forgetting_report(p, items, b, after, digest, cfg.bootstrap_resamples, recipe.seed))
    bias_reports = []
    for (b, pairs, h, ex_a, ex_b), (pa, pb) in zip(bias, bias_before):
        progress.stage(cand.name, f"bias probe on tuned model: {b.name}")
        with autocast(bf16):
            qa = predict(spec, ex_a, model, tokenizer, handle.kind, recipe.max_length)[0]
            qb = predict(spec, ex_b, model, tokenizer, handle.kind, recipe.max_length)[0]
        bias_reports.append({"probe": b.name, "version": b.version, "data_sha256": h,
                             **bias_report(pa, pb, qa, qb, pairs, cfg.bootstrap_resamples, recipe.seed)})
    result = BenchmarkResult(spec.name, spec.version, spec.task, "ok", "", lr,
                             {s: sp.sha256 for s, sp in splits.items()}, scores, trained, latency, reports, predictions,
                             per_class, sweep, bias_reports)
    del model
    return result, params, trainable


def tune(cand: CandidateConfig, handle: ModelHandle, cfg: BakeoffConfig, spec: BenchmarkSpec, splits: dict[str, Split],
         model: Any, tokenizer: Any, bf16: bool, progress: Progress) -> tuple[Any, TrainResult, float, list[dict[str, Any]]]:
    """Train every (learning rate, epochs) setting from the same base weights; keep the best on validation."""
    from tuners import TUNERS

    settings = cfg.settings(cand)
    encode = lambda split: training_items(spec, splits[split].examples, tokenizer, handle.kind, cfg.recipe.max_length)  # noqa: E731
    train_items = encode("train")
    val_items = encode("validation") if "validation" in splits else []
    higher = METRICS.get(spec.main_metric).higher_is_better
    best: tuple[float, Any, TrainResult, float] | None = None
    tried = []
    for i, (lr, epochs) in enumerate(settings):
        if i > 0:
            model = _load(handle, spec, cfg.recipe.seed)[0]  # every setting starts from the same base weights
        recipe = dataclasses.replace(cfg.recipe, epochs=epochs)
        tuned = TUNERS.get(recipe.tuner).prepare(model, recipe, handle.kind)
        progress.stage(cand.name, f"tuning on {spec.name} ({len(train_items)} rows, {epochs} epochs, lr {lr:g})")
        trained = fit(tuned, train_items, val_items, recipe, lr, tokenizer.pad_token_id, on_step=progress.step)
        if len(settings) == 1:
            return tuned, trained, lr, []
        progress.stage(cand.name, f"validating lr {lr:g}, {epochs} epochs")
        val = _score_split(spec, splits["validation"], tuned, tokenizer, handle.kind, cfg, bf16, (spec.main_metric,))[0]
        value = val[spec.main_metric].value
        tried.append({"learning_rate": lr, "epochs": epochs, "validation": value, "val_loss": trained.val_loss[-1]})
        key = value if higher else -value
        if best is None or key > best[0]:
            best = (key, tuned, trained, lr)
        else:
            del tuned
    assert best is not None
    for t in tried:
        t["chosen"] = t["learning_rate"] == best[3] and t["epochs"] == len(best[2].train_loss)
    return best[1], best[2], best[3], tried
