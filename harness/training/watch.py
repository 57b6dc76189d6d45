"""What the training loop watches: the training loss at logged steps, every evaluation (the loss curve), and the
best evaluation by `recipe.monitor`, for early stopping and for restoring the best trainable weights."""
from __future__ import annotations

import math
from typing import Any

import torch

from harness.config import RecipeConfig

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
