"""(IA)^3 via peft: learned scales on attention keys/values and feed-forward inputs, resolved per architecture."""
from tuners import register_tuner
from tuners.ia3.config import IA3Options
from tuners.ia3.tune import prepare

register_tuner("ia3", prepare, "(IA)^3 scaling vectors (peft) on keys, values and feed-forward inputs; far fewer "
               "parameters than LoRA and needs a much higher learning rate (around 1e-2 to 3e-3); new classifier heads "
               "train too", frozen_base=True, options=IA3Options)
