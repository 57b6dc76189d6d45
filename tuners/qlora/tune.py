"""QLoRA: the base model loaded in 4-bit NF4 (bitsandbytes, double quantisation, bf16 compute), LoRA adapters on top
in fp32. CUDA only; bitsandbytes comes with the `qlora` extra (`pip install 'sftbench[qlora]'`)."""
from __future__ import annotations

import importlib.util
from typing import Any

from harness.errors import ConfigError
from tuners import Recipe
from tuners.lora.tune import prepare as lora_prepare


def check(placement: Any) -> None:
    """A config error, before any model loads, where QLoRA cannot run."""
    if placement.kind != "cuda":
        raise ConfigError(f"recipe.tuner qlora needs a CUDA GPU (a 4-bit NF4 base through bitsandbytes), but the "
                          f"units would run on {placement.device}: use tuner lora, or recipe.device cuda")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("recipe.tuner qlora needs bitsandbytes: pip install 'sftbench[qlora]'")


def load_options(placement: Any) -> dict[str, Any]:
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if placement.precision != "fp16" else torch.float16
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=compute)
    index = int(placement.device.split(":")[1]) if ":" in placement.device else 0
    return {"quantization_config": quantization, "device_map": {"": index}}


def prepare(model: Any, recipe: Recipe, kind: str) -> Any:
    from peft import prepare_model_for_kbit_training

    # norms to fp32 and input grads on; gradient checkpointing is the recipe's choice (harness/training/loop.py)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return lora_prepare(model, recipe, kind)
