"""Speed benchmark (not a test): an lm-eval multiple-choice task as an sftbench probe (`probes: [{lm_eval: TASK}]`,
harness/scoring/lmeval.py: lm-eval builds the requests, sftbench scores them with each context run once and its
choices packed in one row) against lm-evaluation-harness 0.4.13 scoring the same task itself (HFLM over the same
loaded model and tokenizer, one full sequence per choice), at several lm-eval batch sizes, in one process, fp32.

The task is the bundled general_knowledge probe written as a local lm-eval task (JSONL + YAML in a temporary
folder: doc_to_text the prompt, doc_to_choice [answer, *distractors], doc_to_target 0, `--shots` few-shot examples
drawn by lm-eval from the same documents). Both arms decide with lm-eval's definitions, so acc, acc_norm and every
item's verdict must agree; the script says where they do not. Only the scoring is timed: building the requests
(lm-eval's own code in both arms) is not. Needs `pip install -e .[speed]`.

    .venv/bin/python benchmarks/speed/lmeval_tasks.py [--items 375] [--shots 0] [--lm-eval-batch 1 8 32 64]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the task reads a local JSONL; never the hub

from benchmarks.speed.probes import timed  # noqa: E402
from harness.config import BUNDLED_DIR, SuiteRef  # noqa: E402
from harness.models.device import set_threads  # noqa: E402
from harness.models.loading import load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.probes import load_probe, score_probe  # noqa: E402

TASK = "sftbench_knowledge_mc"


def write_task(folder: Path, items: list, shots: int) -> None:
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps({"prompt": i.prompt, "choices": [i.answer, *i.distractors]}) + "\n"
                            for i in items), encoding="utf-8")
    (folder / f"{TASK}.yaml").write_text(
        f"task: {TASK}\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(data))}}}}}\n"
        f"test_split: test\nfewshot_split: test\nnum_fewshot: {shots}\noutput_type: multiple_choice\n"
        'doc_to_text: "{{prompt}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: 0\n'
        "metric_list: [{metric: acc}, {metric: acc_norm}]\nmetadata: {version: 1.0}\n", encoding="utf-8")


def lm_eval_run(model, tokenizer, folder: Path, batch_size: int):
    """lm-eval's own scoring of the task: (per-item acc, per-item acc_norm), wall and CPU seconds of evaluate()."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = TaskManager(include_path=str(folder), include_defaults=False).load([TASK])
    for task in tasks["tasks"].values():
        task.set_fewshot_seed(seed=1234)  # simple_evaluate's default, as sftbench's probe uses
    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", device="cpu", batch_size=batch_size)
    out, wall, cpu = timed(lambda: evaluator.evaluate(lm=lm, task_dict=tasks, log_samples=True))
    samples = sorted(out["samples"][TASK], key=lambda s: s["doc_id"])
    return ([int(s["acc"]) for s in samples], [int(s["acc_norm"]) for s in samples]), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=None, help="first N general_knowledge items (default: all)")
    parser.add_argument("--shots", type=int, default=0, help="few-shot examples per item (lm-eval draws them)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lm-eval-batch", type=int, nargs="+", default=[1, 8, 32, 64])
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    threads = set_threads()
    handle = resolve(args.model)
    model, tokenizer = load_model(handle), load_tokenizer(handle)
    _, knowledge, _ = load_probe(SuiteRef("general_knowledge", max_items=args.items), BUNDLED_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_task(folder, knowledge, args.shots)
        spec, items, _ = load_probe(SuiteRef(lm_eval=TASK, include_path=str(folder)), folder)
        print(f"{args.model}: {len(items)} items x {len(items[0].requests)} choices, {args.shots}-shot, fp32, "
              f"{threads} threads", flush=True)
        runs: dict[str, list[tuple[float, float]]] = {}
        results = {}
        order = ["sftbench", *map(str, args.lm_eval_batch)]
        for arm in order + order[::-1]:  # interleaved, so drift on a shared machine hits every arm
            if arm == "sftbench":
                score, wall, cpu = timed(lambda: score_probe(spec, items, model, tokenizer))
                results[arm] = (score.correct, score.correct_norm)
            else:
                results[arm], wall, cpu = lm_eval_run(model, tokenizer, folder, int(arm))
            runs.setdefault(arm, []).append((wall, cpu))
            print(f"  ran {arm if arm == 'sftbench' else f'lm-eval batch {arm}'}: {wall:.1f} s", flush=True)
    report(runs, results, len(items))


def report(runs: dict[str, list[tuple[float, float]]], results: dict, n: int) -> None:
    rate = {arm: (n * len(r) / sum(w for w, _ in r), n * len(r) / sum(c for _, c in r)) for arm, r in runs.items()}
    for arm, (wall, cpu) in rate.items():
        print(f"{'sftbench' if arm == 'sftbench' else f'lm-eval (batch {arm})':>22}: {wall:6.1f} items/s, "
              f"{cpu:6.1f} items/CPU-s")
    best = max((a for a in rate if a != "sftbench"), key=lambda a: rate[a][0])
    print(f"sftbench / lm-eval at its best batch size ({best}): {rate['sftbench'][0] / rate[best][0]:.2f}x items/s "
          f"(wall), {rate['sftbench'][1] / rate[best][1]:.2f}x items/CPU-s")
    ours = results["sftbench"]
    for arm in (a for a in results if a != "sftbench"):
        theirs = results[arm]
        print(f"lm-eval batch {arm}: acc {sum(theirs[0]) / n:.4f} (sftbench {sum(ours[0]) / n:.4f}), acc_norm "
              f"{sum(theirs[1]) / n:.4f} (sftbench {sum(ours[1]) / n:.4f}); verdicts differ on "
              f"{sum(a != b for a, b in zip(ours[0], theirs[0]))} (acc) and "
              f"{sum(a != b for a, b in zip(ours[1], theirs[1]))} (acc_norm) of {n} items")


if __name__ == "__main__":
    main()
