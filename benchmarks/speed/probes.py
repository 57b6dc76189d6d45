"""Speed benchmark (not a test): multiple-choice knowledge-probe scoring by sftbench (harness/scoring/probes.py
`score_probe`: each prompt runs once, packed with its four options in one row) against
lm-evaluation-harness 0.4.13 (HFLM wrapping the same loaded model and tokenizer; one full sequence per
option), in one process, on the same items and in the same precision. Needs `pip install -e .[speed]`.

The lm-eval task is written to a temporary folder: a JSONL of the same items and a YAML task with
output_type multiple_choice, doc_to_text = the prompt, doc_to_choice = [answer, *distractors],
doc_to_target = 0 and the default target_delimiter " ". So lm-eval scores log p(" " + option | prompt),
as sftbench does (plain prompt, no chat template, no BOS: SmolLM2's tokenizer adds none). lm-eval
tokenises prompt + option jointly and splits after the prompt's tokens; sftbench tokenises " " + option
on its own. The script counts items where the two token splits differ.

Accuracies: `acc` (summed log-likelihood) means the same in both. Length normalisation differs:
lm-eval's acc_norm divides by len(option) in characters (acc_bytes by its UTF-8 bytes), sftbench's by
len(" " + option). So the script also recomputes both normalisations from lm-eval's per-option
log-likelihoods, to compare like with like.

    .venv/bin/python benchmarks/speed/probes.py [--items 375] [--lm-eval-batch 1 32] [--bf16]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the task reads a local JSONL; never the hub

import numpy as np  # noqa: E402

from harness.config import BUNDLED_DIR, SuiteRef  # noqa: E402
from harness.models.device import autocast, set_threads, use_bf16  # noqa: E402
from harness.models.loading import load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.probes import ProbeItem, load_probe, score_probe  # noqa: E402

TASK = "sftbench_general_knowledge"


def write_task(folder: Path, items: list[ProbeItem]) -> None:
    data = folder / "items.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps({"prompt": item.prompt, "choices": [item.answer, *item.distractors]}) + "\n")
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(data))}}}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{prompt}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: 0\n"
        "metric_list:\n"
        "  - {metric: acc, aggregation: mean, higher_is_better: true}\n"
        "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}\n", encoding="utf-8")


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def lm_eval_scores(model, tokenizer, items: list[ProbeItem], batch_size: int,
                   precision) -> tuple[tuple[list[np.ndarray], dict[str, float]], float, float]:
    """Per-item option log-likelihoods and the metrics lm-eval reports (task building and model wrapping are
    not timed), seconds, CPU seconds."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        write_task(Path(tmp), items)
        tasks = TaskManager(include_path=tmp, include_defaults=False).load([TASK])
        lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", device="cpu", batch_size=batch_size)
        with precision():
            out, wall, cpu = timed(lambda: evaluator.evaluate(lm=lm, task_dict=tasks, log_samples=True))
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    lls = [np.array([resp[0] for resp in s["filtered_resps"]], dtype=float) for s in samples]
    reported = {name: out["results"][TASK][f"{name},none"] for name in ("acc", "acc_norm")}
    return (lls, reported), wall, cpu


def split_differs(tokenizer, items: list[ProbeItem]) -> int:
    """Items where joint tokenisation (lm-eval) and separate tokenisation (sftbench) split an option differently."""
    def separate(item, option):
        return tokenizer(item.prompt)["input_ids"] + tokenizer(" " + option, add_special_tokens=False)["input_ids"]

    return sum(any(tokenizer(f"{item.prompt} {o}")["input_ids"] != separate(item, o)
                   for o in (item.answer, *item.distractors)) for item in items)


def accuracies(lls: list[np.ndarray], items: list[ProbeItem]) -> dict[str, list[int]]:
    """Correct flags from per-option log-likelihoods (gold first) under each normalisation."""
    out: dict[str, list[int]] = {"acc": [], "acc_norm": [], "acc_norm_sftbench": []}
    for ll, item in zip(lls, items):
        options = (item.answer, *item.distractors)
        for name, scores in zip(out, (ll, ll / [len(o) for o in options], ll / [len(" " + o) for o in options])):
            # np.argmax (lm-eval's rule) lets a tie count for the gold option at index 0; sftbench needs a strict
            # win. Exact ties in float log-likelihoods do not occur here.
            out[name].append(int(np.argmax(scores) == 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=None, help="first N probe items (default: all)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lm-eval-batch", type=int, nargs="+", default=[1, 32],
                        help="lm-eval batch sizes to time (1 is its default)")
    parser.add_argument("--bf16", action="store_true",
                        help="run both under bf16 autocast (the pipeline probes in the recipe's precision, bf16 where the CPU has it)")
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    threads = set_threads()
    handle = resolve(args.model)
    model, tokenizer = load_model(handle), load_tokenizer(handle)
    spec, items, _ = load_probe(SuiteRef("general_knowledge", max_items=args.items), BUNDLED_DIR)
    bf16 = args.bf16 and use_bf16("on")
    precision = (lambda: autocast(True)) if bf16 else contextlib.nullcontext
    print(f"{args.model}: {spec.name} probe, {len(items)} items x {1 + len(items[0].distractors)} options, "
          f"{'bf16 autocast' if bf16 else 'fp32'}, {threads} threads; joint and separate tokenisation differ on "
          f"{split_differs(tokenizer, items)} items")
    # Interleaved (sftbench, lm-eval..., lm-eval... reversed, sftbench) so drift on a shared machine hits both.
    runs: dict[str, list[tuple[float, float]]] = {}
    order = ["sftbench", *args.lm_eval_batch]
    for arm in order + order[::-1]:
        if arm == "sftbench":
            with precision():
                ours, wall, cpu = timed(lambda: score_probe(spec, items, model, tokenizer))
        else:
            theirs, wall, cpu = lm_eval_scores(model, tokenizer, items, arm, precision)
        runs.setdefault(str(arm), []).append((wall, cpu))
        print(f"  ran {'sftbench' if arm == 'sftbench' else f'lm-eval batch {arm}'}: {wall:.1f} s", flush=True)
    report(runs, items, ours, theirs)


def report(runs: dict[str, list[tuple[float, float]]], items: list[ProbeItem], ours, theirs) -> None:
    n = len(items)
    rate = {arm: (n * len(r) / sum(w for w, _ in r), n * len(r) / sum(c for _, c in r)) for arm, r in runs.items()}
    for arm, (wall, cpu) in rate.items():
        label = "sftbench" if arm == "sftbench" else f"lm-eval (batch {arm})"
        print(f"{label:>22}: {wall:6.1f} items/s, {cpu:6.1f} items/CPU-s")
    for arm in rate:
        if arm != "sftbench":
            print(f"sftbench / lm-eval batch {arm}: {rate['sftbench'][0] / rate[arm][0]:.2f}x items/s (wall), "
                  f"{rate['sftbench'][1] / rate[arm][1]:.2f}x items/CPU-s")
    theirs, reported = theirs
    lm = accuracies(theirs, items)
    if not all(np.isclose(np.mean(lm[name]), reported[name]) for name in ("acc", "acc_norm")):
        raise RuntimeError(f"accuracies recomputed from lm-eval's log-likelihoods differ from its report {reported}")
    print(f"sftbench acc {np.mean(ours.correct):.4f}, acc_norm (/len(' '+option)) {np.mean(ours.correct_norm):.4f}")
    print(f"lm-eval  acc {np.mean(lm['acc']):.4f}, acc_norm (/len(option)) {np.mean(lm['acc_norm']):.4f}; "
          f"its log-likelihoods normalised as sftbench does (/len(' '+option)): {np.mean(lm['acc_norm_sftbench']):.4f}")
    margins = np.array([ll[0] - ll[1:].max() for ll in theirs])
    print(f"per item: acc differs on {sum(a != b for a, b in zip(ours.correct, lm['acc']))}/{n} items, "
          f"sftbench-normalised acc_norm on "
          f"{sum(a != b for a, b in zip(ours.correct_norm, lm['acc_norm_sftbench']))}/{n}; "
          f"largest |margin difference| {np.abs(margins - np.array(ours.margin)).max():.2e} nats")


if __name__ == "__main__":
    main()
