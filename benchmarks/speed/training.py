"""Speed benchmark (not a test): LoRA training throughput of sftbench's loop (harness/training/loop.py `fit`)
against the standard stack (transformers Trainer + peft), in one process, on the same model, rows,
LoRA config, learning rate, schedule, epochs and batch size, with answer-only labels in every arm.

The rows are the bundled support_intents training rows as sftbench trains them: through the model's chat
template (SmolLM2's system turn, then the instruction and the message as the user turn, the assistant turn
opened), the answer and EOS after it (harness.scoring.tasks.training_items). The script prints how many leading
tokens every row shares (57 of about 91 with SmolLM2's tokenizer).

Arms, each on freshly loaded base weights with the same LoRA init (tuners/lora, seeded):
  trainer          Trainer with its default arguments (fp32, random batches)
  trainer-best     Trainer with its best CPU settings: bf16=True (needs use_cpu=True on a CPU), and
                   group_by_length (train_sampling_strategy="group_by_length" in transformers 5)
  sftbench         harness.training.loop.fit with the shipped recipe (bf16 autocast where the CPU has it,
                   length-grouped batches, LM head applied at answer positions only), each micro-batch's
                   common prompt prefix run once (the loop's shared-prefix path)
  sftbench-unshared  the same fit with share_prefix=False: every row runs its whole prompt
The recipe is the demo's for SmolLM2 (benchmarks/demo.yaml: LoRA r8 alpha 16 on q/v, dropout 0.05, batch 8,
lr 1e-3, 1 epoch, max_length 192). Schedule in all arms: AdamW with linear decay after int(steps * 0.06)
warm-up steps, gradient clipping at 1.0, weight decay 0, seed 0. Only the training call is timed. The arms run
in rounds, each round every arm once, the order reversed every other round (a,b,c,d then d,c,b,a) so drift on
a shared machine hits all of them; each ratio is computed per round and the median over rounds is reported,
beside the ratio of the summed times. Throughput counts non-padding tokens (the same count for every arm) per
wall second and per CPU second of this process; the second is less disturbed by other jobs on the machine.
"Final loss" is the mean answer-token loss of the trained model over the training rows, evaluated the same way
(fp32, no dropout, unshared) for every arm.

Model FLOPs (LoRA, base weights frozen), per training token:
  forward  2*N_body + 2*N_lora            (N_body: transformer-layer weights, embeddings excluded)
  backward 2*N_body + 4*N_lora            (activation gradients through every layer, since every layer
                                           holds adapters; weight gradients for the adapters only)
  plus the LM head at the A answer positions only (the loss needs no other logits): 4*d*V*A in all.
Attention-score FLOPs (~2% at ~100 tokens) and norms are not counted. An arm that computes logits at
every position does more work than this; the formula counts the work the task needs, for every arm.
MFU = model FLOPs/s over a matmul peak measured here (square matmuls, fp32 and bf16).

    .venv/bin/python benchmarks/speed/training.py [--rows 96] [--epochs 1] [--arms abcd] [--rounds 2]
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py

import torch  # noqa: E402

from harness.config import BUNDLED_DIR, RecipeConfig, SuiteRef  # noqa: E402
from harness.data.encode import Encoded, uses_chat  # noqa: E402
from harness.data.specs import load_benchmark  # noqa: E402
from harness.models.device import resolve as placement_for  # noqa: E402
from harness.models.device import set_threads, use_bf16  # noqa: E402
from harness.models.loading import load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.tasks import training_items  # noqa: E402
from harness.training.loop import evaluate_loss, fit  # noqa: E402
from harness.training.shared import shared_length  # noqa: E402
from tuners import load_all  # noqa: E402

ARMS = {"a": "trainer", "b": "trainer-best", "c": "sftbench", "d": "sftbench-unshared"}


@dataclass(frozen=True)
class ArmRun:
    arm: str
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time: less sensitive to other jobs on a shared machine
    own_loss: float  # the loss the arm itself reports (Trainer: mean over steps; fit: last epoch)
    final_loss: float  # mean answer-token loss over the training rows after training, fp32
    round: int = 0
    path: str = ""  # sftbench arms: which path the micro-batches took (TrainResult.prefix)


def load_items(rows: int, tokenizer, max_length: int) -> list[Encoded]:
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=rows), BUNDLED_DIR)
    return training_items(spec, splits["train"].examples, tokenizer, "causal", max_length)


def fresh_lora(handle, recipe: RecipeConfig):
    model = load_model(handle)
    return load_all().get("lora").prepare(model, recipe, "causal")


def train_with_trainer(model, tokenizer, items: list[Encoded], recipe: RecipeConfig, best: bool) -> float:
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    rows = [{"input_ids": it.input_ids, "attention_mask": [1] * len(it.input_ids), "labels": it.labels} for it in items]
    settings = {"bf16": True, "use_cpu": True, "train_sampling_strategy": "group_by_length"} if best else {}
    # Warm-up in whole steps, rounded down as fit() rounds it (a float here would be a ratio rounded up).
    warmup = int(math.ceil(len(items) / recipe.batch_size) * recipe.epochs * recipe.warmup_ratio)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=recipe.batch_size, num_train_epochs=recipe.epochs,
            learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay, warmup_steps=warmup,
            seed=recipe.seed, report_to=[], save_strategy="no", disable_tqdm=True, **settings)
        # Pads input_ids, attention_mask and labels (with -100) to the longest row of each batch.
        pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        index = {id(row["input_ids"]): i for i, row in enumerate(rows)}
        TRAINER_ORDER.clear()

        def collator(features):  # records the rows of every batch the Trainer's sampler drew (--same-order)
            TRAINER_ORDER.append([index[id(f["input_ids"])] for f in features])
            return pad(features)

        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator,
                          processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # terminal output only
        return float(trainer.train().training_loss)


TRAINER_ORDER: list[list[int]] = []  # the Trainer arm's batches as row indices, in the order it trained them
SAME_ORDER = False  # --same-order: sftbench's arms train the Trainer arm's last batches in its order


def train_with_fit(model, items: list[Encoded], recipe: RecipeConfig, pad_id: int, share: bool) -> tuple[float, str]:
    # no validation rows: nothing untimed
    if SAME_ORDER:
        import harness.training.loop as loop

        if not TRAINER_ORDER:
            raise SystemExit("--same-order: run a Trainer arm first in each round (--arms bc)")
        own = loop.batches
        loop.batches = lambda *args, **kwargs: [list(b) for b in TRAINER_ORDER]  # type: ignore[assignment]
        try:
            result = fit(model, items, [], recipe, recipe.learning_rate, pad_id, share_prefix=share)
        finally:
            loop.batches = own
        return result.train_loss[-1], f"{result.prefix['path']} ({result.tokens_computed} tokens computed)"
    result = fit(model, items, [], recipe, recipe.learning_rate, pad_id, share_prefix=share)
    return result.train_loss[-1], f"{result.prefix['path']} ({result.tokens_computed} tokens computed)"


def run_arm(arm: str, handle, tokenizer, items: list[Encoded], recipe: RecipeConfig, round_: int) -> ArmRun:
    model = fresh_lora(handle, recipe)
    path = ""
    start, cpu = time.perf_counter(), time.process_time()
    if arm.startswith("sftbench"):
        own, path = train_with_fit(model, items, recipe, tokenizer.pad_token_id, share=arm == "sftbench")
    else:
        own = train_with_trainer(model, tokenizer, items, recipe, best=arm == "trainer-best")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    final = evaluate_loss(model, items, tokenizer.pad_token_id, recipe.batch_size, placement_for("cpu", "off"),
                          share_prefix=False)
    del model
    gc.collect()
    return ArmRun(arm, seconds, cpu_seconds, own, final, round_, path)


def measure_peaks(peaks: dict[str, tuple[float, float]]) -> None:
    """Raise each precision's (wall, CPU) matmul peak to what it measures now: on a shared machine the best
    of several moments is the closest to the real peak."""
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        wall, cpu = matmul_gflops(dtype)
        old_wall, old_cpu = peaks.get(name, (0.0, 0.0))
        peaks[name] = (max(wall, old_wall), max(cpu, old_cpu))


def matmul_gflops(dtype: torch.dtype, n: int = 1024, seconds: float = 1.5) -> tuple[float, float]:
    """Throughput of (n x n) @ (n x n) in this dtype: GFLOP per wall second and per CPU second, best of 3."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up (oneDNN picks its kernel)
    wall = cpu = 0.0
    for _ in range(3):
        reps, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds / 3:
            torch.mm(a, b)
            reps += 1
        flop = 2 * n ** 3 * reps / 1e9
        wall = max(wall, flop / (time.perf_counter() - start))
        cpu = max(cpu, flop / (time.process_time() - cpu_start))
    return wall, cpu


def model_flops(handle, tokenizer, items: list[Encoded], recipe: RecipeConfig) -> tuple[float, str]:
    """Model FLOPs of one training run (see the module docstring) and the formula with its numbers."""
    model = fresh_lora(handle, recipe)
    return lora_flops(model, items, recipe.epochs)


def lora_flops(model, items: list[Encoded], epochs: int = 1) -> tuple[float, str]:
    """Model FLOPs of training a LoRA-wrapped `model` on `items` for `epochs` (the module docstring's formula),
    and the formula with its numbers."""
    n_body = sum(p.numel() for name, p in model.named_parameters()
                 if "lora_" not in name and "embed_tokens" not in name and "lm_head" not in name)
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head = model.get_output_embeddings().weight.numel()  # d * V
    tokens = sum(len(it.input_ids) for it in items) * epochs
    answers = sum(sum(t != -100 for t in it.labels) for it in items) * epochs
    flops = 4 * n_body * tokens + 6 * n_lora * tokens + 4 * head * answers
    formula = (f"4*N_body*T + 6*N_lora*T + 4*d*V*A with N_body={n_body / 1e6:.1f}M, N_lora={n_lora / 1e6:.2f}M, "
               f"d*V={head / 1e6:.1f}M, T={tokens}, A={answers}")
    return flops, formula


# The child reports its own high-water mark (VmHWM, Linux). Not getrusage: a child's ru_maxrss includes
# the parent's resident size at fork/exec time, which here is several model copies.
CHILD = """import sys
from harness.cli import main
code = main(sys.argv[1:])
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
sys.exit(code)"""


def bakeoff_peak_rss(rows: int) -> float:
    """Peak RSS (MB) of a real SmolLM2-135M LoRA bake-off (tune, score, knowledge probe before and after)
    run as a child process, so nothing this benchmark loaded counts against it."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bakeoff.yaml"
        cfg.write_text(
            "name: speed-rss\ncandidates: [{model: smollm2-135m, learning_rate: 1e-3}]\n"
            "recipe: {tuner: lora, epochs: 1, max_length: 192}\n"
            f"benchmarks: [{{spec: support_intents, max_train: {rows}, max_validation: 32, max_test: 64}}]\n"
            "probes: [{spec: general_knowledge, max_items: 60}]\n", encoding="utf-8")
        done = subprocess.run([sys.executable, "-c", CHILD, "run", str(cfg), "--out", str(Path(tmp) / "out"), "--quiet",
                               "--no-store", "--no-cache"], check=True, cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024.0  # kB


def summarise(runs: list[ArmRun], tokens_per_run: int, flops_per_run: float,
              peaks: dict[str, tuple[float, float]], bf16: bool) -> dict[str, tuple[float, float]]:
    """Per arm: tokens per wall second and per CPU second (summed over its runs), losses, MFU."""
    rate = {}
    for arm in ARMS.values():
        mine = [r for r in runs if r.arm == arm]
        if not mine:
            continue
        wall, cpu = sum(r.seconds for r in mine), sum(r.cpu_seconds for r in mine)
        rate[arm] = (tokens_per_run * len(mine) / wall, tokens_per_run * len(mine) / cpu)
        precision = "bf16" if arm == "trainer-best" or (arm.startswith("sftbench") and bf16) else "fp32"
        gflop = flops_per_run * len(mine) / 1e9
        mfu_wall, mfu_cpu = gflop / wall / peaks[precision][0], gflop / cpu / peaks[precision][1]
        print(f"{arm:>17}: {rate[arm][0]:6.1f} tokens/s, {rate[arm][1]:6.1f} tokens/CPU-s, "
              f"{wall / len(mine):6.1f} s/run over {len(mine)} run(s); MFU vs the {precision} peak "
              f"{100 * mfu_wall:.0f}% (wall), {100 * mfu_cpu:.0f}% (CPU); "
              f"final loss {', '.join(f'{r.final_loss:.4f}' for r in mine)} "
              f"(own report {', '.join(f'{r.own_loss:.4f}' for r in mine)})")
    return rate


def ratios(runs: list[ArmRun], tokens_per_run: int) -> None:
    """Each sftbench arm against each other arm: the median over rounds of the per-round ratio of tokens/s (wall
    and CPU), every round's ratio, and the ratio of the summed times."""
    arms = sorted({r.arm for r in runs}, key=list(ARMS.values()).index)
    for mine in ("sftbench", "sftbench-unshared"):
        for other in arms:
            if mine not in arms or other == mine or (mine == "sftbench-unshared" and other == "sftbench"):
                continue
            pairs = [(a, b) for a in runs for b in runs if a.round == b.round and a.arm == mine and b.arm == other]
            wall = [b.seconds / a.seconds for a, b in pairs]
            cpu = [b.cpu_seconds / a.cpu_seconds for a, b in pairs]
            pooled = sum(b.seconds for _, b in pairs) / sum(a.seconds for a, _ in pairs)
            print(f"{mine} / {other}: median {statistics.median(wall):.2f}x tokens/s (wall), "
                  f"{statistics.median(cpu):.2f}x tokens/CPU-s over {len(pairs)} round(s) "
                  f"[per round {', '.join(f'{w:.2f}' for w in wall)}; summed times {pooled:.2f}x]")


def demo_recipe(epochs: int, dropout: float | None = None) -> RecipeConfig:
    """benchmarks/demo.yaml's recipe and SmolLM2's learning rate there; `dropout` replaces LoRA's (0.05) in every arm
    (0: the arms' final losses can then agree to bf16 noise, with no dropout masks drawn differently)."""
    options: dict[str, float] = {"r": 8, "alpha": 16} | ({} if dropout is None else {"dropout": dropout})
    return replace(RecipeConfig(), options=options, epochs=epochs, batch_size=8, max_length=192, seed=0,
                   learning_rate=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=96, help="support_intents training rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--arms", default="abcd",
                        help="arms of a round: a=trainer, b=trainer-best, c=sftbench, d=sftbench-unshared")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, every other one in reverse order")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dropout", type=float, default=None, help="LoRA dropout in every arm (default: the demo's)")
    parser.add_argument("--same-order", action="store_true", help="sftbench's arms train the batches the Trainer arm "
                        "before them drew, in its order (its length-grouped sampler draws another order than fit's)")
    parser.add_argument("--no-bakeoff-rss", action="store_true", help="skip the child bake-off that measures peak RSS")
    args = parser.parse_args()
    if not args.arms or set(args.arms) - set(ARMS) or args.rounds < 1:
        parser.error("--arms takes letters a, b, c, d; --rounds at least 1")
    threads = set_threads()
    handle = resolve(args.model)
    tokenizer = load_tokenizer(handle)
    recipe = demo_recipe(args.epochs, args.dropout)
    global SAME_ORDER
    SAME_ORDER = args.same_order
    items = load_items(args.rows, tokenizer, recipe.max_length)
    tokens = sum(len(it.input_ids) for it in items) * recipe.epochs
    flops, formula = model_flops(handle, tokenizer, items, recipe)
    peaks: dict[str, tuple[float, float]] = {}
    measure_peaks(peaks)
    bf16 = use_bf16(recipe.bf16)
    print(f"{args.model}, LoRA r{recipe.options.r} on q/v, dropout {recipe.options.dropout:g}, {len(items)} "
          f"support_intents rows x {recipe.epochs} epoch(s), "
          f"batch {recipe.batch_size}, lr {recipe.learning_rate:g}, {tokens} non-padding tokens per run, "
          f"{threads} threads, sftbench bf16={bf16}")
    print(f"rows through the chat template: {uses_chat(tokenizer)}; {shared_length(items)} leading tokens common to "
          f"every row, {tokens / recipe.epochs / len(items):.1f} tokens a row on average")
    runs = []
    for round_ in range(args.rounds):
        for letter in args.arms if round_ % 2 == 0 else args.arms[::-1]:
            runs.append(run_arm(ARMS[letter], handle, tokenizer, items, recipe, round_))
            print(f"  round {round_ + 1}: {runs[-1].arm} {runs[-1].seconds:.1f} s ({runs[-1].cpu_seconds:.1f} CPU-s), "
                  f"final loss {runs[-1].final_loss:.4f}{', ' + runs[-1].path if runs[-1].path else ''}", flush=True)
            measure_peaks(peaks)
    print("matmul peak (1024^3 mm, best of the start and after every arm): " + ", ".join(
        f"{name} {wall:.0f} GFLOP/s ({cpu:.0f} per CPU-s)" for name, (wall, cpu) in peaks.items()))
    print(f"model FLOPs per run {flops / 1e12:.3f} TFLOP = {formula}")
    summarise(runs, tokens, flops, peaks, bf16)
    ratios(runs, tokens)
    if not args.no_bakeoff_rss:
        print(f"peak RSS of a SmolLM2-135M LoRA bake-off (child process: tune {args.rows} rows, score 64, "
              f"knowledge probe 60 items before and after): {bakeoff_peak_rss(args.rows):.0f} MB")


if __name__ == "__main__":
    main()
