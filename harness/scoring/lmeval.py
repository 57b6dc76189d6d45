"""lm-eval tasks as forgetting probes: `probes: [{lm_eval: TASK, include_path: DIR, limit: N}]`.

lm-eval (the `lmeval` extra) reads the task: its YAML, dataset, `doc_to_text`, `doc_to_choice`, `doc_to_target`,
target delimiter and few-shot settings, through its own TaskManager, and builds the requests its `simple_evaluate`
would send (the same few-shot seed, 1234, the same `limit`: the first N documents). sftbench scores those requests
with its own scorer (harness/scoring/lm.py: each context once, its options packed into one row) and decides each item
as lm-eval's `process_results` does for a multiple-choice task: `acc` when the highest log-likelihood is a gold
choice (np.argmax: the first of a tie), `acc_norm` when the highest log-likelihood per character of the choice is.
Contexts and continuations are tokenised as lm-eval's HFLM does (trailing spaces of the context move to the
continuation; the pair is encoded whole and split at the context's length). tests/harness/test_lmeval.py proves
acc, acc_norm and every item's verdict equal to `simple_evaluate` on the same model.

Only `output_type: multiple_choice` is scored: `generate_until` needs free generation and a task's own answer
filters and metrics, `loglikelihood` scores one continuation by whether greedy decoding reproduces it, and
`loglikelihood_rolling` is a perplexity, not a per-item verdict; none of them is a paired right/wrong per item yet.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import SuiteRef
from harness.errors import ConfigError, DataError
from harness.scoring.probes import ProbeItem, ProbeScore, ProbeSpec

FEWSHOT_SEED = 1234  # simple_evaluate's default fewshot_random_seed
SCORED_OUTPUT = "multiple_choice"
PACKAGED = ("json", "csv", "parquet", "text", "arrow")  # datasets builders that read local data_files


@dataclass(frozen=True)
class TaskItem(ProbeItem):
    """One document of a multiple-choice task: the (context, continuation) pair lm-eval builds for each choice.
    `prompt` is the gold choice's context, `answer` the first gold choice, `distractors` the other choices."""

    requests: tuple[tuple[str, str], ...]  # per choice, in doc_to_choice order
    lengths: tuple[int, ...]  # per choice: len(choice) in characters, acc_norm's divisor
    gold: tuple[int, ...]  # gold choice indices (several for a multiple-target task)


def load_task_probe(ref: SuiteRef, base: Path) -> tuple[ProbeSpec, list[TaskItem], str]:
    """The probe spec, items and data hash of an lm-eval task (or of every task of a group, in order)."""
    # lm-eval's and datasets' progress bars (tqdm, on stderr) would print through sftbench's own; errors are raised
    with contextlib.redirect_stderr(io.StringIO()):
        return _load(ref, base)


def _load(ref: SuiteRef, base: Path) -> tuple[ProbeSpec, list[TaskItem], str]:
    tasks = _load_tasks(ref, base)
    items: list[TaskItem] = []
    digest = hashlib.sha256()
    versions = []
    for name, task in tasks:
        task_items, docs = _task_items(name, task, ref.limit)
        items += task_items
        versions.append(f"{name}={task.VERSION}")
        digest.update(json.dumps([name, docs, [(i.requests, i.gold) for i in task_items]], sort_keys=True,
                                 default=str, ensure_ascii=False).encode())
    if ref.max_items:  # the command line's cap (--cap) on every probe: the first N items over all tasks
        items = items[:ref.max_items]
        digest.update(f":first {ref.max_items}".encode())
    spec = ProbeSpec(name=ref.lm_eval, version=versions[0].split("=", 1)[1] if len(versions) == 1 else
                     ",".join(versions), kind="lm_eval", path=str(_include(ref, base) or f"lm_eval:{ref.lm_eval}"),
                     data=f"lm_eval:{ref.lm_eval}", description=f"lm-eval task {ref.lm_eval}")
    return spec, items, digest.hexdigest()


def _include(ref: SuiteRef, base: Path) -> Path | None:
    if not ref.include_path:
        return None
    path = (base / ref.include_path).resolve()
    if not path.is_dir():
        raise ConfigError(f"probes: lm_eval task '{ref.lm_eval}': include_path {path} is not a folder")
    return path


def _load_tasks(ref: SuiteRef, base: Path) -> list[tuple[str, Any]]:
    where = f"probes: lm_eval task '{ref.lm_eval}'"
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError(f"{where} needs lm-eval: pip install 'sftbench[lmeval]'") from None
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its INFO lines would interleave with the progress bars
    include = _include(ref, base)
    # include_path: its tasks only (indexing lm-eval's own thousands of YAMLs takes tens of seconds); else lm-eval's
    manager = TaskManager(include_path=str(include), include_defaults=False) if include else TaskManager()
    if ref.lm_eval not in manager.all_tasks:
        from harness.errors import did_you_mean

        among = f"among the tasks in {include}" if include else "among lm-eval's tasks (a local task: include_path)"
        raise ConfigError(f"{where}: no such task {among}{did_you_mean(ref.lm_eval, manager.all_tasks)}")
    try:
        tasks = list(manager.load([ref.lm_eval])["tasks"].items())  # a group's leaf tasks, in its order
    except Exception as err:  # lm-eval and datasets raise many kinds; the cause is told in one line
        raise ConfigError(f"{where}: cannot load its documents: {_load_failure(err, manager, ref.lm_eval)}") from None
    refused = [(n, t.OUTPUT_TYPE) for n, t in tasks if t.OUTPUT_TYPE != SCORED_OUTPUT]
    if refused:
        name, kind = refused[0]
        raise ConfigError(f"{where}: '{name}' has output_type {kind}; sftbench scores output_type multiple_choice "
                          "only (each choice ranked by log-likelihood, a right/wrong verdict per item, paired before "
                          "and after tuning); generate_until, loglikelihood and loglikelihood_rolling are refused")
    return tasks


def _load_failure(err: BaseException, manager: Any, name: str) -> str:
    """Why a task's documents did not load: a hub dataset offline is said as such, in the words a hub model's is."""
    from harness.data.hub import offline

    entry = manager.task_index.get(name)
    dataset = str(((entry.cfg if entry else None) or {}).get("dataset_path", ""))
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if dataset and dataset not in PACKAGED and not Path(dataset).exists():
        if offline():
            return (f"its dataset '{dataset}' is on the Hugging Face hub; offline (HF_HUB_OFFLINE or "
                    "HF_DATASETS_OFFLINE is set) and not in the datasets cache: run once online, or give the task "
                    "local data_files (dataset_path: json or csv)")
        from harness.models.hub import hub_failure

        return f"its dataset '{dataset}' is on the Hugging Face hub: {hub_failure(err, dataset)[:300]}"
    return f"{type(err).__name__}: {first[:300]}"


def _task_items(name: str, task: Any, limit: int | None) -> tuple[list[TaskItem], list[Any]]:
    """The items lm-eval's simple_evaluate would score: its few-shot seed, the first `limit` documents."""
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    if task.get_config("num_fewshot") is None:
        task.set_config(key="num_fewshot", value=0)
    try:
        task.build_all_requests(limit=limit, rank=0, world_size=1)
    except ValueError as err:
        raise DataError(f"lm_eval task '{name}': {err}") from None
    by_doc: dict[int, list[Any]] = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc_id, []).append(inst)
    items, docs = [], []
    for doc_id in sorted(by_doc):
        instances = sorted(by_doc[doc_id], key=lambda i: i.idx)
        doc = instances[0].doc
        choices = [str(c) for c in task.doc_to_choice(doc)]
        requests = tuple((str(i.args[0]), str(i.args[1])) for i in instances[:len(choices)])  # not mutual-info's
        gold = _gold(task, doc, choices)
        if not gold:
            raise DataError(f"lm_eval task '{name}': document {doc_id} has no gold choice among {choices}")
        others = tuple(c for k, c in enumerate(choices) if k not in gold)
        items.append(TaskItem(requests[gold[0]][0], choices[gold[0]], others, requests,
                              tuple(len(c) for c in choices), gold))
        docs.append(doc)
    return items, docs


def _gold(task: Any, doc: Any, choices: list[str]) -> tuple[int, ...]:
    """The gold choice indices, read as lm-eval's process_results reads them (an index, a choice text or a list)."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    golds = gold if isinstance(gold, list) else [gold]
    out = [choices.index(g) if g in choices else -1 if isinstance(g, str) else int(g) for g in golds]
    return tuple(g for g in out if 0 <= g < len(choices))


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval HFLM's tokenisation of a (context, continuation) pair: trailing spaces move to the continuation, the
    whole is encoded and split at the encoded context's length (an empty context is the BOS, else EOS, token)."""
    if not context:
        cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation)["input_ids"]
    ctx = tokenizer(context)["input_ids"]
    return ctx, whole[len(ctx):]


def score_task(items: list[TaskItem], model: Any, tokenizer: Any, on_step: Any = None) -> ProbeScore:
    """acc (decides forgetting), acc_norm and the margin (gold minus best other log-likelihood) of every item."""
    from harness.scoring.lm import continuation_logprobs

    contexts, conts = [], []
    for item in items:
        for context, continuation in item.requests:
            ctx, cont = encode_pair(tokenizer, context, continuation)
            contexts.append(ctx)
            conts.append(cont)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = continuation_logprobs(model, pad_id, contexts, conts, on_step=on_step)
    correct, correct_norm, margin, pos = [], [], [], 0
    for item in items:
        lls = np.array([s for s, _ in scores[pos:pos + len(item.requests)]])
        pos += len(item.requests)
        correct.append(int(int(np.argmax(lls)) in item.gold))
        correct_norm.append(int(int(np.argmax(lls / np.array(item.lengths, dtype=float))) in item.gold))
        others = np.delete(lls, list(item.gold))
        margin.append(float(lls[list(item.gold)].max() - others.max()) if others.size else 0.0)
    return ProbeScore(correct, margin, correct_norm)
