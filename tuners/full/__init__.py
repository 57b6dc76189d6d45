"""Full fine-tuning: every weight trains. The reference point LoRA is compared against. No options of its own."""
from tuners import register_tuner


def prepare(model, recipe, kind):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register_tuner("full", prepare, "full fine-tuning: every weight is trained")
