"""Find the stack of transformer blocks, freeze everything but its last k blocks and the head."""
from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from tuners import Recipe
from tuners.freeze.config import FreezeOptions

HEAD_NAMES = ("classifier", "score", "pooler", "norm", "final_layernorm", "ln_f")


def block_stack(model: Any) -> tuple[str, Any]:
    """The longest ModuleList in the model: the transformer blocks in every architecture we know."""
    import torch  # here, not at the top: the config reads the tuners' options and loads no torch

    stacks = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ConfigError(f"freeze tuner: no block stack found in {type(model).__name__}")
    return max(stacks, key=lambda nm: len(nm[1]))


def prepare(model: Any, recipe: Recipe, kind: str) -> Any:
    options: FreezeOptions = recipe.options
    for p in model.parameters():
        p.requires_grad_(False)
    name, blocks = block_stack(model)
    keep = min(options.freeze_keep_last, len(blocks))
    for block in list(blocks)[len(blocks) - keep:]:
        for p in block.parameters():
            p.requires_grad_(True)
    for module_name, module in model.named_modules():
        # heads and final norms sit outside the block stack; a tied LM head stays frozen with the embeddings
        if module_name.split(".")[-1] in HEAD_NAMES and not module_name.startswith(name):
            for p in module.parameters():
                p.requires_grad_(True)
    return model
