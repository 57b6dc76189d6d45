"""The one training loop every tuner shares: dynamic padding, length-grouped batches, loss on answer
tokens only, on the unit's device in its precision (bf16 autocast where the CPU has it; bf16, or fp16 with a grad
scaler, on a GPU), gradient accumulation and checkpointing, validation loss (and, when the caller passes it, the
benchmark's main metric) every epoch or every `eval_every` steps, early stopping on the monitored one
(`recipe.monitor`) and restoring the best evaluation's trainable weights.

Shared prompt prefix (causal LMs): the rows of a batch usually begin with the same tokens (the chat template's
system turn and the benchmark's instruction). Each micro-batch runs that common prefix once, with gradients: where
the prefix and the suffixes add up to at most PACK_TOKENS, as one packed row (the prefix, then every row's suffix,
each suffix attending to the prefix and to itself, positions continuing from the prefix: one forward pass, no
padding); otherwise as one row with the KV cache on, whose keys and values are expanded over the batch without
copying, the suffixes run against them. Either way autograd sums the gradient through the prefix's one
copy of its keys and values over the rows, so the gradient through the prefix is the sum over the batch, as when
every row ran it.
With dropout off the losses and gradients equal the unshared path's within float noise. With dropout on, the
prefix's dropout mask (LoRA dropout, say) is drawn once and shared by every row of the micro-batch, where the
unshared path draws one per row: the same expected loss, a slightly different noise (docs/benchmarks.md measures
it). Where sharing does not apply, the micro-batch takes the unshared path: classifiers (an encoder pools the
whole sequence), a common prefix too short to pay for its own forward pass, a micro-batch too long to pack under
gradient checkpointing (transformers drops the cache inside checkpointed layers, which the expanded layout needs),
a cache that cannot be expanded (sliding-window or recurrent layers).
Rows are right-padded in training, so left padding never arises here. TrainResult.prefix records which path ran."""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F

from harness.config import RecipeConfig
from harness.data.encode import Encoded
from harness.errors import ConfigError, RunFailure
from harness.models.device import Placement, frozen_linears_in_bf16, resolve
from harness.scoring.lm import causal_loss, on_device, pad
from harness.training.shared import PrefixSharing, shared_prefix_loss
from harness.training.watch import Watch

# the main metric on validation, and the validation loss when the metric's own pass computed it (else None)
ValidationMetric = Callable[[], tuple[float, float | None]]


@dataclass(frozen=True)
class TrainResult:
    train_loss: list[float]  # mean loss per epoch (the last one partial when training stopped early)
    val_loss: list[float]  # [0] before training, then after each epoch (the last one at the early stop)
    seconds: float
    tokens: int  # non-padding tokens seen in training
    steps: int
    bf16: bool
    # every evaluation: {step, train_loss (mean since the previous evaluation; None at step 0), val_loss,
    # val_metric (the benchmark's main metric on validation; None when not computed)}
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = 0  # best evaluation by recipe.monitor after training began (kept if recipe.restore_best)
    stopped_early: bool = False
    # [step, mean training loss over the steps since the previous logged one] every `log_every` optimizer steps
    # (Watch: at most about LOGGED_STEPS points a run); empty in units kept before it was recorded
    step_loss: list[list[float]] = field(default_factory=list)
    # tokens the model ran in training: a shared prefix counts once per micro-batch (`tokens` counts every row's)
    tokens_computed: int = 0
    # which path the training micro-batches took (PrefixSharing.record); empty in units kept before it was recorded
    prefix: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def batches(items: Sequence[Encoded], batch_size: int, rng: random.Random, group_by_length: bool) -> list[list[int]]:
    """Index batches; with grouping, similar lengths share a batch (less padding) yet order stays random."""
    idx = list(range(len(items)))
    rng.shuffle(idx)
    if group_by_length:
        mega = batch_size * 32
        grouped = []
        for start in range(0, len(idx), mega):
            grouped += sorted(idx[start:start + mega], key=lambda i: len(items[i].input_ids), reverse=True)
        idx = grouped
    out = [idx[s:s + batch_size] for s in range(0, len(idx), batch_size)]
    rng.shuffle(out)
    return out


def batch_loss(model: Any, items: Sequence[Encoded], pad_id: int,
               sharing: PrefixSharing | None = None) -> tuple[torch.Tensor, int]:
    """Summed loss over answer tokens (causal) or examples (classifier), and how many it covers; with `sharing`, the
    rows' common prefix runs once when that pays (module docstring)."""
    length = sharing.length(model, items) if sharing is not None else 0
    if length:
        assert sharing is not None
        shared = shared_prefix_loss(model, items, pad_id, length)
        if shared is not None:
            sharing.note(items, shared=length)
            return shared
        sharing.cannot_expand(items)
    ids, mask = pad([it.input_ids for it in items], pad_id)
    if isinstance(items[0].labels, int):
        ids, mask, gold = on_device(model, ids, mask, torch.tensor([it.labels for it in items]))
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (batch, n_labels)
        return F.cross_entropy(logits, gold, reduction="sum"), len(items)
    targets, _ = pad([cast("list[int]", it.labels) for it in items], -100)  # a batch is of one kind: causal here
    return causal_loss(model, ids, mask, targets)


@torch.no_grad()
def evaluate_loss(model: Any, items: Sequence[Encoded], pad_id: int, batch_size: int,
                  placement: Placement, share_prefix: bool = True) -> float:
    """Mean loss over `items` in eval mode, each batch's common prefix run once where that pays."""
    if not items:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    sharing = PrefixSharing("" if share_prefix else "turned off")
    for s in range(0, len(order), batch_size * 2):
        with placement.autocast():
            loss, n = batch_loss(model, [items[i] for i in order[s:s + batch_size * 2]], pad_id, sharing)
        total, count = total + float(loss), count + n
    return total / max(count, 1)


def optimizer_and_schedule(params: list[torch.nn.Parameter], recipe: RecipeConfig, learning_rate: float,
                           total_steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (fused on CUDA: one kernel for every parameter) with linear warmup then linear decay to zero at
    `total_steps`."""
    fused = bool(params) and params[0].is_cuda
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=recipe.weight_decay, fused=fused or None)
    warmup = int(total_steps * recipe.warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(model: Any, train: Sequence[Encoded], val: Sequence[Encoded], recipe: RecipeConfig, learning_rate: float,
        pad_id: int, on_step: Any = None, metric: ValidationMetric | None = None,
        higher_is_better: bool = True, placement: Placement | None = None,
        on_stage: Callable[[str], None] | None = None, share_prefix: bool = True) -> TrainResult:
    """Train the model's trainable parameters on `train`, evaluating on `val`. `metric`, when given, returns the
    benchmark's main metric of the current model on validation (leaving it in eval mode) and the validation loss of
    `val` when its pass computed that too (a causal classifier scores the gold label's tokens among the options),
    else None; it runs at each evaluation, under the recipe's precision, before the validation loss (computed
    only when the metric did not give it), and `higher_is_better` is its direction. `placement`: where the
    model is and its precision (default: this CPU under recipe.bf16). `on_stage(what)` says when each evaluation and
    each epoch's training begins (an evaluation with the main metric can take as long as an epoch).
    `share_prefix`: run each micro-batch's common prefix once where that applies (module docstring); False takes
    the unshared path everywhere (the speed benchmark's other arm)."""
    if recipe.monitor == "metric" and val and metric is None:
        raise ConfigError("recipe.monitor is metric, but no validation metric is computed for this benchmark")
    torch.manual_seed(recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RunFailure("the tuner left no trainable parameters")
    run = _Training(model, train, val, recipe, learning_rate, pad_id, params, placement or resolve("cpu", recipe.bf16),
                    share_prefix, metric, on_stage)
    watch = Watch(params, recipe, bool(val), higher_is_better, run.total_steps)
    checkpointing(model, recipe.gradient_checkpointing)
    # frozen fp32 weights cast once, not at every forward (a half-precision base loaded on a GPU has none)
    with frozen_linears_in_bf16(model, run.placement.precision != "fp32", half_dtype(run.placement)):
        watch.record(0, *run.evaluate("before training"))
        val_loss = [watch.curve[0]["val_loss"]]
        train_loss: list[float] = []
        for epoch in range(recipe.epochs):
            mean, stop = run.epoch(epoch, watch, on_step)
            train_loss.append(mean)
            if watch.curve[-1]["step"] != run.steps:  # the end of every epoch is evaluated
                stop = watch.record(run.steps, *run.evaluate(f"after epoch {epoch + 1}"))
            val_loss.append(watch.curve[-1]["val_loss"])
            if stop:
                break
    watch.restore(run.steps)
    checkpointing(model, False)
    model.eval()
    return TrainResult(train_loss, val_loss, run.seconds, run.tokens, run.steps, run.placement.bf16, watch.curve,
                       watch.best_step or run.steps, stopped_early=run.steps < run.total_steps,
                       step_loss=watch.step_loss, tokens_computed=run.sharing.tokens_computed,
                       prefix=run.sharing.record())


class _Training:
    """One fit's optimizer, schedule and counters (steps, tokens, training seconds), its evaluation and its epochs."""

    def __init__(self, model: Any, train: Sequence[Encoded], val: Sequence[Encoded], recipe: RecipeConfig,
                 learning_rate: float, pad_id: int, params: list[torch.nn.Parameter], placement: Placement,
                 share_prefix: bool, metric: ValidationMetric | None, on_stage: Callable[[str], None] | None):
        self.model, self.train, self.val, self.recipe, self.pad_id = model, train, val, recipe, pad_id
        self.learning_rate, self.params, self.placement, self.share_prefix = learning_rate, params, placement, \
            share_prefix
        self.metric, self.on_stage = metric, on_stage
        self.rng = random.Random(recipe.seed)
        self.per_step = recipe.batch_size * recipe.grad_accum  # the effective batch of one optimizer step
        self.total_steps = math.ceil(len(train) / self.per_step) * recipe.epochs
        self.optimizer, self.schedule = optimizer_and_schedule(params, recipe, learning_rate, self.total_steps)
        # gradient checkpointing: transformers drops the cache inside checkpointed layers, so only the packed layout
        # (no cache: one row, a block mask) shares the prefix
        self.sharing = PrefixSharing("" if share_prefix else "turned off", "gradient checkpointing: transformers "
                                     "drops the cache inside checkpointed layers" if recipe.gradient_checkpointing
                                     else "")
        self.scaler = torch.amp.GradScaler(placement.kind) if placement.precision == "fp16" else None
        self.tokens, self.steps, self.seconds = 0, 0, 0.0

    def stage(self, what: str) -> None:
        if self.on_stage:
            self.on_stage(what)

    def evaluate(self, when: str) -> tuple[float, float | None]:
        """(validation loss, main metric); leaves the model in eval mode."""
        if self.val:
            self.stage(f"validating {when}: loss{' and main metric' if self.metric else ''} on {len(self.val)} rows")
        # a forked RNG: evaluating (decoding included) never changes the training randomness that follows
        with torch.random.fork_rng(devices=[]):
            value = loss = None
            if self.metric is not None and self.val:
                self.model.eval()
                with self.placement.autocast():
                    value, loss = self.metric()
            if loss is None:  # the metric's pass did not compute it (or there is no metric)
                loss = evaluate_loss(self.model, self.val, self.pad_id, self.recipe.batch_size, self.placement,
                                     self.share_prefix)
            return loss, None if value is None else float(value)

    def epoch(self, epoch: int, watch: Watch, on_step: Any) -> tuple[float, bool]:
        """One epoch's optimizer steps, evaluated every `eval_every` steps: (its mean loss, stop early)."""
        recipe, stop = self.recipe, False
        self.stage(f"training epoch {epoch + 1} of {recipe.epochs}")
        self.model.train()
        total, count = 0.0, 0
        for batch in batches(self.train, self.per_step, self.rng, recipe.group_by_length):
            start = time.perf_counter()  # training time only: validation passes are not in tokens/s
            items = [self.train[i] for i in batch]
            loss_sum, n = self.step(items, epoch)
            self.seconds += time.perf_counter() - start
            total, count = total + loss_sum, count + n
            watch.add(loss_sum, n)
            self.tokens += sum(len(it.input_ids) for it in items)
            self.steps += 1
            if on_step:  # with this epoch's mean loss so far, and the tokens and seconds trained on so far
                on_step(self.steps, self.total_steps,
                        {"loss": total / max(count, 1), "tokens": self.tokens, "seconds": self.seconds})
            if recipe.eval_every and self.steps % recipe.eval_every == 0:
                stop = watch.record(self.steps, *self.evaluate(f"at step {self.steps}"))
                self.model.train()
                if stop:
                    break
                if self.val:
                    self.stage(f"training epoch {epoch + 1} of {recipe.epochs}, from step {self.steps}")
        return total / max(count, 1), stop

    def step(self, items: list[Encoded], epoch: int) -> tuple[float, int]:
        """One optimizer step on `items`: (summed loss, targets)."""
        loss_sum, n = accumulate(self.model, items, self.pad_id, self.recipe.batch_size, self.placement, self.scaler,
                                 self.sharing)
        if not math.isfinite(loss_sum):
            raise RunFailure(f"loss became {loss_sum / max(n, 1)} at epoch {epoch + 1}, step {self.steps + 1} "
                             f"(learning rate {self.learning_rate:g} too high?)")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, n


def targets_in(items: Sequence[Encoded]) -> int:
    """How many targets the loss of these items averages over: answer tokens (causal; a label at position t is
    predicted from t - 1, so the first never counts), or examples (classifier)."""
    if isinstance(items[0].labels, int):
        return len(items)
    return sum(sum(1 for t in cast("list[int]", it.labels)[1:] if t != -100) for it in items)


def accumulate(model: Any, items: Sequence[Encoded], pad_id: int, micro: int, placement: Placement,
               scaler: Any = None, sharing: PrefixSharing | None = None) -> tuple[float, int]:
    """Gradients of the mean loss over `items`, one backward per micro-batch of `micro` items: each micro-batch's
    summed loss is divided by the targets of all of them, so the gradients add up to the whole batch's mean loss
    (the same arithmetic as one batch, summed in a different order). Each micro-batch runs its own common prefix
    once (with `sharing`). The summed loss and its target count."""
    total = targets_in(items)
    loss_sum, count = 0.0, 0
    for start in range(0, len(items), micro):
        with placement.autocast():
            part, n = batch_loss(model, items[start:start + micro], pad_id, sharing)
        loss = part / max(total, 1)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum, count = loss_sum + part.item(), count + n
    return loss_sum, count


def checkpointing(model: Any, enabled: bool) -> None:
    """Turn transformers' gradient checkpointing on or off (non-reentrant: gradients flow to adapters without
    inputs that require grad, and dropout's random state is replayed in the recomputation)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        if enabled:
            raise RunFailure(f"{type(base).__name__} does not support gradient checkpointing "
                             "(set recipe.gradient_checkpointing: false)")
        return
    if enabled:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif getattr(base, "is_activation_checkpointing" if hasattr(base, "is_activation_checkpointing")
                 else "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()


def half_dtype(placement: Placement) -> torch.dtype:
    return torch.float16 if placement.precision == "fp16" else torch.bfloat16
