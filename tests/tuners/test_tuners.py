from __future__ import annotations

import dataclasses

import torch

from harness.config import RecipeConfig
from harness.models import count_parameters, load_model, resolve
from tuners import load_all
from tuners.lora.tune import target_modules

TUNERS = load_all()


def lora_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_lora_targets_resolve_per_architecture(tiny_llama, tiny_gpt2, tiny_bert):
    recipe = RecipeConfig()
    assert target_modules(load_model(resolve(str(tiny_llama))), recipe) == ["q_proj", "v_proj"]
    assert target_modules(load_model(resolve(str(tiny_gpt2))), recipe) == ["c_attn"]
    assert target_modules(load_model(resolve(str(tiny_bert)), head_labels=2), recipe) == ["query", "value"]
    assert target_modules(load_model(resolve(str(tiny_llama))), dataclasses.replace(recipe, target_modules="all-linear")) == "all-linear"


def test_lora_on_gpt2_conv1d_and_bert_head(tiny_gpt2, tiny_bert):
    gpt2 = TUNERS.get("lora").prepare(load_model(resolve(str(tiny_gpt2))), RecipeConfig(), "causal")
    assert any("c_attn.lora_A" in n for n, _ in gpt2.named_parameters())
    bert = TUNERS.get("lora").prepare(load_model(resolve(str(tiny_bert)), head_labels=3), RecipeConfig(), "encoder")
    trainable = {n for n, p in bert.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable), "a new head must train with LoRA"


def test_adapters_are_reproducible_whatever_ran_before(tiny_llama):
    recipe = RecipeConfig(seed=3)
    first = lora_weights(TUNERS.get("lora").prepare(load_model(resolve(str(tiny_llama))), recipe, "causal"))
    torch.rand(1000)  # unrelated RNG use between two candidates
    second = lora_weights(TUNERS.get("lora").prepare(load_model(resolve(str(tiny_llama))), recipe, "causal"))
    other = lora_weights(TUNERS.get("lora").prepare(load_model(resolve(str(tiny_llama))), RecipeConfig(seed=4), "causal"))
    assert first.keys() == second.keys() and first
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_full_and_freeze(tiny_llama):
    full = TUNERS.get("full").prepare(load_model(resolve(str(tiny_llama))), RecipeConfig(), "causal")
    total, trainable = count_parameters(full)
    assert trainable == total
    frozen = TUNERS.get("freeze").prepare(load_model(resolve(str(tiny_llama))), RecipeConfig(freeze_keep_last=1), "causal")
    names = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("model.layers.1.", "model.norm.")) for n in names)
    assert count_parameters(frozen)[1] < total
