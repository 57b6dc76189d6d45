from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.config import RecipeConfig, SuiteRef
from harness.errors import ConfigError
from harness.data.specs import load_benchmark
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.tasks import training_items
from harness.models.device import resolve as placement_for
from harness.training.loop import evaluate_loss, fit
from tests.conftest import ROOT
from tuners import load_all


def tiny_model(folder, recipe, rows=16):
    """A tuner-prepared tiny model on capped intents data: (model, train items, validation items, pad id)."""
    handle = resolve(str(folder))
    torch.manual_seed(recipe.seed)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=rows, max_validation=8), ROOT)
    head = len(spec.labels) if handle.kind == "encoder" else None
    model, tok = load_model(handle, head_labels=head), load_tokenizer(handle)
    model = load_all().get(recipe.tuner).prepare(model, recipe, handle.kind)
    items = training_items(spec, splits["train"].examples, tok, handle.kind, recipe.max_length)
    val = training_items(spec, splits["validation"].examples, tok, handle.kind, recipe.max_length)
    return model, items, val, tok.pad_token_id


def tiny_run(folder, recipe, rows=16, lr=1e-2, **kwargs):
    model, items, val, pad_id = tiny_model(folder, recipe, rows)
    return fit(model, items, val, recipe, lr, pad_id, **kwargs), items


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_two_step_tune_is_reproducible_and_learns(tiny_llama):
    recipe = RecipeConfig(epochs=2, batch_size=8, bf16="off", seed=0, max_length=96)
    first, items = tiny_run(tiny_llama, recipe)
    second, _ = tiny_run(tiny_llama, recipe)
    torch.testing.assert_close(first.train_loss, second.train_loss, rtol=0, atol=0)
    torch.testing.assert_close(first.val_loss, second.val_loss, rtol=0, atol=0)
    assert first.steps == 4 and len(first.val_loss) == 3
    assert first.train_loss[1] < first.train_loss[0]
    assert first.tokens == 2 * sum(len(i.input_ids) for i in items)
    # loss is on answer tokens only: with a random tiny model it starts near ln(vocab)
    assert 5.0 < first.val_loss[0] < 6.5


def test_zero_learning_rate_leaves_validation_loss_unchanged(tiny_llama):
    result, _ = tiny_run(tiny_llama, RecipeConfig(epochs=1, bf16="off", max_length=96), lr=0.0)
    torch.testing.assert_close(result.val_loss[0], result.val_loss[1])


def test_answer_only_labels(tiny_llama):
    handle = resolve(str(tiny_llama))
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=4), ROOT)
    item = training_items(spec, splits["train"].examples, tok, "causal", 96)[0]
    answer = [t for t in item.labels if t != -100]
    assert tok.decode(answer[:-1]).strip() == spec.labels[splits["train"].examples[0].target]
    assert answer[-1] == tok.eos_token_id
    assert len(item.labels) == len(item.input_ids)


def test_truncation_keeps_the_answer(tiny_llama):
    handle = resolve(str(tiny_llama))
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=40), ROOT)
    items = training_items(spec, splits["train"].examples, tok, "causal", 24)
    assert all(len(i.input_ids) <= 24 and i.labels[-1] == tok.eos_token_id for i in items)


def test_encoder_classifier_trains(tiny_bert):
    recipe = RecipeConfig(tuner="full", epochs=2, bf16="off", max_length=64)
    result, _ = tiny_run(tiny_bert, recipe, rows=32, lr=1e-3)
    assert result.train_loss[1] < result.train_loss[0]


# Computed before continuous evaluation existed: the default recipe (eval_every=0, patience=0) must not move them.
GOLDEN_TRAIN = [5.998616288347942, 5.969420270221989]
GOLDEN_VAL = [5.985802332560222, 5.965246836344401, 5.951102574666341]
LLAMA = RecipeConfig(epochs=2, batch_size=8, bf16="off", seed=0, max_length=96)


def test_default_recipe_keeps_the_golden_losses(tiny_llama):
    result, _ = tiny_run(tiny_llama, LLAMA)
    torch.testing.assert_close(result.train_loss, GOLDEN_TRAIN, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(result.val_loss, GOLDEN_VAL, rtol=1e-5, atol=1e-5)
    assert [c["step"] for c in result.curve] == [0, 2, 4] and not result.stopped_early
    assert [c["val_loss"] for c in result.curve] == result.val_loss
    assert [c["train_loss"] for c in result.curve] == [None, *result.train_loss]  # one epoch between evaluations


def test_evaluating_every_step_changes_no_training_number(tiny_llama):
    every, _ = tiny_run(tiny_llama, dataclasses.replace(LLAMA, eval_every=1))
    torch.testing.assert_close(every.train_loss, GOLDEN_TRAIN, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(every.val_loss, GOLDEN_VAL, rtol=1e-5, atol=1e-5)
    assert [c["step"] for c in every.curve] == [0, 1, 2, 3, 4]
    assert every.best_step == min(every.curve[1:], key=lambda c: c["val_loss"])["step"]


FULL_HOT = RecipeConfig(tuner="full", epochs=3, batch_size=8, bf16="off", max_length=96, eval_every=1, warmup_ratio=0.0)


def test_early_stopping_stops_when_validation_loss_rises(tiny_llama):
    # full fine-tuning at lr 0.1: validation loss falls for two steps, then rises at step 3
    result, _ = tiny_run(tiny_llama, dataclasses.replace(FULL_HOT, patience=1), lr=0.1)
    losses = [c["val_loss"] for c in result.curve]
    assert result.stopped_early and result.steps == 3 < 6
    assert losses[2] < losses[1] and losses[3] > losses[2] and result.best_step == 2
    assert len(result.train_loss) == 2 and result.val_loss[-1] == losses[-1]  # epoch 2 is partial
    patient, _ = tiny_run(tiny_llama, dataclasses.replace(FULL_HOT, patience=10), lr=0.1)
    assert patient.steps == 6 and not patient.stopped_early


def test_no_improvement_stops_after_exactly_patience_evaluations(tiny_llama):
    result, _ = tiny_run(tiny_llama, dataclasses.replace(FULL_HOT, patience=2), lr=0.0)  # a flat validation loss
    assert result.steps == 3 and result.stopped_early and result.best_step == 1


@pytest.mark.parametrize("restore", [True, False])
def test_restore_best_puts_back_the_best_evaluations_weights(tiny_llama, restore):
    recipe = dataclasses.replace(FULL_HOT, restore_best=restore)
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    seen = {}  # the weights after each step are the weights that step's evaluation saw
    result = fit(model, items, val, recipe, 0.1, pad_id, on_step=lambda step, *_: seen.setdefault(step, trainable(model)))
    best = min(result.curve[1:], key=lambda c: c["val_loss"])
    assert result.best_step == best["step"] == 2 and result.steps == 6
    torch.testing.assert_close(trainable(model), seen[2 if restore else 6], rtol=0, atol=0)
    restored_loss = evaluate_loss(model, val, pad_id, recipe.batch_size, placement_for("cpu", "off"))
    assert (restored_loss == best["val_loss"]) is restore


def test_without_validation_data_nothing_stops_or_restores(tiny_llama):
    recipe = dataclasses.replace(FULL_HOT, patience=1)
    model, items, _, pad_id = tiny_model(tiny_llama, recipe)
    result = fit(model, items, [], recipe, 0.0, pad_id)
    assert result.steps == 6 and not result.stopped_early and result.best_step == 6


@pytest.mark.parametrize("key", ["eval_every", "patience"])
def test_negative_eval_every_or_patience_is_a_config_error(key):
    with pytest.raises(ConfigError, match=f"recipe.{key}"):
        RecipeConfig(**{key: -1})


# ---- the main metric while training (recipe.eval_metric, recipe.monitor) -------------------------------------

def scripted(values):
    """A stand-in for the validation metric: returns the next scripted value at each evaluation (and no loss: the
    loop computes the validation loss itself)."""
    calls = iter(values)
    return lambda: (next(calls), None)


def test_a_loss_from_the_metrics_pass_replaces_the_loops_own(tiny_llama, monkeypatch):
    """When the metric's pass computed the validation loss (a causal classifier scoring the gold label among the
    options), the loop records it and does not run the validation rows again."""
    import harness.training.loop

    ran = []
    monkeypatch.setattr(harness.training.loop, "evaluate_loss", lambda *a, **k: ran.append(1) or 9.0)
    losses = iter([1.5, 1.25, 1.0])
    result, _ = tiny_run(tiny_llama, dataclasses.replace(LLAMA, eval_every=2), metric=lambda: (0.5, next(losses)))
    assert [(c["step"], c["val_loss"], c["val_metric"]) for c in result.curve] == [(0, 1.5, 0.5), (2, 1.25, 0.5),
                                                                                    (4, 1.0, 0.5)]
    assert ran == [] and result.val_loss == [1.5, 1.25, 1.0]  # before training, after each of the 2 epochs


def test_metric_is_recorded_at_every_evaluation(tiny_llama):
    values = [0.1, 0.2, 0.3, 0.4, 0.5]
    result, _ = tiny_run(tiny_llama, dataclasses.replace(LLAMA, eval_every=1), metric=scripted(values))
    assert [c["step"] for c in result.curve] == [0, 1, 2, 3, 4]
    assert [c["val_metric"] for c in result.curve] == values  # step 0 (before training) included
    plain, _ = tiny_run(tiny_llama, LLAMA)
    assert [c["val_metric"] for c in plain.curve] == [None, None, None]  # no metric: recorded as not computed


def test_a_real_metric_does_not_move_training_numbers(tiny_llama):
    """Training randomness (LoRA dropout here) is the same with and without the metric, even one that draws
    random numbers: every evaluation runs on a forked RNG."""
    from harness.scoring.metrics import score
    from harness.scoring.tasks import predict

    recipe = dataclasses.replace(LLAMA, eval_every=1)
    assert recipe.options.dropout > 0
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    handle = resolve(str(tiny_llama))
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=16, max_validation=8), ROOT)
    examples = splits["validation"].examples
    modes = []

    def accuracy():
        modes.append(model.training)
        torch.rand(1000)  # as a sampling decoder would
        preds, _ = predict(spec, examples, model, tok, handle.kind, recipe.max_length)
        return score("accuracy", preds, [list(ex.references) for ex in examples], resamples=0).value, None

    with_metric = fit(model, items, val, recipe, 1e-2, pad_id, metric=accuracy)
    torch.testing.assert_close(with_metric.train_loss, GOLDEN_TRAIN, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_metric.val_loss, GOLDEN_VAL, rtol=1e-5, atol=1e-5)
    without, _ = tiny_run(tiny_llama, recipe)
    assert [c["train_loss"] for c in with_metric.curve] == [c["train_loss"] for c in without.curve]
    assert [c["val_loss"] for c in with_metric.curve] == [c["val_loss"] for c in without.curve]
    metrics = [c["val_metric"] for c in with_metric.curve]
    assert len(metrics) == 5 and all(0.0 <= m <= 1.0 and m * 8 == round(m * 8) for m in metrics)  # 8 items
    assert modes == [False] * 5  # fit hands the metric a model in eval mode


def test_monitor_metric_restores_the_best_metric_weights(tiny_llama):
    # FULL_HOT at lr 0.1: the lowest validation loss is at step 2 (see above); the scripted metric peaks at step 4
    recipe = dataclasses.replace(FULL_HOT, monitor="metric")
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    seen = {}
    values = [0.1, 0.2, 0.3, 0.25, 0.9, 0.5, 0.4]
    result = fit(model, items, val, recipe, 0.1, pad_id, metric=scripted(values),
                 on_step=lambda step, *_: seen.setdefault(step, trainable(model)))
    assert min(result.curve[1:], key=lambda c: c["val_loss"])["step"] == 2
    assert result.best_step == 4 and result.steps == 6 and not result.stopped_early
    torch.testing.assert_close(trainable(model), seen[4], rtol=0, atol=0)
    # lower is better for a loss-like metric: the same script then has its best at step 1
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    lower = fit(model, items, val, recipe, 0.1, pad_id, metric=scripted(values), higher_is_better=False)
    assert lower.best_step == 1


def test_monitor_metric_stops_after_patience_evaluations_without_a_higher_metric(tiny_llama):
    recipe = dataclasses.replace(FULL_HOT, monitor="metric", patience=2)
    # the validation loss falls at steps 1 and 2, but the metric stops rising after step 1
    result, _ = tiny_run(tiny_llama, recipe, lr=0.1, metric=scripted([0.1, 0.5, 0.5, 0.4, 0.9, 0.9, 0.9]))
    assert result.stopped_early and result.steps == 3 and result.best_step == 1


def test_monitor_metric_without_a_metric_is_a_config_error(tiny_llama):
    with pytest.raises(ConfigError, match="recipe.monitor is metric"):
        tiny_run(tiny_llama, dataclasses.replace(FULL_HOT, monitor="metric"))


def test_auto_evaluates_the_metric_only_where_it_is_cheap():
    from harness.scoring.tasks import CHEAP_METRIC_ITEMS, metric_while_training

    intents = load_benchmark(SuiteRef("support_intents"), ROOT)[0]
    summaries = load_benchmark(SuiteRef("ticket_summaries"), ROOT)[0]
    assert summaries.task == "generation"
    assert metric_while_training(intents, 114, "auto") == ""
    assert metric_while_training(intents, CHEAP_METRIC_ITEMS, "auto") == ""
    assert "over 1000 items (this one has 1001" in metric_while_training(intents, CHEAP_METRIC_ITEMS + 1, "auto")
    assert "skips generation" in metric_while_training(summaries, 10, "auto")
    assert metric_while_training(summaries, 10, "on") == metric_while_training(intents, 5000, "on") == ""
    assert "off" in metric_while_training(intents, 10, "off")
    assert "no validation split" in metric_while_training(intents, 0, "on")


def test_frozen_linears_are_bf16_inside_the_block_and_the_originals_come_back(tiny_llama):
    from harness.models.device import frozen_linears_in_bf16

    model, *_ = tiny_model(tiny_llama, dataclasses.replace(LLAMA, tuner="lora"))
    before = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    embedding = model.get_input_embeddings()
    with frozen_linears_in_bf16(model, True):
        frozen = [m.weight for m in linears if not m.weight.requires_grad]
        trained = [m.weight for m in linears if m.weight.requires_grad]
        assert frozen and trained
        assert all(w.dtype == torch.bfloat16 for w in frozen) and all(w.dtype == torch.float32 for w in trained)
        assert embedding.weight.dtype == torch.float32  # a tied head's copy leaves the embedding in fp32
    after = dict(model.named_parameters())
    assert after.keys() == before.keys()
    for name, (param, values) in before.items():
        assert after[name] is param and torch.equal(param, values), name


@pytest.mark.parametrize("tuner", ["lora", "ia3", "freeze"])
def test_bf16_copies_of_frozen_weights_change_no_training_number(tiny_llama, monkeypatch, tuner):
    """Autocast rounds fp32 weights to the same bf16 values the copy holds: losses and weights are identical."""
    import contextlib

    import harness.training.loop

    recipe = dataclasses.replace(LLAMA, tuner=tuner, options=None, bf16="on", eval_every=1)
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    copied = fit(model, items, val, recipe, 1e-2, pad_id)
    weights = trainable(model)
    monkeypatch.setattr(harness.training.loop, "frozen_linears_in_bf16", lambda model, enabled, dtype=None: contextlib.nullcontext())
    model, items, val, pad_id = tiny_model(tiny_llama, recipe)
    recast = fit(model, items, val, recipe, 1e-2, pad_id)
    assert copied.bf16 and copied.curve == recast.curve and copied.train_loss == recast.train_loss
    for name, value in trainable(model).items():
        assert torch.equal(weights[name], value), name
