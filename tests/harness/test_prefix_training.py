"""Training with the shared prompt prefix (harness/training/loop.py): each micro-batch's common prefix runs once, in
one packed row with the suffixes after it (or, for a long micro-batch, as its own pass whose expanded keys and
values the suffixes run against). With dropout off it equals the unshared path (losses and
adapter gradients within float noise) on tiny Llama and GPT-2 models; it falls back to the unshared path where it
does not apply, and TrainResult records which path ran."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM

from harness.config import RecipeConfig, SuiteRef
from harness.data.encode import Encoded
from harness.data.specs import load_benchmark
from harness.models.device import resolve as placement_for
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.tasks import training_items
from harness.training.loop import batch_loss, evaluate_loss, fit
from harness.training.shared import PrefixSharing, shared_length
from tests.conftest import ROOT
from tuners import load_all

LENGTH = 200  # the tiny tokenizer spends about 130 tokens on a row: room for the whole instruction


def rows(folder, n=8):
    """n training rows that fit LENGTH whole (a row cut from the left loses the common prefix), 8 validation rows."""
    tok = load_tokenizer(resolve(str(folder)))
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=2 * n, max_validation=8), ROOT)
    whole = [ex for ex in splits["train"].examples if len(tok(ex.prompt)["input_ids"]) < LENGTH - 8][:n]
    return (training_items(spec, whole, tok, "causal", LENGTH),
            training_items(spec, splits["validation"].examples, tok, "causal", LENGTH), tok.pad_token_id)


def lora(folder, dropout=0.0):
    recipe = RecipeConfig(options={"dropout": dropout}, bf16="off", max_length=LENGTH)
    torch.manual_seed(0)
    model = load_all().get("lora").prepare(load_model(resolve(str(folder))), recipe, "causal")
    with torch.no_grad():  # B starts at zero: give the adapters a say, so their gradients reach the prefix's
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    return model


def loss_and_grads(model, items, pad_id, sharing):
    model.zero_grad()
    loss, n = batch_loss(model, items, pad_id, sharing)
    loss.backward()
    return loss.item(), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def test_shared_length_stops_before_the_first_learned_token():
    a = Encoded([1, 5, 6, 7, 8, 9, 9], [-100, -100, -100, -100, -100, 9, 9])
    b = Encoded([1, 5, 6, 3, 4, 4, 9], [-100, -100, -100, -100, -100, 4, 9])
    assert shared_length([a, b]) == 3  # the common tokens [1 5 6]
    # the prefix's last output predicts the token after it: never a learned one (the answer, or an earlier
    # assistant turn of chat data inside the common tokens)
    c = Encoded([1, 5, 6, 7, 8, 2], [-100, -100, -100, 7, -100, 2])
    assert shared_length([c, Encoded([1, 5, 6, 7, 8, 3, 2], [-100, -100, -100, 7, -100, 3, 2])]) == 2
    # identical rows keep a suffix that predicts every learned token
    assert shared_length([a, a]) == 4
    assert shared_length([a, Encoded([2, 5, 6], [-100, -100, 6])]) == 0


@pytest.mark.parametrize("layout", ["packed", "expanded"])
@pytest.mark.parametrize("kind", ["tiny_llama", "tiny_gpt2"])
def test_shared_prefix_equals_the_unshared_loss_and_gradients(kind, layout, request, monkeypatch):
    """Both layouts of the shared prefix: one packed row (the prefix, then every suffix, a block mask), and, for a
    micro-batch over PACK_TOKENS, the prefix as its own pass with the suffixes against its expanded keys and values."""
    import harness.training.shared as loop

    folder = request.getfixturevalue(kind)
    items, _, pad_id = rows(folder)
    model = lora(folder)
    model.eval()  # GPT-2's own dropout (0.1 in its config) off; gradients still flow
    sharing = PrefixSharing()
    assert shared_length(items) > 60
    if layout == "expanded":
        monkeypatch.setattr(loop, "PACK_TOKENS", 100)  # under the micro-batch's packed length
    packed = []
    real = loop.packed_prefix_loss
    monkeypatch.setattr(loop, "packed_prefix_loss", lambda *args: packed.append(1) or real(*args))
    shared = loss_and_grads(model, items, pad_id, sharing)
    assert packed == ([1] if layout == "packed" else [])
    unshared = loss_and_grads(model, items, pad_id, None)
    assert sharing.record()["path"] == "shared" and shared[1] == unshared[1]
    torch.testing.assert_close(shared[0], unshared[0], rtol=1e-5, atol=0)
    assert set(shared[2]) == set(unshared[2]) and shared[2]
    for name, grad in unshared[2].items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(shared[2][name], grad, rtol=1e-4, atol=1e-6 * grad.abs().max().item())
    # the prefix ran once: the tokens computed are every row's minus the prefix's repeats
    assert sharing.tokens_computed == sum(len(i.input_ids) for i in items) - (len(items) - 1) * shared_length(items)


def test_fit_with_and_without_sharing_agree_and_record_the_path(tiny_llama):
    items, val, pad_id = rows(tiny_llama, n=16)
    recipe = RecipeConfig(options={"dropout": 0.0}, bf16="off", max_length=LENGTH, epochs=1, batch_size=4, grad_accum=2)
    shared = fit(lora(tiny_llama), items, val, recipe, 1e-2, pad_id)
    unshared = fit(lora(tiny_llama), items, val, recipe, 1e-2, pad_id, share_prefix=False)
    torch.testing.assert_close(shared.train_loss, unshared.train_loss, rtol=1e-4, atol=0)
    torch.testing.assert_close(shared.val_loss, unshared.val_loss, rtol=1e-4, atol=0)
    assert shared.val_loss[-1] < shared.val_loss[0]  # it trained
    assert shared.prefix == {"path": "shared", "shared_batches": 4, "batches": 4,
                             "mean_prefix_tokens": shared.prefix["mean_prefix_tokens"], "unshared_why": {}}
    assert shared.prefix["mean_prefix_tokens"] > 60
    assert shared.tokens == unshared.tokens == unshared.tokens_computed
    assert shared.tokens_computed < 0.7 * shared.tokens
    assert unshared.prefix["path"] == "unshared" and unshared.prefix["unshared_why"] == {"turned off": 4}


def test_gradient_checkpointing_shares_only_packed_rows_and_classifiers_do_not_share(tiny_llama, tiny_bert,
                                                                                      monkeypatch):
    """Under gradient checkpointing transformers drops the cache inside checkpointed layers, so the expanded layout
    cannot run, but a packed row needs no cache: it shares, with the loss and gradients of the unshared path; a
    micro-batch too long to pack takes the unshared path and says why."""
    import harness.training.shared as loop

    items, _, pad_id = rows(tiny_llama, n=8)
    recipe = RecipeConfig(options={"dropout": 0.0}, bf16="off", max_length=LENGTH, epochs=1,
                          gradient_checkpointing=True)
    checkpointed = fit(lora(tiny_llama), items, [], recipe, 1e-2, pad_id)
    plain = fit(lora(tiny_llama), items, [], recipe, 1e-2, pad_id, share_prefix=False)
    assert checkpointed.prefix["path"] == "shared" and checkpointed.tokens_computed < 0.7 * checkpointed.tokens
    torch.testing.assert_close(checkpointed.train_loss, plain.train_loss, rtol=1e-4, atol=0)
    monkeypatch.setattr(loop, "PACK_TOKENS", 100)
    result = fit(lora(tiny_llama), items, [], recipe, 1e-2, pad_id)
    assert result.prefix["path"] == "unshared" and result.tokens_computed == result.tokens
    assert list(result.prefix["unshared_why"]) == ["gradient checkpointing: transformers drops the cache inside "
                                                   "checkpointed layers, and the micro-batch is over 100 tokens packed"]
    handle = resolve(str(tiny_bert))
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=8), ROOT)
    encoded = training_items(spec, splits["train"].examples, load_tokenizer(handle), "encoder", 64)
    model = load_all().get("full").prepare(load_model(handle, head_labels=len(spec.labels)),
                                           dataclasses.replace(recipe, tuner="full", options=None), "encoder")
    sharing = PrefixSharing()
    batch_loss(model, encoded, load_tokenizer(handle).pad_token_id, sharing)
    assert sharing.record()["unshared_why"] == {"classifier: the encoder reads the whole sequence": 1}


def test_a_short_prefix_or_a_cache_that_cannot_be_expanded_falls_back(tiny_llama):
    items, _, pad_id = rows(tiny_llama)
    sharing = PrefixSharing()
    # two rows sharing 20 tokens save 20 token computations: less than one more forward pass costs
    short = [items[0], Encoded(items[0].input_ids[:20] + [5] + items[1].input_ids[21:], items[1].labels)]
    batch_loss(lora(tiny_llama), short, pad_id, sharing)
    assert sharing.shared == 0 and "common prefix too short" in next(iter(sharing.why_not))
    # a sliding-window model (its attention drops keys older than the window) does not share: the micro-batch and every
    # later one take the unshared path, with the same loss
    torch.manual_seed(0)
    mistral = MistralForCausalLM(MistralConfig(vocab_size=400, hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               max_position_embeddings=256, sliding_window=64)).eval()
    sharing = PrefixSharing()
    with torch.no_grad():
        first, n = batch_loss(mistral, items, pad_id, sharing)
        again, _ = batch_loss(mistral, items, pad_id, sharing)
        plain, m = batch_loss(mistral, items, pad_id, None)
    assert sharing.record()["path"] == "unshared" and sharing.batches == 2
    assert sharing.fixed == next(iter(sharing.why_not)) and "sliding-window attention (64 tokens)" in sharing.fixed
    torch.testing.assert_close(first, plain, rtol=0, atol=0)
    assert n == m and first.item() == again.item()


def test_validation_loss_shares_the_prefix_with_the_same_value(tiny_llama):
    items, val, pad_id = rows(tiny_llama, n=8)
    model = lora(tiny_llama)
    cpu = placement_for("cpu", "off")
    torch.testing.assert_close(evaluate_loss(model, val, pad_id, 4, cpu),
                               evaluate_loss(model, val, pad_id, 4, cpu, share_prefix=False), rtol=1e-5, atol=0)
