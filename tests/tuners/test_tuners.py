from __future__ import annotations

import dataclasses
import types

import pytest
import torch

from harness.config import RecipeConfig
from harness.errors import ConfigError
from harness.models import count_parameters, load_model, resolve
from harness.train import fit
from tests.harness.test_train import tiny_model
from tuners import load_all
from tuners.ia3.tune import BERT_FF, ia3_modules
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


def test_ia3_modules_resolve_per_architecture(tiny_llama, tiny_gpt2):
    recipe = RecipeConfig(tuner="ia3")
    llama = load_model(resolve(str(tiny_llama)))
    assert ia3_modules(llama, recipe) == (["k_proj", "v_proj", "down_proj"], ["down_proj"])
    assert ia3_modules(load_model(resolve(str(tiny_gpt2))), recipe) == (["c_attn", "mlp.c_proj"], ["mlp.c_proj"])
    assert ia3_modules(llama, dataclasses.replace(recipe, target_modules="all-linear")) == ("all-linear", ["down_proj"])
    # an explicit list: the feed-forward entries are recognised by name
    assert ia3_modules(llama, dataclasses.replace(recipe, target_modules=["v_proj", "mlp.down_proj"])) == (
        ["v_proj", "mlp.down_proj"], ["mlp.down_proj"])
    unknown = types.SimpleNamespace(config=types.SimpleNamespace(model_type="mamba"))
    with pytest.raises(ConfigError, match="no default modules for model type 'mamba'; set recipe.target_modules"):
        ia3_modules(unknown, recipe)


def ia3_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch, rows, lr", [("llama", 16, 0.1), ("bert", 32, 0.01)])
def test_ia3_trains_only_its_vectors_and_the_head(request, arch, rows, lr):
    # (IA)^3 needs a far higher learning rate than LoRA: its only weights are per-channel scales
    recipe = RecipeConfig(tuner="ia3", epochs=3, bf16="off", max_length=96)
    model, items, val, pad_id = tiny_model(request.getfixturevalue(f"tiny_{arch}"), recipe, rows)
    names = ia3_names(model)
    vectors = {n for n in names if ".ia3_l." in n}
    head = names - vectors
    assert all("classifier.modules_to_save" in n for n in head) and bool(head) == (arch == "bert")
    layers = {n.split(".ia3_l.")[0].split(".")[-1] for n in vectors}  # the module each vector scales
    assert layers == ({"k_proj", "v_proj", "down_proj"} if arch == "llama" else {"key", "value", "dense"})
    if arch == "bert":  # keys, values and the feed-forward output; never the attention output projection
        assert not any("attention.output" in n for n in vectors) and all(
            "attention.self" in n or n.split(".ia3_l.")[0].endswith(".output.dense") for n in vectors)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, items, val, recipe, lr, pad_id)
    assert result.train_loss[2] < result.train_loss[1] < result.train_loss[0]
    assert result.val_loss[-1] < result.val_loss[0]  # 8 validation rows on a random tiny model: not monotone
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == names  # every IA3 vector and head weight moved, nothing else did
    _, trained = count_parameters(model)
    assert trained == sum(p.numel() for n, p in model.named_parameters() if n in names)


def test_ia3_feedforward_regex_skips_attention_output_on_bert():
    import re

    assert re.fullmatch(BERT_FF, "bert.encoder.layer.11.output.dense")
    assert not re.fullmatch(BERT_FF, "bert.encoder.layer.11.attention.output.dense")
