from __future__ import annotations

import dataclasses

import torch

from harness.config import RecipeConfig, SuiteRef
from harness.data import load_benchmark
from harness.models import load_model, load_tokenizer, resolve
from harness.tasks import training_items
from harness.train import fit
from tests.conftest import ROOT
from tuners import load_all


def tiny_run(folder, recipe, rows=16, lr=1e-2):
    handle = resolve(str(folder))
    torch.manual_seed(recipe.seed)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=rows, max_validation=8), ROOT)
    head = len(spec.labels) if handle.kind == "encoder" else None
    model, tok = load_model(handle, head_labels=head), load_tokenizer(handle)
    model = load_all().get(recipe.tuner).prepare(model, recipe, handle.kind)
    items = training_items(spec, splits["train"].examples, tok, handle.kind, recipe.max_length)
    val = training_items(spec, splits["validation"].examples, tok, handle.kind, recipe.max_length)
    return fit(model, items, val, recipe, lr, tok.pad_token_id), items


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
    recipe = dataclasses.replace(RecipeConfig(epochs=2, bf16="off", max_length=64), tuner="full")
    result, _ = tiny_run(tiny_bert, recipe, rows=32, lr=1e-3)
    assert result.train_loss[1] < result.train_loss[0]
