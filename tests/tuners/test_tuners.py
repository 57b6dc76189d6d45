from __future__ import annotations

import types

import pytest
import torch

from harness.config import RecipeConfig
from harness.errors import ConfigError
from harness.models.loading import count_parameters, load_model, resolve
from harness.training.loop import fit
from tests.harness.test_train import tiny_model
from tuners import load_all
from tuners.ia3.config import IA3Options
from tuners.ia3.tune import BERT_FF, ia3_modules
from tuners.lora.config import LoraOptions
from tuners.lora.tune import target_modules

TUNERS = load_all()


def lora_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_lora_targets_resolve_per_architecture(tiny_llama, tiny_gpt2, tiny_bert):
    recipe = LoraOptions()
    assert target_modules(load_model(resolve(str(tiny_llama))), recipe) == ["q_proj", "v_proj"]
    assert target_modules(load_model(resolve(str(tiny_gpt2))), recipe) == ["c_attn"]
    assert target_modules(load_model(resolve(str(tiny_bert)), head_labels=2), recipe) == ["query", "value"]
    all_linear = LoraOptions(target_modules="all-linear")
    assert target_modules(load_model(resolve(str(tiny_llama))), all_linear) == "all-linear"


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
    keep_one = RecipeConfig(tuner="freeze", options={"freeze_keep_last": 1})
    frozen = TUNERS.get("freeze").prepare(load_model(resolve(str(tiny_llama))), keep_one, "causal")
    names = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("model.layers.1.", "model.norm.")) for n in names)
    assert count_parameters(frozen)[1] < total


def test_ia3_modules_resolve_per_architecture(tiny_llama, tiny_gpt2):
    recipe = IA3Options()
    llama = load_model(resolve(str(tiny_llama)))
    assert ia3_modules(llama, recipe) == (["k_proj", "v_proj", "down_proj"], ["down_proj"])
    assert ia3_modules(load_model(resolve(str(tiny_gpt2))), recipe) == (["c_attn", "mlp.c_proj"], ["mlp.c_proj"])
    assert ia3_modules(llama, IA3Options(target_modules="all-linear")) == ("all-linear", ["down_proj"])
    # an explicit list: the feed-forward entries are recognised by name
    assert ia3_modules(llama, IA3Options(target_modules=["v_proj", "mlp.down_proj"])) == (
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


# --- targets on every architecture with defaults: built tiny from transformers configs -------------------------

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=100,
            max_position_embeddings=64)
DECODER = dict(TINY, num_key_value_heads=2, head_dim=8)
CONFIGS = {
    "llama": DECODER, "mistral": DECODER, "qwen2": DECODER, "qwen3": DECODER, "gemma": DECODER, "gemma2": DECODER,
    "gemma3_text": DECODER, "phi3": dict(TINY, pad_token_id=0), "gpt_neox": dict(TINY, rotary_pct=1.0),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=4, vocab_size=100, n_positions=64),
    "opt": dict(TINY, ffn_dim=64, word_embed_proj_dim=32),
    "bert": TINY, "roberta": TINY, "xlm-roberta": TINY, "electra": TINY, "mpnet": TINY,
    "distilbert": dict(dim=32, hidden_dim=64, n_layers=2, n_heads=4, vocab_size=100, max_position_embeddings=64),
}
ENCODERS = {"bert", "roberta", "xlm-roberta", "electra", "mpnet", "distilbert"}
LLAMA_LIKE = ({"self_attn.q_proj", "self_attn.v_proj"}, {"self_attn.k_proj", "self_attn.v_proj"}, {"mlp.down_proj"})
BERT_LIKE = ({"attention.self.query", "attention.self.value"}, {"attention.self.key", "attention.self.value"},
             {"output.dense"})
# per model type, written from each architecture's module names: (LoRA targets: attention query and value;
# IA3 output-scaled: attention keys and values; IA3 input-scaled: the feed-forward down projection), per block
EXPECTED = {
    **{t: LLAMA_LIKE for t in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")},
    "phi3": ({"self_attn.qkv_proj"}, {"self_attn.qkv_proj"}, {"mlp.down_proj"}),  # fused q, k, v
    "gpt2": ({"attn.c_attn"}, {"attn.c_attn"}, {"mlp.c_proj"}),  # fused Conv1D; attn.c_proj is not feed-forward
    "gpt_neox": ({"attention.query_key_value"}, {"attention.query_key_value"}, {"mlp.dense_4h_to_h"}),
    "opt": ({"self_attn.q_proj", "self_attn.v_proj"}, {"self_attn.k_proj", "self_attn.v_proj"}, {"fc2"}),
    **{t: BERT_LIKE for t in ("bert", "roberta", "xlm-roberta", "electra")},
    "mpnet": ({"attention.attn.q", "attention.attn.v"}, {"attention.attn.k", "attention.attn.v"}, {"output.dense"}),
    "distilbert": ({"attention.q_lin", "attention.v_lin"}, {"attention.k_lin", "attention.v_lin"}, {"ffn.lin2"}),
}


def build_from_config(model_type: str):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    if model_type in ENCODERS:
        return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, num_labels=3,
                                                                                   **CONFIGS[model_type]))
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **CONFIGS[model_type]))


def per_block(names: list[str]) -> tuple[set[str], int]:
    """Module names with their block prefix dropped ('...layers.1.self_attn.q_proj' -> 'self_attn.q_proj'), and how
    many blocks they come from."""
    import re

    parts = [re.match(r".*?\.(\d+)\.(.*)", n) for n in names]
    assert all(parts), names  # every adapted module sits inside a numbered block
    return {m.group(2) for m in parts}, len({m.group(1) for m in parts})


def test_every_architecture_with_defaults_is_listed_here():
    from tuners.ia3.tune import MODULES
    from tuners.lora.tune import ATTENTION_QV

    # gemma3 is multimodal (a vision tower beside gemma3_text): too large to build here
    assert set(ATTENTION_QV) - {"gemma3"} == set(MODULES) - {"gemma3"} == set(EXPECTED)


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_default_targets_are_the_intended_modules_of_every_block(model_type):
    from peft.tuners.ia3 import IA3Layer
    from peft.tuners.lora import LoraLayer

    kind = "encoder" if model_type in ENCODERS else "causal"
    lora_qv, ia3_out, ia3_in = EXPECTED[model_type]
    lora = TUNERS.get("lora").prepare(build_from_config(model_type), RecipeConfig(), kind)
    adapted = [n for n, m in lora.named_modules() if isinstance(m, LoraLayer)]
    assert per_block(adapted) == (lora_qv, 2)
    assert len(adapted) == 2 * len(lora_qv)
    ia3 = TUNERS.get("ia3").prepare(build_from_config(model_type), RecipeConfig(tuner="ia3"), kind)
    scaled = [(n, m.is_feedforward) for n, m in ia3.named_modules() if isinstance(m, IA3Layer)]
    assert per_block([n for n, ff in scaled if not ff]) == (ia3_out, 2)
    assert per_block([n for n, ff in scaled if ff]) == (ia3_in, 2)
    assert len(scaled) == 2 * (len(ia3_out) + len(ia3_in))
    for model in (lora, ia3):  # adapters and, on encoders, the new head: nothing else trains
        rest = {n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n and "ia3_l" not in n}
        assert all("classifier" in n or n.endswith(".score.weight") for n in rest), rest
        assert bool(rest) == (kind == "encoder")


# --- MPNet end to end: a tiny MPNet folder, loaded and tuned through the harness ------------------------------

@pytest.fixture(scope="module")
def tiny_mpnet(tmp_path_factory):
    from transformers import MPNetConfig, MPNetModel

    from tests.conftest import _tokenizer

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    tok = _tokenizer("encoder")
    torch.manual_seed(0)
    # MPNet numbers positions from pad_token_id + 1, so the pad id must be the tokenizer's
    MPNetModel(MPNetConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, max_position_embeddings=130, pad_token_id=tok.pad_token_id)
               ).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("tuner, lr, adapted", [
    ("lora", 1e-2, {"attention.attn.q", "attention.attn.v"}),
    ("ia3", 3e-2, {"attention.attn.k", "attention.attn.v", "output.dense"}),
])
def test_mpnet_trains_its_adapters_and_head_only(tiny_mpnet, tuner, lr, adapted):
    assert resolve(str(tiny_mpnet)).kind == "encoder"
    recipe = RecipeConfig(tuner=tuner, epochs=2, bf16="off", max_length=64)
    model, items, val, pad_id = tiny_model(tiny_mpnet, recipe, rows=32)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    marker = ".lora_" if tuner == "lora" else ".ia3_l."
    modules = {n.split(marker)[0] for n in names if marker in n}
    assert per_block(sorted(modules)) == (adapted, 2)
    head = names - {n for n in names if marker in n}
    assert head and all("classifier" in n for n in head)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, items, val, recipe, lr, pad_id)
    assert result.train_loss[-1] < result.train_loss[0]
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    # LoRA's B starts at zero, so A gets no gradient on the first step but both move over two epochs
    assert moved == names
