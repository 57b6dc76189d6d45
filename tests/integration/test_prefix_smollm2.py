"""The shared-prefix training path on the real SmolLM2-135M-Instruct, rows in their chat-template form: with LoRA
dropout 0, one micro-batch's loss and adapter gradients equal the unshared path's in fp32, and two optimizer steps
under the recipe's bf16 autocast give the same losses within bf16 noise. Eight rows, about half a minute."""
from __future__ import annotations

import pytest
import torch

from harness.config import BUNDLED_DIR, RecipeConfig, SuiteRef
from harness.data.specs import load_benchmark
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.tasks import training_items
from harness.training.loop import PrefixSharing, batch_loss, fit, shared_length
from tuners import load_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm2():
    handle = resolve("smollm2-135m")
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=8), BUNDLED_DIR)
    return handle, training_items(spec, splits["train"].examples, tok, "causal", 192), tok.pad_token_id


def lora(handle, recipe):
    torch.manual_seed(0)
    model = load_all().get("lora").prepare(load_model(handle), recipe, "causal")
    with torch.no_grad():  # B starts at zero: a nonzero B lets the adapters' gradients pass through the prefix
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    return model


def test_smollm2_shared_prefix_equals_the_unshared_path(smollm2):
    handle, items, pad_id = smollm2
    # the chat template's system turn and the instruction: 57 tokens common to every row
    assert shared_length(items) >= 50
    recipe = RecipeConfig(options={"dropout": 0.0}, bf16="off", max_length=192)
    model = lora(handle, recipe)
    model.train()
    grads = []
    for sharing in (PrefixSharing(), None):
        model.zero_grad()
        loss, n = batch_loss(model, items, pad_id, sharing)
        loss.backward()
        grads.append((loss.item(), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}))
    (shared, n_shared, g_shared), (unshared, n_unshared, g_unshared) = grads
    assert n_shared == n_unshared
    torch.testing.assert_close(shared, unshared, rtol=1e-5, atol=0)
    for name, grad in g_unshared.items():
        torch.testing.assert_close(g_shared[name], grad, rtol=1e-3, atol=1e-5 * grad.abs().max().item())

    bf16 = RecipeConfig(options={"dropout": 0.0}, bf16="on", max_length=192, epochs=2, batch_size=4, grad_accum=2,
                        learning_rate=1e-3)
    runs = [fit(lora(handle, bf16), items, [], bf16, 1e-3, pad_id, share_prefix=share) for share in (True, False)]
    assert runs[0].prefix["path"] == "shared" and runs[1].prefix["path"] == "unshared"
    assert runs[0].tokens_computed < 0.6 * runs[0].tokens
    # bf16 autocast rounds the two paths' activations differently
    torch.testing.assert_close(runs[0].train_loss, runs[1].train_loss, rtol=1e-2, atol=0)
