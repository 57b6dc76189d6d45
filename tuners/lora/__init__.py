"""LoRA via peft: low-rank adapters on the attention projections, resolved per architecture."""
from tuners import register_tuner
from tuners.lora.config import LoraOptions
from tuners.lora.tune import prepare

register_tuner("lora", prepare, "LoRA adapters (peft) on attention projections; new classifier heads are trained too",
               frozen_base=True, options=LoraOptions)
