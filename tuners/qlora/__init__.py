"""QLoRA: LoRA on a 4-bit NF4 base (bitsandbytes), on CUDA; LoRA's options (tuners/lora/config.py)."""
from tuners import register_tuner
from tuners.lora.config import LoraOptions
from tuners.qlora.tune import check, load_options, prepare

register_tuner("qlora", prepare, "LoRA on a 4-bit NF4 base (bitsandbytes; CUDA only, the qlora extra)",
               load_options=load_options, check=check, frozen_base=True, options=LoraOptions)
