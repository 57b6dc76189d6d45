"""Wrap a model with LoRA adapters. Target modules are resolved from the architecture unless the
recipe names them (`all-linear` or an explicit list)."""
from __future__ import annotations

from typing import Any

import torch

from harness.config import RecipeConfig
from harness.errors import ConfigError

# Attention query/value projections, the original LoRA paper's choice, by model_type.
ATTENTION_QV = {
    "llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"], "gemma": ["q_proj", "v_proj"], "gemma2": ["q_proj", "v_proj"],
    "gemma3_text": ["q_proj", "v_proj"], "gemma3": ["q_proj", "v_proj"], "phi3": ["qkv_proj"],
    "gpt2": ["c_attn"], "gpt_neox": ["query_key_value"], "opt": ["q_proj", "v_proj"],
    "bert": ["query", "value"], "roberta": ["query", "value"], "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"], "mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"],
}


def target_modules(model: Any, recipe: RecipeConfig) -> list[str] | str:
    if recipe.target_modules != "auto":
        return recipe.target_modules
    model_type = model.config.model_type
    return ATTENTION_QV.get(model_type, "all-linear")


def prepare(model: Any, recipe: RecipeConfig, kind: str) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(recipe.seed)  # adapter init is reproducible per candidate, whatever ran before
    config = LoraConfig(
        r=recipe.r, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
        target_modules=target_modules(model, recipe),
        task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.SEQ_CLS,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # peft's message when a target module is absent
        raise ConfigError(f"LoRA target modules do not fit {model.config.model_type}: {err}") from None
