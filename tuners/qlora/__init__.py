"""QLoRA: LoRA on a 4-bit NF4 base (bitsandbytes), on CUDA."""
from tuners import register_tuner
from tuners.qlora.tune import check, load_options, prepare

register_tuner("qlora", prepare, "LoRA on a 4-bit NF4 base (bitsandbytes; CUDA only, the qlora extra)",
               load_options=load_options, check=check, frozen_base=True)
