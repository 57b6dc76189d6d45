"""Speed benchmark (not a test): LoRA training throughput of sftbench's loop (harness/training/loop.py `fit`) against
transformers Trainer + peft in its best GPU settings, in one process, interleaved arms, on a Llama-shaped model of
about 1B parameters with random weights (built from a config: nothing is downloaded).

Every arm trains the same base (loaded once in bf16, SDPA attention), each round with a fresh LoRA adapter (r 16 on
every linear layer, seeded the same), on the same rows (random tokens, lengths 128-512, the last quarter of each row
the answer; with --prefix N every row begins with the same N tokens, as chat-template rows begin with the template's
system turn and the instruction), batch 8, AdamW lr 2e-4, one epoch:
  trainer            Trainer: bf16=True, length-grouped batches, fused AdamW, no logging or saving in the timed call
  sftbench           fit() as a bake-off runs it on a GPU (bf16 autocast, length-grouped batches, fused AdamW, LM
                     head at answer positions only, each micro-batch's common prefix run once)
  sftbench-unshared  the same fit() with share_prefix=False (every row runs its whole prompt); with --prefix only
The arms run interleaved (abc cba abc ...) after one warm-up round each; each round is timed around the training call
with the GPU synchronised. Tokens/s counts non-padding tokens, the same for every arm.

Model FLOPs per round (base frozen; the same formula as benchmarks/speed/training.py): 4*N_body*T + 6*N_lora*T +
4*d*V*A (T tokens, A answer tokens). MFU = model FLOP/s over a bf16 matmul peak measured in the same run
(8192^3 products). Attention-score FLOPs are not counted.

    python3 benchmarks/speed/gpu_training.py [--prefix 96]   # on CUDA: ~1B model (tools/gpu_check.sh runs it)
    python3 benchmarks/speed/gpu_training.py --smoke [--prefix 12]   # on the CPU: a tiny model, to check the script
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.speed.training import lora_flops  # noqa: E402  (the same FLOP formula as the CPU benchmark)
from harness.config import RecipeConfig  # noqa: E402
from harness.data.encode import Encoded  # noqa: E402
from harness.models.device import Placement  # noqa: E402
from harness.training.loop import fit  # noqa: E402

ONE_B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
         "num_key_value_heads": 4, "vocab_size": 32000}  # TinyLlama's shape: 1.1B parameters
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512}
PAD = 0


def rows(n: int, vocab: int, lengths: tuple[int, int], seed: int, prefix: int = 0) -> list[Encoded]:
    """n rows of random tokens, each `prefix` tokens in common first, the last quarter of each row the answer."""
    rng = random.Random(seed)
    common = [rng.randrange(1, vocab) for _ in range(prefix)]
    out = []
    for _ in range(n):
        length = rng.randint(*lengths)
        ids = common + [rng.randrange(1, vocab) for _ in range(length - prefix)]
        answer = max(length - length // 4, prefix + 1)
        out.append(Encoded(ids, [-100] * answer + ids[answer:]))
    return out


def build(shape: dict[str, int], device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, max_position_embeddings=1024, pad_token_id=PAD, attn_implementation="sdpa")
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.requires_grad_(False)
    return model


def with_lora(base: Any, r: int) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(0)
    return get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear",
                                           task_type=TaskType.CAUSAL_LM))


def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), PAD)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(b["input_ids"]), torch.tensor(b["labels"]), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def trainer_arm(model: Any, items: list[Encoded], recipe: RecipeConfig, on_gpu: bool) -> None:
    from transformers import PrinterCallback, Trainer, TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    grouping = {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names \
        else {"group_by_length": True}
    best = {"bf16": True, "optim": "adamw_torch_fused"} if on_gpu else {"use_cpu": True}
    data = [{"input_ids": it.input_ids, "labels": it.labels} for it in items]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=recipe.batch_size, num_train_epochs=1,
                                 learning_rate=recipe.learning_rate, warmup_steps=0, seed=0, report_to=[],
                                 save_strategy="no", logging_strategy="no", disable_tqdm=True,
                                 dataloader_num_workers=0, remove_unused_columns=False, **grouping, **best)
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collate)
        trainer.remove_callback(PrinterCallback)
        trainer.train()


def fit_arm(model: Any, items: list[Encoded], recipe: RecipeConfig, placement: Placement, share: bool) -> str:
    """Train; which path the micro-batches took (TrainResult.prefix)."""
    return str(fit(model, items, [], recipe, recipe.learning_rate, PAD, placement=placement,
                   share_prefix=share).prefix["path"])


def matmul_peak(device: str, n: int) -> float:
    """bf16 (n x n) @ (n x n) FLOP/s here: the best of 3 timings of 10 products after warm-up."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = max(best, 10 * 2 * n ** 3 / (time.perf_counter() - start))
    return best


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model on the CPU (checks the script)")
    parser.add_argument("--rows", type=int, default=None, help="rows per round (default 256; smoke 16)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per arm, after one warm-up each")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--prefix", type=int, default=0,
                        help="tokens every row begins with; adds the sftbench-unshared arm (default 0: no arm)")
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda:0"
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return 2
    on_gpu = device.startswith("cuda")
    shape, lengths = (TINY, (16, 48)) if args.smoke else (ONE_B, (128, 512))
    n_rows = args.rows or (16 if args.smoke else 256)
    placement = Placement(device, "bf16" if on_gpu else "fp32")
    recipe = RecipeConfig(epochs=1, batch_size=8, learning_rate=2e-4, warmup_ratio=0.0, seed=0,
                          options={"dropout": 0.0}, group_by_length=True)
    base = build(shape, device, torch.bfloat16 if on_gpu else torch.float32)
    if not 0 <= args.prefix < lengths[0]:
        parser.error(f"--prefix must be below the shortest row ({lengths[0]} tokens)")
    items = rows(n_rows, shape["vocab_size"], lengths, seed=1, prefix=args.prefix)
    tokens = sum(len(it.input_ids) for it in items)
    peak = matmul_peak(device, 256 if args.smoke else 8192)
    probe = with_lora(base, 16)
    flops, params = lora_flops(probe, items)[0], sum(p.numel() for p in probe.parameters())
    base = probe.unload()
    arms = ("trainer", "sftbench") + (("sftbench-unshared",) if args.prefix else ())
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    paths: dict[str, str] = {}
    order = list(arms) + [a for i in range(args.rounds) for a in (arms if i % 2 == 0 else arms[::-1])]
    for i, arm in enumerate(order):
        model = with_lora(base, 16)
        sync(device)
        start = time.perf_counter()
        if arm == "trainer":
            trainer_arm(model, items, recipe, on_gpu)
        else:
            paths[arm] = fit_arm(model, items, recipe, placement, share=arm == "sftbench")
        sync(device)
        if i >= len(arms):  # the first round of each arm is its warm-up (kernels, allocator, autotuning)
            seconds[arm].append(time.perf_counter() - start)
        base = model.unload()
    name = torch.cuda.get_device_name() if on_gpu else "CPU (smoke)"
    result: dict[str, Any] = {"device": name, "params": params, "rows": n_rows, "tokens_per_round": tokens,
                              "prefix": args.prefix, "matmul_peak_tflops": peak / 1e12, "torch": torch.__version__}
    for arm, times in seconds.items():
        t = statistics.median(times)
        result[arm] = {"seconds": times, "tokens_per_second": tokens / t, "mfu": flops / t / peak,
                       **({"path": paths[arm]} if arm in paths else {})}
    result["ratio"] = result["sftbench"]["tokens_per_second"] / result["trainer"]["tokens_per_second"]
    print(f"{name}: {params / 1e9:.2f}B params, LoRA r 16 all-linear, {n_rows} rows, {tokens} tokens a round, "
          f"{args.prefix} common to every row; bf16 matmul peak {peak / 1e12:.0f} TFLOP/s")
    for arm in arms:
        r = result[arm]
        print(f"  {arm:17s} {r['tokens_per_second']:10.0f} tokens/s  MFU {r['mfu']:6.1%}  "
              f"(median of {len(r['seconds'])} rounds: {', '.join(f'{s:.2f}' for s in r['seconds'])} s)"
              f"{'  ' + r['path'] if 'path' in r else ''}")
    print(f"  sftbench / trainer: {result['ratio']:.2f}x (target 1.5x; MFU target 45%; MFU counts every row's "
          "tokens, so sharing a prefix can lift it past what the arithmetic done reaches)")
    if args.prefix:
        unshared = result["sftbench-unshared"]["tokens_per_second"]
        result["ratio_unshared"] = unshared / result["trainer"]["tokens_per_second"]
        result["sharing"] = result["sftbench"]["tokens_per_second"] / unshared
        print(f"  sftbench-unshared / trainer: {result['ratio_unshared']:.2f}x; "
              f"sftbench / sftbench-unshared (prefix sharing): {result['sharing']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(math.isfinite(result[a]["tokens_per_second"]) for a in seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
