"""Measurement (not a test): does sharing the prompt prefix's dropout mask across a micro-batch change what training
reaches? With dropout on, the shared-prefix path (harness/training/loop.py) draws the prefix's dropout mask once per
micro-batch, the unshared path once per row. This trains SmolLM2-135M-Instruct with LoRA (the demo's recipe:
r 8, alpha 16, dropout 0.05, lr 1e-3, batch 8, bf16 autocast where the CPU has it) on the first --rows
support_intents training rows (chat-template form) under --seeds seeds, once with sharing and once without,
and prints per seed the final validation loss (fp32, no dropout), the last epoch's training loss and the test
accuracy on the first --test items, then each path's mean and the seed standard deviation. The paths agree when
their means differ by less than the seed spread.

    .venv/bin/python benchmarks/speed/shared_dropout.py [--rows 96] [--test 64] [--seeds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py

import torch  # noqa: E402

from harness.config import BUNDLED_DIR, RecipeConfig, SuiteRef  # noqa: E402
from harness.data.specs import load_benchmark  # noqa: E402
from harness.models.device import resolve as placement_for  # noqa: E402
from harness.models.device import set_threads  # noqa: E402
from harness.models.loading import load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.metrics import score  # noqa: E402
from harness.scoring.tasks import predict, training_items  # noqa: E402
from harness.training.loop import evaluate_loss, fit  # noqa: E402
from tuners import load_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--test", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    set_threads()
    handle = resolve("smollm2-135m")
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=args.rows, max_validation=64,
                                           max_test=args.test), BUNDLED_DIR)
    recipe = replace(RecipeConfig(), options={"r": 8, "alpha": 16, "dropout": 0.05}, epochs=1, batch_size=8,
                     max_length=192, learning_rate=1e-3)
    train = training_items(spec, splits["train"].examples, tok, "causal", recipe.max_length)
    val = training_items(spec, splits["validation"].examples, tok, "causal", recipe.max_length)
    placement = placement_for("cpu", recipe.bf16)
    refs = [list(ex.references) for ex in splits["test"].examples]
    results: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    print(f"SmolLM2-135M LoRA dropout {recipe.options.dropout}, {len(train)} rows, lr {recipe.learning_rate:g}, "
          f"{args.seeds} seeds, test {len(refs)} items")
    for seed in range(args.seeds):
        for share in (True, False):
            run = replace(recipe, seed=seed)
            torch.manual_seed(seed)
            model = load_all().get("lora").prepare(load_model(handle), run, "causal")
            start = time.perf_counter()
            trained = fit(model, train, [], run, run.learning_rate, tok.pad_token_id, placement=placement,
                          share_prefix=share)
            seconds = time.perf_counter() - start
            val_loss = evaluate_loss(model, val, tok.pad_token_id, run.batch_size, placement_for("cpu", "off"),
                                     share_prefix=False)
            with placement.autocast():
                preds, _ = predict(spec, splits["test"].examples, model, tok, "causal", run.max_length)
            accuracy = score("accuracy", preds, refs, resamples=0).value
            results[share].append((val_loss, trained.train_loss[-1], accuracy))
            print(f"  seed {seed} {'shared  ' if share else 'unshared'} ({trained.prefix['path']}, {seconds:.0f} s): "
                  f"validation loss {val_loss:.4f}, training loss {trained.train_loss[-1]:.4f}, "
                  f"test accuracy {accuracy:.4f}", flush=True)
    for share, rows in results.items():
        columns = list(zip(*rows))
        spread = [statistics.stdev(c) if len(c) > 1 else float("nan") for c in columns]
        print(f"{'shared' if share else 'unshared':>8}: " + ", ".join(
            f"{name} {statistics.mean(c):.4f} (seed sd {sd:.4f})"
            for name, c, sd in zip(("validation loss", "training loss", "test accuracy"), columns, spread)))


if __name__ == "__main__":
    main()
