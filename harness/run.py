"""The bake-off pipeline: load -> probe (base) -> tune -> score -> probe (tuned) -> compare -> gate."""
from __future__ import annotations

import dataclasses
import gc
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.bias import bias_report, render_pair_inputs
from harness.cache import UnitCache
from harness.chance import chance, learned, what_to_try
from harness.config import BakeoffConfig, CandidateConfig
from harness.data import BenchmarkSpec, Split, load_benchmark
from harness.device import autocast, peak_rss_mb, reset_peak_rss, set_threads, use_bf16
from harness.errors import ConfigError, SftbenchError
from harness.models import ModelHandle, count_parameters, resolve
from harness.probes import ProbeItem, ProbeScore, ProbeSpec, forgetting_report, load_probe, score_probe
from harness.score import METRICS, MetricValue, per_class_f1, score, score_losses
from harness.tasks import applicable, metric_while_training, predict, reference_losses, training_items
from harness.train import TrainResult, fit
from harness.units import Bench, keep_setting, scoring_key, tune_key, zero_shot_key

SCORED_SPLITS = ("test", "shifted")


class Progress(Protocol):
    def stage(self, candidate: str, what: str) -> None: ...
    def step(self, done: int, total: int) -> None: ...


class Quiet:
    def stage(self, candidate: str, what: str) -> None:
        pass

    def step(self, done: int, total: int) -> None:
        pass


QUIET = Quiet()  # the default progress: it keeps no state, so one instance serves every call


@dataclass(frozen=True)
class Tell:
    """One candidate's progress: a line per stage, a bar per loop."""

    progress: Progress
    candidate: str

    def stage(self, what: str) -> None:
        self.progress.stage(self.candidate, what)

    def step(self, done: int, total: int) -> None:
        self.progress.step(done, total)


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
    files: dict[str, str] = field(default_factory=dict)  # resolved spec and data paths, as read
    unit: Path | None = None  # the kept tuned setting (trainable.safetensors, peft adapter/)
    chance: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> {value, how}: harness/chance.py
    learned: bool | None = None  # beats chance by the documented margin (None: nothing to compare with)
    learned_reason: str = ""
    zero_shot: bool = False  # the base model scored as it is, no tuning (a reference row)
    seeds: list[int] = field(default_factory=list)  # training seeds merged into this result (harness/seeded.py)
    seed_runs: list[dict[str, Any]] = field(default_factory=list)  # per seed: its unit, training seconds, loss
    seed_predictions: dict[str, list[list[str]]] = field(default_factory=dict, repr=False)  # split -> per seed


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
    zero_shot: bool = False  # a reference row: the base model untuned; never the recommendation


@dataclass(frozen=True)
class Suites:
    benchmarks: list[tuple[BenchmarkSpec, dict[str, Split]]]
    probes: list[tuple[ProbeSpec, list[ProbeItem], str]]
    bias: list[tuple[Any, list[Any], str]] = field(default_factory=list)


def load_suites(cfg: BakeoffConfig) -> Suites:
    """Read every spec and data file before any model loads, so bad input fails fast (exit 2)."""
    from harness.bias import load_bias_suite
    from harness.validate import cross_checks

    suites = Suites([load_benchmark(b, cfg.base_dir) for b in cfg.benchmarks],
                    [load_probe(p, cfg.base_dir) for p in cfg.probes],
                    [load_bias_suite(b.spec, cfg.base_dir) for b in cfg.bias])
    errors = cross_checks(cfg, suites.benchmarks, [b for b, _, _ in suites.bias])
    if errors:
        raise ConfigError(errors[0].message, errors[0].path or None, errors[0].line)
    return suites


def resolve_all(cfg: BakeoffConfig, progress: Progress = QUIET) -> dict[str, ModelHandle]:
    handles = {}
    for c in cfg.candidates:
        progress.stage(c.name, "resolving model")  # a bundled GGUF model is converted once, with a bar
        handles[c.name] = resolve(c.model, c.revision, c.trust_remote_code, c.allow_pickle, on_step=progress.step)
    return handles


@dataclass(frozen=True)
class Bakeoff:
    run_id: str
    candidates: list[CandidateResult]
    main_metrics: dict[str, str]  # benchmark -> its main metric
    warnings: list[dict[str, Any]] = field(default_factory=list)  # data lint findings that did not stop the run


def run(cfg: BakeoffConfig, progress: Progress = QUIET, cache: UnitCache | None = None) -> Bakeoff:
    """Every candidate through the pipeline. Units already in `cache` are reused, finished ones kept there."""
    from harness.validate import run_warnings
    from tuners import load_all

    try:  # everything that can reject the input runs before any model loads
        load_all().get(cfg.recipe.tuner)
        suites = load_suites(cfg)
        handles = resolve_all(cfg, progress)
    except SftbenchError as err:
        if err.path is None and cfg.source:  # an unknown name is an error in the config that named it
            err.path = cfg.source
        raise
    warnings = [f.to_dict() for f in run_warnings(cfg, suites.benchmarks)]
    set_threads()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    cache = cache or UnitCache(None)
    results = [evaluate_candidate(c, handles[c.name], cfg, suites, cache, progress) for c in cfg.candidates]
    return Bakeoff(run_id, results, {spec.name: spec.main_metric for spec, _ in suites.benchmarks}, warnings)


def evaluate_candidate(cand: CandidateConfig, handle: ModelHandle, cfg: BakeoffConfig, suites: Suites,
                       cache: UnitCache, progress: Progress) -> CandidateResult:
    results, params, trainable, peaks = [], 0, 0, [0.0]
    reset_peak_rss()  # this candidate's peak memory, not an earlier candidate's
    computed = cache.computed
    for spec, splits in suites.benchmarks:
        reason = applicable(spec, handle.kind, cand.zero_shot)
        if reason:
            results.append(BenchmarkResult(spec.name, spec.version, spec.task, "n/a", reason))
            continue
        seeds = cfg.recipe.seed_values
        # one seed given as a list (`seeds: [7]`) trains under that seed, exactly as `seed: 7` would
        bench = Bench(handle, spec, cfg if len(seeds) > 1 else
                      dataclasses.replace(cfg, recipe=cfg.recipe.for_seed(seeds[0])), cache)
        try:
            if len(seeds) > 1 and not cand.zero_shot:
                from harness.seeded import tune_and_score_seeds

                result, params, trainable, seed_peaks = tune_and_score_seeds(cand, handle, spec, cfg, cache, splits,
                                                                             suites, progress)
                bench.peaks += seed_peaks
            else:
                result, params, trainable = tune_and_score(cand, bench, splits, suites, progress)
        except SftbenchError as err:
            result = BenchmarkResult(spec.name, spec.version, spec.task, "failed", str(err))
        except Exception as err:  # a candidate's crash must not lose the other candidates' results
            last = traceback.extract_tb(err.__traceback__)[-1]
            result = BenchmarkResult(spec.name, spec.version, spec.task, "failed",
                                     f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
                                     f"({last.filename.split('/')[-1]}:{last.lineno})")
        peaks += bench.peaks
        bench.release()
        results.append(result)
        gc.collect()
    failed = [r for r in results if r.status == "failed"]
    status = "failed" if failed else "ok"
    # Kept units carry the memory peak of the run that computed them: a run that only reuses units reports that.
    if cache.computed > computed:
        peaks.append(peak_rss_mb())
    return CandidateResult(cand.name, cand.model, status, failed[0].reason if failed else "", handle, params,
                           trainable, max(peaks), results, cand.zero_shot)


def _score_split(spec: BenchmarkSpec, split: Split, model: Any, tokenizer: Any, kind: str, cfg: BakeoffConfig,
                 bf16: bool, metrics: tuple[str, ...], tell: Tell) -> tuple[dict[str, MetricValue], list[str], float]:
    with autocast(bf16):
        preds, seconds_per_item = predict(spec, split.examples, model, tokenizer, kind, cfg.recipe.max_length,
                                          on_step=tell.step)
    refs = [list(ex.references) for ex in split.examples]
    scores = {m: score(m, preds, refs, cfg.bootstrap_resamples, cfg.recipe.seed) for m in metrics}
    return scores, preds, seconds_per_item * 1000


BaseUnits = tuple[list[Any], list[ProbeScore], list[Any], list[tuple[list[str], list[str]]]]


def base_units(cand: CandidateConfig, bench: Bench, suites: Suites, bf16: bool, progress: Progress) -> BaseUnits:
    """The probes and bias pairs of the untuned base model (the "before" of forgetting and bias): its suites,
    their scores, and the bias suites with their predictions. They do not depend on the training seed."""
    handle, tell = bench.handle, Tell(progress, cand.name)
    probes = [(p, items, h) for p, items, h in suites.probes if p.model_kind == handle.kind]
    before = [probe_unit(bench, p, items, h, handle.weights_hash, bench.base, bf16, tell, "base model")
              for p, items, h in probes]
    # Bias "before" needs a model that can already do the task: a causal LM zero-shot. An encoder's new head is
    # untrained before tuning, so its before/after change would be noise; encoders are skipped.
    bias = [(b, pairs, h) for b, pairs, h in suites.bias
            if b.benchmark == bench.spec.name and handle.kind == "causal"]
    bias_before = [bias_unit(bench, b, pairs, h, handle.weights_hash, bench.base, bf16, tell, "base model")
                   for b, pairs, h in bias]
    return probes, before, bias, bias_before


def tune_and_score(cand: CandidateConfig, bench: Bench, splits: dict[str, Split], suites: Suites,
                   progress: Progress, choice: tuple[str, dict[str, Any], list[dict[str, Any]]] | None = None,
                   base: BaseUnits | None = None) -> tuple[BenchmarkResult, int, int]:
    """One candidate on one benchmark under one training seed. `choice` (key, record, sweep) is a setting already
    tuned and chosen (across seeds: harness/seeded.py); `base` the base model's units, already scored."""
    spec, handle, cfg = bench.spec, bench.handle, bench.cfg
    bf16 = use_bf16(cfg.recipe.bf16)  # scoring runs under the same precision the recipe trains in
    tell = Tell(progress, cand.name)
    probes, before, bias, bias_before = base or base_units(cand, bench, suites, bf16, progress)
    sweep: list[dict[str, Any]]
    if choice is not None:
        key, chosen, sweep = choice
        tuned = lambda: bench.tuned(key)  # noqa: E731
    elif cand.zero_shot:  # the base model as it is: "after" is the base model, so nothing can be forgotten
        key, chosen, sweep = handle.weights_hash, zero_shot_record(bench), []
        tuned = bench.base
    else:
        key, chosen, sweep = tune(cand, bench, splits, bf16, progress)
        tuned = lambda: bench.tuned(key)  # noqa: E731
    scores, predictions, per_class, latency = {}, {}, {}, None
    for split in (s for s in SCORED_SPLITS if s in splits):
        out = score_unit(bench, key, splits[split], tuned, bf16, tell)
        scores[split] = {m: MetricValue.from_dict(v) for m, v in out["scores"].items()}
        predictions[split] = out["predictions"]
        if out["per_class_f1"] is not None:
            per_class[split] = out["per_class_f1"]
        latency = latency if latency is not None else out["latency_ms"]
    reports = []
    for (p, items, digest), b in zip(probes, before):
        after = b if cand.zero_shot else probe_unit(bench, p, items, digest, key, tuned, bf16, tell, "tuned model")
        reports.append(forgetting_report(p, items, b, after, digest, cfg.bootstrap_resamples, cfg.recipe.seed)
                       | {"files": {"spec": p.path, "data": p.data}})
    bias_reports = []
    for (b, pairs, h), (pa, pb) in zip(bias, bias_before):
        qa, qb = (pa, pb) if cand.zero_shot else bias_unit(bench, b, pairs, h, key, tuned, bf16, tell, "tuned model")
        bias_reports.append({"probe": b.name, "version": b.version, "data_sha256": h,
                             "files": {"spec": b.path, "data": b.data},
                             **bias_report(pa, pb, qa, qb, pairs, cfg.bootstrap_resamples, cfg.recipe.seed)})
    chances, did_learn, why = learning(bench, splits, scores, chosen, sweep)
    result = BenchmarkResult(spec.name, spec.version, spec.task, "ok", "", chosen["learning_rate"],
                             {s: sp.sha256 for s, sp in splits.items()}, scores,
                             TrainResult(**chosen["train"]) if chosen["train"] else None, latency,
                             reports, predictions, per_class, sweep, bias_reports,
                             {"spec": spec.path, **{s: sp.path for s, sp in splits.items()}},
                             None if cand.zero_shot else bench.cache.folder(key), chances, did_learn, why,
                             cand.zero_shot, [] if cand.zero_shot else [cfg.recipe.seed])
    return result, chosen["params"], chosen["trainable_params"]


def learning(bench: Bench, splits: dict[str, Split], scores: dict[str, dict[str, MetricValue]], chosen: dict[str, Any],
             sweep: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], bool | None, str]:
    """Chance per split, and whether the candidate beats it (harness/chance.py). A zero-shot row is judged the
    same way: a base model at chance is worth knowing about too."""
    spec, metric = bench.spec, bench.spec.main_metric
    found = {s: chance(spec, splits[s], metric) for s in ("validation", *SCORED_SPLITS) if s in splits}
    chances = {s: {"value": c.value, "how": c.how} for s, c in found.items() if c is not None}
    test = scores.get("test", {}).get(metric)
    if test is None:
        return chances, None, f"no test {metric}"
    validation = chosen.get("validation")
    if validation is None and chosen.get("train"):
        validation = kept_value(chosen["train"], bench.cfg.recipe.restore_best, "val_metric")
    did, why = learned(metric, test, found.get("test"), validation, found.get("validation"))
    if did is False and chosen.get("train") is not None:
        why += "; " + what_to_try(sweep, chosen["learning_rate"], chosen.get("epochs"))
    return chances, did, why


def zero_shot_record(bench: Bench) -> dict[str, Any]:
    """What a tune record says, for the untuned base model: its size, no training. Kept as a unit so a re-run
    does not load the model to count its parameters."""
    def compute() -> dict[str, Any]:
        params, _ = count_parameters(bench.base())
        return {"params": params}

    out = bench.memo(zero_shot_key(bench), compute)
    return {"learning_rate": None, "epochs": None, "train": None, "validation": None, "params": out["params"],
            "trainable_params": 0}


def probe_unit(bench: Bench, p: ProbeSpec, items: list[ProbeItem], digest: str, model_id: str,
               model: Callable[[], Any], bf16: bool, tell: Tell, which: str) -> ProbeScore:
    def compute() -> dict[str, Any]:
        tell.stage(f"probing {which}: {p.name}")
        return dataclasses.asdict(score_probe(p, items, model(), bench.tokenizer, on_step=tell.step))

    key = scoring_key("probe", model_id, bench, bf16, probe=p.name, version=p.version, probe_kind=p.kind,
                      data=digest, n=len(items))
    out = bench.memo(key, compute)
    return ProbeScore(out["correct"], out["margin"], out["correct_norm"], out["outputs"])


def bias_unit(bench: Bench, b: Any, pairs: list[Any], digest: str, model_id: str, model: Callable[[], Any],
              bf16: bool, tell: Tell, which: str) -> tuple[list[str], list[str]]:
    def compute() -> dict[str, Any]:
        tell.stage(f"bias probe on {which}: {b.name}")
        ex_a, ex_b = render_pair_inputs(bench.spec, pairs)
        m, length = model(), bench.cfg.recipe.max_length
        return {"a": predict(bench.spec, ex_a, m, bench.tokenizer, bench.handle.kind, length, on_step=tell.step)[0],
                "b": predict(bench.spec, ex_b, m, bench.tokenizer, bench.handle.kind, length, on_step=tell.step)[0]}

    out = bench.memo(scoring_key("bias", model_id, bench, bf16, bias=b.name, version=b.version, data=digest), compute)
    return out["a"], out["b"]


def score_unit(bench: Bench, key: str, split: Split, model: Callable[[], Any], bf16: bool,
               tell: Tell) -> dict[str, Any]:
    spec, cfg = bench.spec, bench.cfg

    def compute() -> dict[str, Any]:
        tell.stage(f"scoring {spec.name}/{split.name}")
        m = model()
        scores, preds, ms = _score_split(spec, split, m, bench.tokenizer, bench.handle.kind, cfg, bf16, spec.metrics,
                                         tell)
        refs = [list(ex.references) for ex in split.examples]
        if spec.task == "generation":  # loss and perplexity of the reference text, next to the text metrics
            # bench.memo already runs this under the recipe's precision
            losses, counts = reference_losses(spec, split.examples, m, bench.tokenizer, cfg.recipe.max_length,
                                              on_step=tell.step)
            scores |= score_losses(losses, counts, cfg.bootstrap_resamples, cfg.recipe.seed)
        return {"scores": {name: v.to_dict() for name, v in scores.items()}, "predictions": preds, "latency_ms": ms,
                "per_class_f1": per_class_f1(preds, refs) if spec.task == "classification" else None}

    return bench.memo(scoring_key("score", key, bench, bf16, split=split.name, data=split.sha256,
                                  metrics=list(spec.metrics)), compute)


def tune(cand: CandidateConfig, bench: Bench, splits: dict[str, Split], bf16: bool,
         progress: Progress) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Tune every (learning rate, epochs) setting from the same initial state; keep the best on validation.

    Returns the chosen setting's unit key and its record, and the sweep table (empty without a sweep)."""
    keys, done = train_settings(cand, bench, splits, bf16, progress)
    best, sweep = choose(bench.spec, bench.cfg, [keys], [done])
    bench.kept = {k: v for k, v in bench.kept.items() if k == keys[best]}
    return keys[best], done[keys[best]], sweep


def train_settings(cand: CandidateConfig, bench: Bench, splits: dict[str, Split], bf16: bool,
                   progress: Progress) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Every sweep setting's tune unit under this bench's seed: read from the cache or trained. The unit keys in
    the sweep's order, and their records."""
    spec, cfg = bench.spec, bench.cfg
    settings = cfg.settings(cand)
    keys = [tune_key(bench, splits, lr, epochs) for lr, epochs in settings]
    records = {k: bench.cache.get(k) for k in keys}
    todo = [(k, lr, epochs) for k, (lr, epochs) in zip(keys, settings) if records[k] is None]
    if todo:
        bench.prepare()
        tok, kind, length = bench.tokenizer, bench.handle.kind, cfg.recipe.max_length
        train_items = training_items(spec, splits["train"].examples, tok, kind, length)
        val_items = (training_items(spec, splits["validation"].examples, tok, kind, length)
                     if "validation" in splits else [])
        skipped = metric_while_training(spec, len(val_items), cfg.recipe.eval_metric)  # why not, or ""
        metric = None if skipped else validation_metric(bench, splits["validation"])
        higher = METRICS.get(spec.main_metric).higher_is_better
        initial = bench.trainable_state() if len(todo) > 1 else None  # every setting starts from the same state
        for i, (k, lr, epochs) in enumerate(todo):
            if initial is not None and i > 0:
                bench.load_state(initial)
            progress.stage(cand.name, f"tuning on {spec.name} ({len(train_items)} rows, {epochs} epochs, lr {lr:g})")
            trained = fit(bench.model, train_items, val_items, dataclasses.replace(cfg.recipe, epochs=epochs), lr,
                          tok.pad_token_id, on_step=progress.step, metric=metric, higher_is_better=higher)
            validation = None
            if len(settings) > 1:  # the main metric of the kept weights: fit() measured it when it evaluated it
                validation = kept_value(dataclasses.asdict(trained), cfg.recipe.restore_best, "val_metric")
            if len(settings) > 1 and validation is None:
                progress.stage(cand.name, f"validating lr {lr:g}, {epochs} epochs")
                val = _score_split(spec, splits["validation"], bench.model, tok, kind, cfg, bf16, (spec.main_metric,),
                                   Tell(progress, cand.name))[0]
                validation = val[spec.main_metric].value
            params, trainable = count_parameters(bench.model)
            record: dict[str, Any] = {"learning_rate": lr, "epochs": epochs, "train": dataclasses.asdict(trained),
                                      "validation": validation, "params": params, "trainable_params": trainable,
                                      "peak_rss_mb": peak_rss_mb()}
            records[k] = record
            keep_setting(bench, k, record)
    done = {k: r for k, r in records.items() if r is not None}  # every setting: read from the cache or tuned above
    bench.peaks += [r["peak_rss_mb"] for r in done.values()]
    return keys, done


def choose(spec: BenchmarkSpec, cfg: BakeoffConfig, keys: list[list[str]],
           records: list[dict[str, dict[str, Any]]]) -> tuple[int, list[dict[str, Any]]]:
    """The sweep setting (its index) with the best validation main metric, averaged over the training seeds
    (keys[s][i] is setting i under seed s), and the sweep table (empty without a sweep)."""
    if len(keys[0]) == 1:
        return 0, []
    per_seed = [[records[s][keys[s][i]]["validation"] for s in range(len(keys))] for i in range(len(keys[0]))]
    means = [sum(v) / len(v) for v in per_seed]
    sign = 1 if METRICS.get(spec.main_metric).higher_is_better else -1
    best = max(range(len(means)), key=lambda i: sign * means[i])  # the first of equals wins
    # Every setting on the same validation score: nothing was chosen, and the sweep table must say so. The first
    # setting is still scored, so that the candidate has a row; did-not-learn usually follows (harness/chance.py).
    tied = len({round(m, 12) for m in means}) == 1
    first = records[0]
    sweep = [{"learning_rate": first[k]["learning_rate"], "epochs": first[k]["epochs"],
              "best_step": first[k]["train"].get("best_step"), "validation": means[i],
              "val_loss": kept_value(first[k]["train"], cfg.recipe.restore_best), "chosen": i == best,
              "tied": tied} | ({"seeds": per_seed[i]} if len(keys) > 1 else {}) for i, k in enumerate(keys[0])]
    return best, sweep


def kept_value(train: dict[str, Any], restore_best: bool, key: str = "val_loss") -> float | None:
    """A validation number (`val_loss` or `val_metric`, None when not measured) of the weights fit() returned:
    the best evaluation's when it restored them, else the last evaluation's."""
    curve = train.get("curve") or [{"val_loss": train["val_loss"][-1]}]
    if restore_best:
        at_best = [c.get(key) for c in curve if c.get("step") == train.get("best_step")]
        if at_best:
            return at_best[0]
    return curve[-1].get(key)


def validation_metric(bench: Bench, split: Split) -> Callable[[], float]:
    """The benchmark's main metric of the model being tuned on the validation split, the value alone (no
    interval): what fit() evaluates with the validation loss when recipe.eval_metric asks for it."""
    refs = [list(ex.references) for ex in split.examples]

    def compute() -> float:
        bench.model.eval()
        preds, _ = predict(bench.spec, split.examples, bench.model, bench.tokenizer, bench.handle.kind,
                           bench.cfg.recipe.max_length)
        return score(bench.spec.main_metric, preds, refs, resamples=0).value

    return compute
