"""Layer freezing: only the last k transformer blocks, the final norm and any classifier head train."""
from tuners import register_tuner
from tuners.freeze.config import FreezeOptions
from tuners.freeze.tune import prepare

register_tuner("freeze", prepare, "train the last `freeze_keep_last` blocks plus the head; the rest stays frozen",
               options=FreezeOptions)
