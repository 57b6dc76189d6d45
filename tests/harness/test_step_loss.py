"""Training loss at logged steps (harness/training/watch.py Watch): every optimizer step of a short run, the mean
over a window of steps for a long one, so a one-epoch run draws more than its two per-epoch points."""
from __future__ import annotations

import dataclasses

import pytest

from harness.config import RecipeConfig
from harness.training.watch import LOGGED_STEPS, Watch
from tests.harness.test_train import LLAMA, tiny_run


def test_every_step_is_logged_and_equals_the_per_step_curve(tiny_llama):
    result, _ = tiny_run(tiny_llama, dataclasses.replace(LLAMA, eval_every=1))
    assert [s for s, _ in result.step_loss] == [1, 2, 3, 4]  # 2 epochs of 16 rows, batch 8
    # evaluated after every step, the curve's train loss (mean since the previous evaluation) is that step's loss
    assert [loss for _, loss in result.step_loss] == pytest.approx([c["train_loss"] for c in result.curve[1:]],
                                                                   rel=1e-12)


def test_a_long_run_logs_the_mean_over_each_window_of_target_weighted_losses():
    watch = Watch([], RecipeConfig(), has_val=False, total_steps=3 * LOGGED_STEPS)
    assert watch.log_every == 3
    for loss_sum, n in [(2.0, 1), (4.0, 3), (6.0, 4), (1.0, 1)]:  # summed loss over n targets, per step
        watch.add(loss_sum, n)
    assert watch.step_loss == [[3, 12.0 / 8]]  # the 4th step waits for its window to fill
