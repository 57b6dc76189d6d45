"""The one training loop every tuner shares: dynamic padding, length-grouped batches, loss on answer
tokens only, bf16 autocast where the CPU has it, validation loss every epoch."""
from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from harness.config import RecipeConfig
from harness.device import autocast, use_bf16
from harness.encode import Encoded
from harness.errors import RunFailure
from harness.lm import causal_loss, pad


@dataclass(frozen=True)
class TrainResult:
    train_loss: list[float]  # mean loss per epoch
    val_loss: list[float]  # after each epoch; [0] is before training
    seconds: float
    tokens: int  # non-padding tokens seen in training
    steps: int
    bf16: bool

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
    targets, _ = pad([it.labels for it in items], -100)
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


def fit(model: Any, train: Sequence[Encoded], val: Sequence[Encoded], recipe: RecipeConfig, learning_rate: float,
        pad_id: int, on_step: Any = None) -> TrainResult:
    bf16 = use_bf16(recipe.bf16)
    rng = random.Random(recipe.seed)
    torch.manual_seed(recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RunFailure("the tuner left no trainable parameters")
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=recipe.weight_decay)
    warmup = int(total_steps * recipe.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    val_loss = [evaluate_loss(model, val, pad_id, recipe.batch_size, bf16)]
    train_loss: list[float] = []
    tokens, steps, seconds = 0, 0, 0.0
    for epoch in range(recipe.epochs):
        model.train()
        start = time.perf_counter()  # training time only: validation passes are not in tokens/s
        total, count = 0.0, 0
        for batch in batches(train, recipe.batch_size, rng, recipe.group_by_length):
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
            total, count = total + loss_sum.item(), count + n
            tokens += sum(len(it.input_ids) for it in items)
            steps += 1
            if on_step:
                on_step(steps, total_steps)
        seconds += time.perf_counter() - start
        train_loss.append(total / max(count, 1))
        val_loss.append(evaluate_loss(model, val, pad_id, recipe.batch_size, bf16))
    model.eval()
    return TrainResult(train_loss, val_loss, seconds, tokens, steps, bf16)
