"""The one training loop every tuner shares: dynamic padding, length-grouped batches, loss on answer
tokens only, bf16 autocast where the CPU has it, validation loss (and, when the caller passes it, the
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
from harness.models.device import autocast, frozen_linears_in_bf16, use_bf16
from harness.scoring.lm import causal_loss, pad


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
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (batch, n_labels)
        gold = torch.tensor([it.labels for it in items])
        return F.cross_entropy(logits, gold, reduction="sum"), len(items)
    targets, _ = pad([cast("list[int]", it.labels) for it in items], -100)  # a batch is of one kind: causal here
    return causal_loss(model, ids, mask, targets)


@torch.no_grad()
def evaluate_loss(model: Any, items: Sequence[Encoded], pad_id: int, batch_size: int, bf16: bool) -> float:
    if not items:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    for s in range(0, len(order), batch_size * 2):
        with autocast(bf16):
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
    """AdamW with linear warmup then linear decay to zero at `total_steps`."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=recipe.weight_decay)
    warmup = int(total_steps * recipe.warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(model: Any, train: Sequence[Encoded], val: Sequence[Encoded], recipe: RecipeConfig, learning_rate: float,
        pad_id: int, on_step: Any = None, metric: Callable[[], float] | None = None,
        higher_is_better: bool = True) -> TrainResult:
    """Train the model's trainable parameters on `train`, evaluating on `val`. `metric`, when given, returns the
    benchmark's main metric of the current model on validation (leaving it in eval mode); it runs after each
    validation loss, under the recipe's precision, and `higher_is_better` is its direction."""
    if recipe.monitor == "metric" and val and metric is None:
        raise ConfigError("recipe.monitor is metric, but no validation metric is computed for this benchmark")
    bf16 = use_bf16(recipe.bf16)
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RunFailure("the tuner left no trainable parameters")
    total_steps = math.ceil(len(train) / recipe.batch_size) * recipe.epochs
    optimizer, schedule = optimizer_and_schedule(params, recipe, learning_rate, total_steps)
    watch = Watch(params, recipe, bool(val), higher_is_better, total_steps)

    def evaluate() -> tuple[float, float | None]:  # (validation loss, main metric); leaves the model in eval mode
        # a forked RNG: evaluating (decoding included) never changes the training randomness that follows
        with torch.random.fork_rng(devices=[]):
            loss = evaluate_loss(model, val, pad_id, recipe.batch_size, bf16)
            if metric is None or not val:
                return loss, None
            with autocast(bf16):
                return loss, float(metric())

    with frozen_linears_in_bf16(model, bf16):  # frozen weights cast once, not at every forward
        watch.record(0, *evaluate())
        val_loss = [watch.curve[0]["val_loss"]]
        train_loss: list[float] = []
        tokens, steps, seconds, stop = 0, 0, 0.0, False
        for epoch in range(recipe.epochs):
            model.train()
            total, count = 0.0, 0
            for batch in batches(train, recipe.batch_size, rng, recipe.group_by_length):
                start = time.perf_counter()  # training time only: validation passes are not in tokens/s
                items = [train[i] for i in batch]
                with autocast(bf16):
                    loss_sum, n = batch_loss(model, items, pad_id)
                loss = loss_sum / max(n, 1)
                if not torch.isfinite(loss):
                    raise RunFailure(f"loss became {float(loss)} at epoch {epoch + 1}, step {steps + 1} "
                                     f"(learning rate {learning_rate:g} too high?)")
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                seconds += time.perf_counter() - start
                step_loss = loss_sum.item()
                total, count = total + step_loss, count + n
                watch.add(step_loss, n)
                tokens += sum(len(it.input_ids) for it in items)
                steps += 1
                if on_step:  # with this epoch's mean loss so far, and the tokens and seconds trained on so far
                    on_step(steps, total_steps, {"loss": total / max(count, 1), "tokens": tokens, "seconds": seconds})
                if recipe.eval_every and steps % recipe.eval_every == 0:
                    stop = watch.record(steps, *evaluate())
                    model.train()
                    if stop:
                        break
            train_loss.append(total / max(count, 1))
            if watch.curve[-1]["step"] != steps:  # the end of every epoch is evaluated
                stop = watch.record(steps, *evaluate())
            val_loss.append(watch.curve[-1]["val_loss"])
            if stop:
                break
    watch.restore(steps)
    model.eval()
    return TrainResult(train_loss, val_loss, seconds, tokens, steps, bf16, watch.curve, watch.best_step or steps,
                       stopped_early=steps < total_steps,
                       step_loss=watch.step_loss)
