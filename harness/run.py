"""The bake-off pipeline: load -> probe (base) -> tune -> score -> probe (tuned) -> compare -> gate."""
from __future__ import annotations

import gc
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.config import BakeoffConfig, CandidateConfig
from harness.data import BenchmarkSpec, Split, load_benchmark
from harness.device import autocast, peak_rss_mb, set_threads, use_bf16
from harness.errors import RunFailure, SftbenchError
from harness.models import ModelHandle, count_parameters, load_model, load_tokenizer, resolve
from harness.probes import ProbeItem, ProbeSpec, forgetting_report, load_probe, score_probe
from harness.score import MetricValue, per_class_f1, score, score_losses
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


def load_suites(cfg: BakeoffConfig) -> Suites:
    """Read every spec and data file before any model loads, so bad input fails fast (exit 2)."""
    return Suites([load_benchmark(b, cfg.base_dir) for b in cfg.benchmarks],
                  [load_probe(p, cfg.base_dir) for p in cfg.probes])


def resolve_all(cfg: BakeoffConfig) -> dict[str, ModelHandle]:
    return {c.name: resolve(c.model, c.revision, c.trust_remote_code) for c in cfg.candidates}


def run(cfg: BakeoffConfig, progress: Progress = Quiet()) -> tuple[str, list[CandidateResult]]:
    from tuners import load_all

    load_all().get(cfg.recipe.tuner)
    set_threads()
    suites = load_suites(cfg)
    handles = resolve_all(cfg)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    return run_id, [evaluate_candidate(c, handles[c.name], cfg, suites, progress) for c in cfg.candidates]


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


def tune_and_score(cand: CandidateConfig, handle: ModelHandle, cfg: BakeoffConfig, spec: BenchmarkSpec,
                   splits: dict[str, Split], suites: Suites, progress: Progress) -> tuple[BenchmarkResult, int, int]:
    import torch

    from tuners import TUNERS

    recipe = cfg.recipe
    lr = cand.learning_rate if cand.learning_rate is not None else recipe.learning_rate
    progress.stage(cand.name, f"loading for {spec.name}")
    torch.manual_seed(recipe.seed)  # a fresh classifier head is initialised at load time
    head = len(spec.labels) if handle.kind == "encoder" and spec.task == "classification" else None
    model, tokenizer = load_model(handle, head_labels=head), load_tokenizer(handle)
    bf16 = use_bf16(recipe.bf16)  # scoring runs under the same precision the recipe trains in
    probes = [(p, items, h) for p, items, h in suites.probes if p.model_kind == handle.kind]
    before = []
    for p, items, _ in probes:
        progress.stage(cand.name, f"probing base model: {p.name}")
        with autocast(bf16):
            before.append(score_probe(p, items, model, tokenizer))
    model = TUNERS.get(recipe.tuner).prepare(model, recipe, handle.kind)
    params, trainable = count_parameters(model)
    encode = lambda split: training_items(spec, splits[split].examples, tokenizer, handle.kind, recipe.max_length)  # noqa: E731
    train_items = encode("train")
    val_items = encode("validation") if "validation" in splits else []
    progress.stage(cand.name, f"tuning on {spec.name} ({len(train_items)} rows, {recipe.epochs} epochs, lr {lr:g})")
    trained = fit(model, train_items, val_items, recipe, lr, tokenizer.pad_token_id, on_step=progress.step)
    scores, predictions, per_class, latency = {}, {}, {}, None
    for split in (s for s in SCORED_SPLITS if s in splits):
        progress.stage(cand.name, f"scoring {spec.name}/{split}")
        examples = splits[split].examples
        with autocast(bf16):
            preds, seconds_per_item = predict(spec, examples, model, tokenizer, handle.kind, recipe.max_length)
        latency = latency if latency is not None else seconds_per_item * 1000
        refs = [list(ex.references) for ex in examples]
        scores[split] = {m: score(m, preds, refs, cfg.bootstrap_resamples, recipe.seed) for m in spec.metrics}
        if spec.task == "classification":
            per_class[split] = per_class_f1(preds, refs)
        if spec.task == "generation":  # loss and perplexity of the reference text, next to the text metrics
            with autocast(bf16):
                losses, counts = reference_losses(spec, examples, model, tokenizer, recipe.max_length)
            scores[split] |= score_losses(losses, counts, cfg.bootstrap_resamples, recipe.seed)
        predictions[split] = preds
    reports = []
    for (p, items, digest), b in zip(probes, before):
        progress.stage(cand.name, f"probing tuned model: {p.name}")
        with autocast(bf16):
            after = score_probe(p, items, model, tokenizer)
        reports.append(forgetting_report(p, items, b, after, digest, cfg.bootstrap_resamples, recipe.seed))
    if trained.train_loss and any(v != v for v in trained.train_loss):
        raise RunFailure("training loss is NaN")
    result = BenchmarkResult(spec.name, spec.version, spec.task, "ok", "", lr,
                             {s: sp.sha256 for s, sp in splits.items()}, scores, trained, latency, reports, predictions,
                             per_class)
    del model
    return result, params, trainable
