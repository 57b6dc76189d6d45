"""`compute(unit, inputs)`: one unit of the plan, from its description and its inputs' outputs.

Every executor calls this same function; it is the only place a model is trained or scored. An output is a
JSON-able record, plus, for a tune unit, the trainable tensors and the peft adapter folder's files. Where it is
kept (the unit cache of this process, a store the workers share, or the driver's cache after Ray's object store
carried it back) is the executor's choice; `keep` writes it whole or not at all.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import interrupts
from harness.config import BakeoffConfig, CandidateConfig
from harness.data.specs import BenchmarkSpec, Split
from harness.errors import RunFailure
from harness.execution.plan import Unit, scoring_unit_key
from harness.execution.suites import Benchmark, Suites
from harness.execution.workspace import Workspace
from harness.models.device import (
    accelerator_peak,
    frozen_linears_in_bf16,
    peak_rss_mb,
    reset_peak_gpu,
    reset_peak_rss,
)
from harness.models.loading import ModelHandle, count_parameters
from harness.results.model import MetricScore
from harness.scoring.bias import render_pair_inputs
from harness.scoring.lm import Tokens
from harness.scoring.metrics import METRICS, per_class_f1, score, score_losses
from harness.scoring.probes import score_probe
from harness.scoring.tasks import metric_while_training, predict, reference_losses, training_items, validation_answers
from harness.storage.units import UnitCache
from harness.training.loop import ValidationMetric, fit, half_dtype


class Progress(Protocol):
    def stage(self, candidate: str, what: str) -> None: ...
    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None: ...


class Quiet:
    def stage(self, candidate: str, what: str) -> None:
        pass

    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None:
        pass


QUIET = Quiet()  # the default progress: it keeps no state, so one instance serves every call


@dataclass(frozen=True)
class Context:
    """What every unit may read: the config, the suites as read on the driver, the resolved models."""

    cfg: BakeoffConfig
    suites: Suites
    handles: dict[str, ModelHandle]

    def candidate(self, name: str) -> CandidateConfig:
        return next(c for c in self.cfg.candidates if c.name == name)

    def benchmark(self, name: str) -> Benchmark:
        return self.suites.benchmarks[name]


@dataclass
class Output:
    record: dict[str, Any]
    tensors: dict[str, Any] | None = None  # tune: the trainable tensors, when they travel in memory
    adapter: dict[str, bytes] = field(default_factory=dict)  # tune: the peft adapter folder's files
    key: str | None = None  # the unit's key (set by the executor; none for select)
    reused: bool = False  # read from a unit store, not computed


def key_of(unit: Unit, inputs: dict[str, Output], ctx: Context) -> str | None:
    """The unit's key: from the plan, or (tuned-model units) from the setting its select input chose."""
    if unit.key is not None or unit.kind == "select":
        return unit.key
    return scoring_unit_key(unit, chosen_key(unit, inputs), ctx.suites, ctx.cfg.bootstrap_resamples)


def chosen_key(unit: Unit, inputs: dict[str, Output]) -> str:
    return str(inputs[unit.inputs[0]].record["chosen"][str(unit.seed)])


def keep(cache: UnitCache, key: str, out: Output) -> None:
    """Keep a finished unit in `cache`: its record, and a tune unit's tensors and adapter folder."""
    def write(folder: Path) -> None:
        from safetensors.torch import save_file

        if out.tensors is not None:
            save_file(out.tensors, str(folder / "trainable.safetensors"))
        for name, blob in out.adapter.items():  # loadable with PeftModel.from_pretrained(base, folder/adapter)
            path = folder / "adapter" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)

    cache.put(key, out.record, write if out.tensors is not None else None)


def compute(unit: Unit, inputs: dict[str, Output], ctx: Context, ws: Workspace, cache: UnitCache,
            progress: Progress = QUIET, in_memory: bool = False) -> Output:
    """Run one unit. `in_memory`: a tune unit's tensors are copied to travel on (no unit store will hold them);
    else they are views, to be written once and read back from the store."""
    tell = Tell(progress, unit.candidate)
    started = time.perf_counter()
    out = _compute(unit, inputs, ctx, ws, cache, tell, in_memory)
    if unit.kind != "select":  # its wall time on its device: a device-hours budget counts it (results/rounds.py)
        out.record["device_seconds"] = time.perf_counter() - started
        out.record["device"] = ws.placement.kind
        if ws.placement.kind == "cuda":  # the cost column's GPU-seconds
            out.record["gpu_seconds"] = out.record["device_seconds"]
    return out


def _compute(unit: Unit, inputs: dict[str, Output], ctx: Context, ws: Workspace, cache: UnitCache, tell: Tell,
             in_memory: bool) -> Output:
    reset_peak_rss()  # each unit's record says the memory peak while it ran (resident set, and GPU)
    reset_peak_gpu()
    if unit.kind == "select":
        return Output(select(unit, inputs, ctx))
    if ws.model is None:  # the unit's first use of the model loads it: seconds, or minutes for a large one
        tell.stage(f"loading the model ({ws.handle.architecture}, {ws.placement.device})")
    if unit.kind == "tune":
        return tune(unit, ctx, ws, tell, in_memory)
    with ws.placement.autocast():
        if unit.kind == "zero-shot":  # its size, no training: kept so a re-run does not load the model to count
            record: dict[str, Any] = {"params": count_parameters(ws.base())[0]}
        else:
            with contextlib.ExitStack() as unit_scope:
                model = _half_copies(_model(unit, inputs, ws, cache), ws, unit_scope)
                record = {"score": score_split, "probe": probe, "bias": bias}[unit.kind](unit, ctx, ws, model, tell)
    return Output(record | {"peak_rss_mb": peak_rss_mb(), **accelerator_peak()})


@dataclass(frozen=True)
class Tell:
    """One candidate's progress: a line per stage, a bar per loop."""

    progress: Progress
    candidate: str

    def stage(self, what: str) -> None:
        self.progress.stage(self.candidate, what)

    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None:
        interrupts.check()  # every training step and scoring batch passes here
        self.progress.step(done, total, info)


def _half_copies(load: Callable[[], Any], ws: Workspace, scope: contextlib.ExitStack) -> Callable[[], Any]:
    """`load`, and from its first call until `scope` ends, every linear weight of the model it returns as a bf16 copy
    (on a CPU under bf16 autocast): no gradient flows in a scoring unit, and autocast
    rounds the same weights to the same values on every pass (under inference mode it caches none), so the scores
    are bit-identical and each pass skips re-casting the weights (harness/models/device.py)."""
    copied: list[Any] = []

    def loaded() -> Any:
        model = load()
        if not any(model is m for m in copied):
            # on a CPU only: an accelerator re-casts fast, and copies of a fully tuned model could not fit beside it
            half = ws.placement.precision != "fp32" and not ws.placement.accelerated
            scope.enter_context(frozen_linears_in_bf16(model, half, half_dtype(ws.placement), trainable=True))
            copied.append(model)
        return model

    return loaded


def _model(unit: Unit, inputs: dict[str, Output], ws: Workspace, cache: UnitCache) -> Callable[[], Any]:
    """The model a scoring unit runs: the base, or the selected tuned setting of its seed. An adapter candidate
    has no tune units: its scores and its "after" probes run with its adapter on, its base probes without."""
    if ws.handle.adapter and (unit.tuned or unit.kind == "score"):
        return ws.adapted
    if not unit.tuned:
        return ws.base
    key = chosen_key(unit, inputs)
    tuned = next((inputs[i] for i in unit.inputs[1:] if inputs[i].key == key), None)

    def tensors() -> dict[str, Any]:
        if tuned is not None and tuned.tensors is not None:
            return tuned.tensors
        if cache.root is None:
            raise RunFailure(f"the tensors of {key} are neither in memory nor in a unit store")
        return cache.tensors(key)

    return lambda: ws.tuned(key, tensors)


def score_split(unit: Unit, ctx: Context, ws: Workspace, model: Callable[[], Any], tell: Tell) -> dict[str, Any]:
    bench, recipe = ctx.benchmark(unit.benchmark), unit.recipe
    spec, split = bench.spec, bench.splits[unit.split or ""]
    m = model()  # loaded before the stage line: a load is timed as the "loading the model" stage, not as scoring
    tell.stage(f"scoring {spec.name}/{split.name}")
    tokens = Tokens()  # tokens in the data and through the model, and the path each call took (the cost column)
    scores, preds, ms = score_examples(spec, split, m, ws, recipe, ctx.cfg.bootstrap_resamples, spec.metrics, tell,
                                       tokens)
    refs = [list(ex.references) for ex in split.examples]
    if spec.task == "generation":  # loss and perplexity of the reference text, next to the text metrics
        losses, counts = reference_losses(spec, split.examples, m, ws.tokenizer, recipe.max_length, on_step=tell.step,
                                          tokens=tokens)
        scores |= score_losses(losses, counts, ctx.cfg.bootstrap_resamples, recipe.seed)
    return {"scores": {name: v.to_json() for name, v in scores.items()}, "predictions": preds, "latency_ms": ms,
            "per_class_f1": per_class_f1(preds, refs) if spec.task == "classification" else None,
            "tokens": tokens.to_dict()}


def score_examples(spec: BenchmarkSpec, split: Split, model: Any, ws: Workspace, recipe: Any, resamples: int,
                   metrics: tuple[str, ...], tell: Tell,
                   tokens: Tokens | None = None) -> tuple[dict[str, MetricScore], list[str], float]:
    preds, seconds_per_item = predict(spec, split.examples, model, ws.tokenizer, ws.handle.kind, recipe.max_length,
                                      on_step=tell.step, tokens=tokens)
    refs = [list(ex.references) for ex in split.examples]
    return {m: score(m, preds, refs, resamples, recipe.seed) for m in metrics}, preds, seconds_per_item * 1000


def probe(unit: Unit, ctx: Context, ws: Workspace, model: Callable[[], Any], tell: Tell) -> dict[str, Any]:
    p = ctx.suites.probes[unit.suite or ""]
    m = model()  # as in score_split
    tell.stage(f"probing {'tuned' if unit.tuned else 'base'} model: {p.name}")
    tokens = Tokens()  # as in score_split (a paraphrase or lm-eval task probe counts none)
    return dataclasses.asdict(score_probe(p.spec, p.items, m, ws.tokenizer, on_step=tell.step, tokens=tokens)) | {
        "tokens": tokens.to_dict()}


def bias(unit: Unit, ctx: Context, ws: Workspace, model: Callable[[], Any], tell: Tell) -> dict[str, Any]:
    b, spec = ctx.suites.bias[unit.suite or ""], ctx.benchmark(unit.benchmark).spec
    m, length = model(), unit.recipe.max_length  # as in score_split
    tell.stage(f"bias probe on {'tuned' if unit.tuned else 'base'} model: {b.name}")
    ex_a, ex_b = render_pair_inputs(spec, b.pairs)
    tokens = Tokens()  # both sides, as in score_split
    return {"a": predict(spec, ex_a, m, ws.tokenizer, ws.handle.kind, length, on_step=tell.step, tokens=tokens)[0],
            "b": predict(spec, ex_b, m, ws.tokenizer, ws.handle.kind, length, on_step=tell.step, tokens=tokens)[0],
            "tokens": tokens.to_dict()}


def tune(unit: Unit, ctx: Context, ws: Workspace, tell: Tell, in_memory: bool) -> Output:
    """Fine-tune one setting from the seeded initial state; its record, tensors and adapter files."""
    bench, recipe = ctx.benchmark(unit.benchmark), unit.recipe
    spec, splits, settings = bench.spec, bench.splits, ctx.cfg.settings(ctx.candidate(unit.candidate))
    lr, epochs = unit.learning_rate or 0.0, unit.epochs or 0
    model = ws.fresh()
    train_items, val_items, metric = _training_rows(unit, spec, splits, ws, recipe, tell)
    tell.stage(f"tuning on {spec.name} ({len(train_items)} rows, {epochs} epochs, lr {lr:g})")
    higher = METRICS.get(spec.main_metric).higher_is_better
    trained = fit(model, train_items, val_items, dataclasses.replace(recipe, epochs=epochs), lr,
                  ws.tokenizer.pad_token_id, on_step=tell.step, metric=metric, higher_is_better=higher,
                  placement=ws.placement, on_stage=lambda what: tell.stage(f"tuning on {spec.name} ({what})"))
    train = dataclasses.asdict(trained)
    validation = None
    if len(settings) > 1:  # the main metric of the kept weights: fit() measured it when it evaluated it
        validation = kept_value(train, recipe.restore_best, "val_metric")
        if validation is None:
            tell.stage(f"validating lr {lr:g}, {epochs} epochs")
            with ws.placement.autocast():
                val = score_examples(spec, splits["validation"], model, ws, recipe, ctx.cfg.bootstrap_resamples,
                                     (spec.main_metric,), tell)[0]
            validation = val[spec.main_metric].value
    params, trainable = count_parameters(model)
    ws.trained(unit.key or "")
    record = {"learning_rate": lr, "epochs": epochs, "train": train, "validation": validation, "params": params,
              "trainable_params": trainable, "peak_rss_mb": peak_rss_mb(), **accelerator_peak()}
    return Output(record, ws.trainable_state(copy=in_memory), _adapter_files(model), unit.key)


def _training_rows(unit: Unit, spec: BenchmarkSpec, splits: dict[str, Split], ws: Workspace, recipe: Any,
                   tell: Tell) -> tuple[list[Any], list[Any], ValidationMetric | None]:
    """Tokenised training and validation rows (once per workspace), and the validation metric fit() evaluates
    when recipe.eval_metric asks for it."""
    if "rows" not in ws.memos:
        tok, kind, length = ws.tokenizer, ws.handle.kind, recipe.max_length
        train_items = training_items(spec, splits["train"].examples, tok, kind, length)
        val_items = training_items(spec, splits["validation"].examples, tok, kind, length) \
            if "validation" in splits else []
        ws.memos["rows"] = train_items, val_items
    train_items, val_items = ws.memos["rows"]
    skipped = metric_while_training(spec, len(val_items), recipe.eval_metric)  # why not, or ""
    metric = None if skipped else validation_metric(spec, splits["validation"], ws, recipe, val_items, tell.step)
    return train_items, val_items, metric


def validation_metric(spec: BenchmarkSpec, split: Split, ws: Workspace, recipe: Any, rows: list[Any],
                      on_step: Any = None) -> ValidationMetric:
    """The benchmark's main metric of the model being tuned on the validation split (the value alone), and the
    validation loss of `rows` (the split's training items) when the same scoring pass computed it (a causal
    classifier: harness/scoring/tasks.py validation_answers), else None."""
    refs = [list(ex.references) for ex in split.examples]

    def compute_metric() -> tuple[float, float | None]:
        ws.model.eval()
        preds, loss = validation_answers(spec, split.examples, ws.model, ws.tokenizer, ws.handle.kind,
                                         recipe.max_length, rows, on_step=on_step)
        return score(spec.main_metric, preds, refs, resamples=0).number, loss

    return compute_metric


def _adapter_files(model: Any) -> dict[str, bytes]:
    """A standard peft adapter folder, as bytes, when peft made the model."""
    if not hasattr(model, "peft_config"):
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return {str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}


def select(unit: Unit, inputs: dict[str, Output], ctx: Context) -> dict[str, Any]:
    """The sweep setting with the best validation main metric, averaged over the training seeds, the sweep
    table (empty without a sweep), and each seed's unit key of that setting."""
    spec = ctx.benchmark(unit.benchmark).spec
    seeds = unit.seeds or ctx.cfg.recipe.seed_values  # it reads every seed's tune units, seed by seed
    n = len(unit.inputs) // len(seeds)
    ids = [[unit.inputs[s * n + i] for i in range(n)] for s in range(len(seeds))]
    records = [{i: inputs[i].record for i in row} for row in ids]
    best, sweep = choose(spec.main_metric, ctx.cfg.recipe.restore_best, ids, records)
    return {"best": best, "sweep": sweep,
            "chosen": {str(seed): inputs[ids[s][best]].key for s, seed in enumerate(seeds)}}


def choose(metric: str, restore_best: bool, keys: list[list[str]],
           records: list[dict[str, dict[str, Any]]]) -> tuple[int, list[dict[str, Any]]]:
    """The sweep setting (its index) with the best mean validation score (keys[s][i]: setting i under seed s)."""
    if len(keys[0]) == 1:
        return 0, []
    per_seed = [[records[s][keys[s][i]]["validation"] for s in range(len(keys))] for i in range(len(keys[0]))]
    means = [sum(v) / len(v) for v in per_seed]
    sign = 1 if METRICS.get(metric).higher_is_better else -1
    best = max(range(len(means)), key=lambda i: sign * means[i])  # the first of equals wins
    # Every setting on the same validation score: nothing was chosen, and the sweep table must say so. The first
    # setting is still scored, so that the candidate has a row; did-not-learn usually
    # follows (harness/scoring/chance.py).
    tied = len({round(m, 12) for m in means}) == 1
    first = records[0]
    return best, [{"learning_rate": first[k]["learning_rate"], "epochs": first[k]["epochs"],
                   "best_step": first[k]["train"].get("best_step"), "validation": means[i],
                   "val_loss": kept_value(first[k]["train"], restore_best), "chosen": i == best,
                   "tied": tied} | ({"seeds": per_seed[i]} if len(keys) > 1 else {}) for i, k in enumerate(keys[0])]


def kept_value(train: dict[str, Any], restore_best: bool, key: str = "val_loss") -> float | None:
    """A validation number (`val_loss` or `val_metric`, None when not measured) of the weights fit() returned:
    the best evaluation's when it restored them, else the last evaluation's."""
    curve = train.get("curve") or [{"val_loss": train["val_loss"][-1]}]
    if restore_best:
        at_best = [c.get(key) for c in curve if c.get("step") == train.get("best_step")]
        if at_best:
            return at_best[0]
    return curve[-1].get(key)
