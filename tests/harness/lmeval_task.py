"""A local lm-eval multiple-choice task, written on demand: sums of two numbers with four numeric choices (lengths
differ, so acc_norm decides differently from acc), a train split for two few-shot examples, JSONL data files. The
same seed gives the same bytes, so its documents and data hash are stable. Used by tests/harness/test_lmeval.py and
benchmarks/speed/lmeval_probe.py."""
from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import skip_unless_ci


def needs(module: str, extra: str) -> None:
    """Skip a test whose optional extra is not installed (fail it under CI=true, which installs the extras)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        skip_unless_ci(f"{module} is not installed: pip install 'sftbench[{extra}]' (CI: make install-extras)")


def _doc(rnd: random.Random) -> dict:
    a, b = rnd.randint(1, 60), rnd.randint(1, 60)
    wrong: set[int] = set()
    while len(wrong) < 3:
        w = a + b + rnd.choice([-10, -2, -1, 1, 2, 10, a + b])
        if w > 0 and w != a + b:
            wrong.add(w)
    choices = [str(x) for x in [a + b, *sorted(wrong)]]
    rnd.shuffle(choices)
    return {"question": f"What is {a} plus {b}?", "choices": choices, "label": choices.index(str(a + b))}


def write_sums_task(folder: Path, n: int = 300, shots: int = 2, output_type: str = "multiple_choice",
                    dataset: str = "json", name: str = "sums") -> Path:
    """The task folder (an lm-eval include_path): `{name}.yaml`, train.jsonl (20 docs) and test.jsonl (n docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(31)
    for split, k in (("train", 20), ("test", n)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(_doc(rnd)) + "\n" for _ in range(k)))
    files = (f"dataset_kwargs:\n  data_files:\n    train: {folder / 'train.jsonl'}\n    test: {folder / 'test.jsonl'}\n"
             if dataset == "json" else "")
    (folder / f"{name}.yaml").write_text(f"""task: {name}
dataset_path: {dataset}
{files}training_split: train
test_split: test
fewshot_split: train
num_fewshot: {shots}
output_type: {output_type}
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
""")
    return folder


def lmeval_reference(model, tokenizer, task_folder: Path, task: str = "sums", limit: int | None = None,
                     batch_size: int | str = 32) -> dict:
    """lm-eval's own simple_evaluate on a model object: {"acc", "acc_norm"} and each document's verdicts."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True,
                                  task_manager=TaskManager(include_path=str(task_folder), include_defaults=False))
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    return {"acc": out["results"][task]["acc,none"], "acc_norm": out["results"][task]["acc_norm,none"],
            "per_item": [int(s["acc"]) for s in samples], "per_item_norm": [int(s["acc_norm"]) for s in samples]}
