"""Wrap a model with LoRA adapters. Target modules are resolved from the architecture unless the
recipe's LoRA options name them (`all-linear` or an explicit list)."""
from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from tuners import Recipe
from tuners.lora.config import LoraOptions

# Attention query/value projections, the original LoRA paper's choice, by model_type.
ATTENTION_QV = {
    "llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"], "gemma": ["q_proj", "v_proj"], "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"], "gemma3": ["q_proj", "v_proj"], "phi3": ["qkv_proj"],
    "gpt2": ["c_attn"], "gpt_neox": ["query_key_value"], "opt": ["q_proj", "v_proj"],
    "bert": ["query", "value"], "roberta": ["query", "value"], "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"], "mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"],
}


def target_modules(model: Any, options: LoraOptions) -> list[str] | str:
    if options.target_modules != "auto":
        return options.target_modules
    model_type = model.config.model_type
    return ATTENTION_QV.get(model_type, "all-linear")


def prepare(model: Any, recipe: Recipe, kind: str) -> Any:
    import torch  # here, not at the top: the config reads the tuners' options and loads no torch
    from peft import LoraConfig, TaskType, get_peft_model

    options: LoraOptions = recipe.options
    torch.manual_seed(recipe.seed)  # adapter init is reproducible per candidate, whatever ran before
    config = LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
        target_modules=target_modules(model, options),
        task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.SEQ_CLS,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # peft's message when a target module is absent
        raise ConfigError(f"LoRA target modules do not fit {model.config.model_type}: {err}") from None
