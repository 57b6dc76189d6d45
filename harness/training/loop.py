"""The one training loop every tuner shares: dynamic padding, length-grouped batches, loss on answer
tokens only, on the unit's device in its precision (bf16 autocast where the CPU has it; bf16, or fp16 with a grad
scaler, on a GPU), gradient accumulation and checkpointing, validation loss (and, when the caller passes it, the
benchmark's main metric) every epoch or every `eval_every` steps, early stopping on the monitored one
(`recipe.monitor`) and restoring the best evaluation's trainable weights."""
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


def batch_loss(model: Any, items: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, int]:
    """Summed loss over answer tokens (causal) or examples (classifier), and how many it covers."""
    ids, mask = pad([it.input_ids for it in items], pad_id)
    if isinstance(items[0].labels, int):
        ids, mask, gold = on_device(model, ids, mask, torch.tensor([it.labels for it in items]))
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (batch, n_labels)
        return F.cross_entropy(logits, gold, reduction="sum"), len(items)
    targets, _ = pad([cast("list[int]", it.labels) for it in items], -100)  # a batch is of one kind: causal here
    return causal_loss(model, ids, mask, targets)


@torch.no_grad()
def evaluate_loss(model: Any, items: Sequence[Encoded], pad_id: int, batch_size: int,
                  placement: Placement) -> float:
    if not items:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    for s in range(0, len(order), batch_size * 2):
        with placement.autocast():
            loss, n = batch_loss(model, [items[i] for i in order[s:s + batch_size * 2]], pad_id)
        total, count = total + float(loss), count + n
    return total / max(count, 1)


LOGGED_STEPS = 500  # training loss points a run logs: every step of a short run, a mean per window of a long one


class Watch:
    """Validation during training: the step-level curve, the best evaluation so far by the monitored quantity
    (validation loss, or the main metric in its own direction), its trainable weights (copied only when the
    recipe restores them) and how many evaluations have passed without improving."""

    def __init__(self, params: list[torch.nn.Parameter], recipe: RecipeConfig, has_val: bool,
                 higher_is_better: bool = True, total_steps: int = 0):
        self.params, self.recipe, self.has_val = params, recipe, has_val
        self.log_every = max(1, total_steps // LOGGED_STEPS)  # training loss logged at every log_every-th step
        self.step_loss: list[list[float]] = []
        self.steps, self.window_sum, self.window_count = 0, 0.0, 0
        # the monitored quantity times sign is a score where higher is better
        self.sign = 1.0 if recipe.monitor == "metric" and higher_is_better else -1.0
        self.curve: list[dict[str, Any]] = []
        self.best_score, self.best_step, self.waited = -math.inf, 0, 0
        self.best_weights: list[torch.Tensor] | None = None
        self.loss_sum, self.count = 0.0, 0  # training loss since the previous evaluation

    def add(self, loss_sum: float, n: int) -> None:
        """One optimizer step's summed loss over its n targets."""
        self.loss_sum, self.count = self.loss_sum + loss_sum, self.count + n
        self.steps, self.window_sum, self.window_count = (self.steps + 1, self.window_sum + loss_sum,
                                                          self.window_count + n)
        if self.steps % self.log_every == 0:
            self.step_loss.append([self.steps, self.window_sum / max(self.window_count, 1)])
            self.window_sum, self.window_count = 0.0, 0

    def record(self, step: int, val_loss: float, val_metric: float | None = None) -> bool:
        """Log an evaluation; True once `patience` evaluations in a row have not improved the monitored quantity."""
        self.curve.append({"step": step, "train_loss": self.loss_sum / self.count if self.count else None,
                           "val_loss": val_loss, "val_metric": val_metric})
        self.loss_sum, self.count = 0.0, 0
        if step == 0 or not self.has_val:  # the best is a trained state; without validation there is none
            return False
        watched = val_loss if self.recipe.monitor == "loss" else val_metric
        assert watched is not None, "monitor: metric needs a metric at every evaluation (fit checks this)"
        if self.sign * watched > self.best_score:  # a NaN never improves
            self.best_score, self.best_step, self.waited = self.sign * watched, step, 0
            if self.recipe.restore_best:
                self.best_weights = [p.detach().clone() for p in self.params]
            return False
        self.waited += 1
        return 0 < self.recipe.patience <= self.waited

    def restore(self, step: int) -> None:
        """Put the best evaluation's trainable weights back (a no-op when the best is the current state)."""
        if self.best_weights is not None and self.best_step != step:
            with torch.no_grad():
                for p, saved in zip(self.params, self.best_weights):
                    p.copy_(saved)
        self.best_weights = None


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
        pad_id: int, on_step: Any = None, metric: Callable[[], float] | None = None,
        higher_is_better: bool = True, placement: Placement | None = None,
        on_stage: Callable[[str], None] | None = None) -> TrainResult:
    """Train the model's trainable parameters on `train`, evaluating on `val`. `metric`, when given, returns the
    benchmark's main metric of the current model on validation (leaving it in eval mode); it runs after each
    validation loss, under the recipe's precision, and `higher_is_better` is its direction. `placement`: where the
    model is and its precision (default: this CPU under recipe.bf16). `on_stage(what)` says when each evaluation and
    each epoch's training begins (an evaluation with the main metric can take as long as an epoch)."""
    if recipe.monitor == "metric" and val and metric is None:
        raise ConfigError("recipe.monitor is metric, but no validation metric is computed for this benchmark")
    placement = placement or resolve("cpu", recipe.bf16)
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RunFailure("the tuner left no trainable parameters")
    per_step = recipe.batch_size * recipe.grad_accum  # the effective batch of one optimizer step
    total_steps = math.ceil(len(train) / per_step) * recipe.epochs
    optimizer, schedule = optimizer_and_schedule(params, recipe, learning_rate, total_steps)
    watch = Watch(params, recipe, bool(val), higher_is_better, total_steps)

    def stage(what: str) -> None:
        if on_stage:
            on_stage(what)

    def evaluate(when: str) -> tuple[float, float | None]:  # (validation loss, main metric); leaves it in eval mode
        if val:
            stage(f"validating {when}: loss{' and main metric' if metric else ''} on {len(val)} rows")
        # a forked RNG: evaluating (decoding included) never changes the training randomness that follows
        with torch.random.fork_rng(devices=[]):
            loss = evaluate_loss(model, val, pad_id, recipe.batch_size, placement)
            if metric is None or not val:
                return loss, None
            with placement.autocast():
                return loss, float(metric())

    scaler = torch.amp.GradScaler(placement.kind) if placement.precision == "fp16" else None
    checkpointing(model, recipe.gradient_checkpointing)
    # frozen fp32 weights cast once, not at every forward (a half-precision base loaded on a GPU has none)
    with frozen_linears_in_bf16(model, placement.precision != "fp32", half_dtype(placement)):
        watch.record(0, *evaluate("before training"))
        val_loss = [watch.curve[0]["val_loss"]]
        train_loss: list[float] = []
        tokens, steps, seconds, stop = 0, 0, 0.0, False
        for epoch in range(recipe.epochs):
            stage(f"training epoch {epoch + 1} of {recipe.epochs}")
            model.train()
            total, count = 0.0, 0
            for batch in batches(train, per_step, rng, recipe.group_by_length):
                start = time.perf_counter()  # training time only: validation passes are not in tokens/s
                items = [train[i] for i in batch]
                loss_sum, n = accumulate(model, items, pad_id, recipe.batch_size, placement, scaler)
                if not math.isfinite(loss_sum):
                    raise RunFailure(f"loss became {loss_sum / max(n, 1)} at epoch {epoch + 1}, step {steps + 1} "
                                     f"(learning rate {learning_rate:g} too high?)")
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                seconds += time.perf_counter() - start
                step_loss = loss_sum
                total, count = total + step_loss, count + n
                watch.add(step_loss, n)
                tokens += sum(len(it.input_ids) for it in items)
                steps += 1
                if on_step:  # with this epoch's mean loss so far, and the tokens and seconds trained on so far
                    on_step(steps, total_steps, {"loss": total / max(count, 1), "tokens": tokens, "seconds": seconds})
                if recipe.eval_every and steps % recipe.eval_every == 0:
                    stop = watch.record(steps, *evaluate(f"at step {steps}"))
                    model.train()
                    if stop:
                        break
                    if val:
                        stage(f"training epoch {epoch + 1} of {recipe.epochs}, from step {steps}")
            train_loss.append(total / max(count, 1))
            if watch.curve[-1]["step"] != steps:  # the end of every epoch is evaluated
                stop = watch.record(steps, *evaluate(f"after epoch {epoch + 1}"))
            val_loss.append(watch.curve[-1]["val_loss"])
            if stop:
                break
    watch.restore(steps)
    checkpointing(model, False)
    model.eval()
    return TrainResult(train_loss, val_loss, seconds, tokens, steps, placement.bf16, watch.curve,
                       watch.best_step or steps, stopped_early=steps < total_steps,
                       step_loss=watch.step_loss)


def targets_in(items: Sequence[Encoded]) -> int:
    """How many targets the loss of these items averages over: answer tokens (causal; a label at position t is
    predicted from t - 1, so the first never counts), or examples (classifier)."""
    if isinstance(items[0].labels, int):
        return len(items)
    return sum(sum(1 for t in cast("list[int]", it.labels)[1:] if t != -100) for it in items)


def accumulate(model: Any, items: Sequence[Encoded], pad_id: int, micro: int, placement: Placement,
               scaler: Any = None) -> tuple[float, int]:
    """Gradients of the mean loss over `items`, one backward per micro-batch of `micro` items: each micro-batch's
    summed loss is divided by the targets of all of them, so the gradients add up to the whole batch's mean loss
    (the same arithmetic as one batch, summed in a different order). The summed loss and its target count."""
    total = targets_in(items)
    loss_sum, count = 0.0, 0
    for start in range(0, len(items), micro):
        with placement.autocast():
            part, n = batch_loss(model, items[start:start + micro], pad_id)
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
