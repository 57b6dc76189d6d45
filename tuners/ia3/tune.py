"""Wrap a model with (IA)^3 vectors: learned per-channel scales on the attention keys and values and on
the input of the feed-forward down projection (Liu et al. 2022). Modules are resolved per architecture
unless the recipe's IA3 options name them (`all-linear` or an explicit list)."""
from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from tuners import Recipe
from tuners.ia3.config import IA3Options

# (target modules, the feed-forward ones among them) by model_type: a list matches module-name endings,
# a string is a regex over the whole module name. Feed-forward modules get their *input* scaled (the
# paper's scaling of the feed-forward activations), the others their output. BERT-style models need a
# regex because "output.dense" names both the feed-forward output and the attention output projection.
BERT_FF = r".*\.layer\.\d+\.output\.dense"
MODULES: dict[str, tuple[list[str] | str, list[str] | str]] = {
    **{t: (["k_proj", "v_proj", "down_proj"], ["down_proj"]) for t in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma3")},
    "phi3": (["qkv_proj", "down_proj"], ["down_proj"]),
    "gpt2": (["c_attn", "mlp.c_proj"], ["mlp.c_proj"]),
    "gpt_neox": (["query_key_value", "dense_4h_to_h"], ["dense_4h_to_h"]),
    "opt": (["k_proj", "v_proj", "fc2"], ["fc2"]),
    **{t: (rf".*\.(key|value)|{BERT_FF}", BERT_FF) for t in ("bert", "roberta", "xlm-roberta", "electra")},
    "mpnet": (["k", "v", "output.dense"], ["output.dense"]),
    "distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]),
}
# what an explicit target list (or all-linear on an unknown architecture) treats as feed-forward
FEEDFORWARD_NAMES = ["down_proj", "mlp.c_proj", "dense_4h_to_h", "fc2", "output.dense", "lin2"]


def ia3_modules(model: Any, options: IA3Options) -> tuple[list[str] | str, list[str] | str]:
    """(target_modules, feedforward_modules) for peft's IA3Config."""
    model_type = model.config.model_type
    if options.target_modules == "auto":
        if model_type in MODULES:
            return MODULES[model_type]
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as PEFT_FF
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as PEFT_TARGETS
        if model_type in PEFT_TARGETS and model_type in PEFT_FF:
            return list(PEFT_TARGETS[model_type]), list(PEFT_FF[model_type])
        raise ConfigError(f"ia3 tuner: no default modules for model type '{model_type}'; set recipe.target_modules "
                          f"to a list (entries ending in {', '.join(FEEDFORWARD_NAMES)} are treated as feed-forward)")
    feedforward = MODULES[model_type][1] if model_type in MODULES else FEEDFORWARD_NAMES
    if options.target_modules == "all-linear":
        return "all-linear", feedforward
    targets = list(options.target_modules)
    return targets, [t for t in targets if any(t == f or t.endswith("." + f) for f in FEEDFORWARD_NAMES)]


def prepare(model: Any, recipe: Recipe, kind: str) -> Any:
    from peft import IA3Config, TaskType, get_peft_model

    targets, feedforward = ia3_modules(model, recipe.options)
    config = IA3Config(target_modules=targets, feedforward_modules=feedforward,
                       task_type=TaskType.CAUSAL_LM if kind == "causal" else TaskType.SEQ_CLS)
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # peft's message when a target module is absent
        raise ConfigError(f"ia3 target modules do not fit {model.config.model_type}: {err}") from None
