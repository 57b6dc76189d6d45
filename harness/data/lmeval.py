"""lm-eval tasks read through lm-eval's own TaskManager (the `lmeval` extra): the documents of a multiple-choice task
and the requests lm-eval builds for them, for a forgetting probe (`probes: [{lm_eval: TASK}]`,
harness/scoring/lmeval.py) and for a tuned and scored benchmark (`benchmarks: [{lm_eval: TASK}]`).

lm-eval reads the task: its YAML, dataset, `doc_to_text`, `doc_to_choice`, `doc_to_target`, target delimiter and
few-shot settings. The scored documents get the requests its `simple_evaluate` would send (the same few-shot seed,
1234, the same `limit`: the first N documents, built by the task's own `build_all_requests`). As a benchmark, the
task's splits become sftbench's (`as_benchmark`): lm-eval's evaluation split (its test split, else its validation
split) is the scored `test`; its validation split is sftbench's `validation` when a test split is scored (it selects
the learning rate); its training split is what the candidate is tuned on, each document as its zero-shot context
(lm-eval's `fewshot_context` with no shots) followed by its gold choice. A task without a training split is refused
as a benchmark: there is nothing to tune on (it is a probe, scored before and after tuning on another benchmark).

Only `output_type: multiple_choice` is read: `generate_until` needs free generation and a task's own answer filters
and metrics, `loglikelihood` scores one continuation by whether greedy decoding reproduces it, and
`loglikelihood_rolling` is a perplexity, not a per-item verdict; none of them is a right/wrong verdict per item yet.
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

from harness.config import SuiteRef
from harness.data.benchmark import BenchmarkSpec, Example, Split, SplitSource
from harness.errors import ConfigError, DataError

FEWSHOT_SEED = 1234  # simple_evaluate's default fewshot_random_seed
SCORED_OUTPUT = "multiple_choice"
PACKAGED = ("json", "csv", "parquet", "text", "arrow")  # datasets builders that read local data_files
TASK_KIND = "lm_eval"  # a BenchmarkSpec's task for an lm-eval task (harness/scoring/tasks.py scores it)
METRICS = ("acc", "acc_norm")  # lm-eval's names (harness/scoring/metrics.py registers them)


@dataclass(frozen=True)
class Doc:
    """One document of a multiple-choice task: the (context, continuation) pair lm-eval builds for each choice."""

    requests: tuple[tuple[str, str], ...]  # per choice, in doc_to_choice order
    choices: tuple[str, ...]
    gold: tuple[int, ...]  # gold choice indices (several for a multiple-target task)

    @property
    def lengths(self) -> tuple[int, ...]:
        """Per choice: len(choice) in characters, acc_norm's divisor."""
        return tuple(len(c) for c in self.choices)


def read_task(ref: SuiteRef, base: Path, where: str) -> list[tuple[str, Any]]:
    """The task's (or a group's leaf tasks', in lm-eval's order) lm-eval Task objects, their documents loaded."""
    # lm-eval's and datasets' progress bars (tqdm, on stderr) would print through sftbench's own; errors are raised
    with contextlib.redirect_stderr(io.StringIO()):
        return _load_tasks(ref, base, where)


def include_folder(ref: SuiteRef, base: Path, where: str) -> Path | None:
    if not ref.include_path:
        return None
    path = (base / ref.include_path).resolve()
    if not path.is_dir():
        raise ConfigError(f"{where}: include_path {path} is not a folder")
    return path


def _load_tasks(ref: SuiteRef, base: Path, where: str) -> list[tuple[str, Any]]:
    try:
        from lm_eval.tasks import TaskManager  # heavy (datasets, torch): imported on first use
    except ImportError:
        raise ConfigError(f"{where} needs lm-eval: pip install 'sftbench[lmeval]'") from None
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its INFO lines would interleave with the progress bars
    include = include_folder(ref, base, where)
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


def scored_docs(name: str, task: Any, limit: int | None) -> tuple[list[Doc], list[Any]]:
    """The documents lm-eval's simple_evaluate would score, with its requests: its few-shot seed, the first `limit`
    documents of its evaluation split. Call it first on a task: the few-shot draws follow the seed from here."""
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
    out, raw = [], []
    for doc_id in sorted(by_doc):
        instances = sorted(by_doc[doc_id], key=lambda i: i.idx)
        out.append(_doc(name, task, doc_id, instances[0].doc, [tuple(i.args[:2]) for i in instances]))
        raw.append(instances[0].doc)
    return out, raw


def split_docs(name: str, task: Any, docs: Any, shots: int, cap: int | None) -> tuple[list[Doc], list[Any]]:
    """Another split's documents with the requests lm-eval builds for them (as build_all_requests does, with `shots`
    few-shot examples: 0 for the training split)."""
    out, raw = [], []
    for doc_id, doc in enumerate(docs):
        if cap is not None and doc_id >= cap:
            break
        ctx = task.fewshot_context(doc, num_fewshot=shots, gen_prefix=task.doc_to_prefix(doc))
        instances = task.construct_requests(doc=doc, ctx=ctx, metadata=(task.config["task"], doc_id,
                                                                         task.config.repeats))
        out.append(_doc(name, task, doc_id, doc, [tuple(i.args[:2]) for i in instances]))
        raw.append(doc)
    return out, raw


def _doc(name: str, task: Any, doc_id: int, doc: Any, args: list[tuple[Any, ...]]) -> Doc:
    choices = [str(c) for c in task.doc_to_choice(doc)]
    requests = tuple((str(a[0]), str(a[1])) for a in args[:len(choices)])  # not the mutual-info requests
    gold = _gold(task, doc, choices)
    if not gold:
        raise DataError(f"lm_eval task '{name}': document {doc_id} has no gold choice among {choices}")
    return Doc(requests, tuple(choices), gold)


def _gold(task: Any, doc: Any, choices: list[str]) -> tuple[int, ...]:
    """The gold choice indices, read as lm-eval's process_results reads them (an index, a choice text or a list)."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    golds = gold if isinstance(gold, list) else [gold]
    out = [choices.index(g) if g in choices else -1 if isinstance(g, str) else int(g) for g in golds]
    return tuple(g for g in out if 0 <= g < len(choices))


def docs_digest(name: str, raw: list[Any], docs: list[Doc]) -> str:
    """The hash of a task's documents as read: each document, its requests and its gold choices."""
    return hashlib.sha256(json.dumps([name, raw, [(d.requests, d.gold) for d in docs]], sort_keys=True, default=str,
                                     ensure_ascii=False).encode()).hexdigest()


def version(tasks: list[tuple[str, Any]]) -> str:
    """lm-eval's task version (`metadata: {version: ...}`); a group's: each task's, `name=version`, joined."""
    return str(tasks[0][1].VERSION) if len(tasks) == 1 else ",".join(f"{n}={t.VERSION}" for n, t in tasks)


def load_task_benchmark(ref: SuiteRef, base: Path) -> tuple[BenchmarkSpec, dict[str, Split]]:
    """An lm-eval task as a tuned and scored benchmark: its spec and its splits (module docstring)."""
    where = f"benchmarks: lm_eval task '{ref.lm_eval}'"
    with contextlib.redirect_stderr(io.StringIO()):
        tasks = _load_tasks(ref, base, where)
        parts: dict[str, list[tuple[str, list[Doc], list[Any]]]] = {"train": [], "validation": [], "test": []}
        for name, task in tasks:
            if not task.has_training_docs():
                raise ConfigError(f"{where}: '{name}' has no training split (training_split in its YAML), so there "
                                  "is nothing to tune on; score it before and after tuning as a probe instead "
                                  f"(probes: [{{lm_eval: {ref.lm_eval}}}])")
            parts["test"].append((name, *scored_docs(name, task, ref.limit)))
            if task.has_test_docs() and task.has_validation_docs():
                parts["validation"].append((name, *split_docs(name, task, task.validation_docs(),
                                                              int(task.get_config("num_fewshot") or 0), None)))
            parts["train"].append((name, *split_docs(name, task, task.training_docs(), 0, None)))
    folder = include_folder(ref, base, where)
    caps = {"train": ref.max_train, "validation": ref.max_validation, "test": ref.max_test}
    splits = {s: _split(ref.lm_eval, s, parts[s], caps[s]) for s in ("train", "validation", "test") if parts[s]}
    source = str(folder or f"lm_eval:{ref.lm_eval}")
    spec = BenchmarkSpec(
        name=ref.lm_eval, version=version(tasks), task=TASK_KIND, path=source, prompt="{input}",
        input_fields={"input": "context"}, target_field="gold", reference_fields=("gold",), labels={},
        metrics=METRICS, main_metric="acc", splits={s: SplitSource(f"{source}:{s}") for s in splits},
        description=f"lm-eval task {ref.lm_eval}")
    return spec, splits


def _split(task: str, split: str, parts: list[tuple[str, list[Doc], list[Any]]], cap: int | None) -> Split:
    """One split over a task's (or a group's tasks') documents, the first `cap` of them; its hash covers them."""
    examples, digest = [], hashlib.sha256()
    for name, docs, raw in parts:
        examples += [example(d) for d in docs]
        digest.update(docs_digest(name, raw, docs).encode())
    if cap is not None and cap < len(examples):
        examples = examples[:cap]
        digest.update(f":first {cap}".encode())
    if not examples:
        raise DataError(f"lm_eval task '{task}': split '{split}' has no documents")
    return Split(name=split, examples=examples, sha256=digest.hexdigest(), path=f"lm_eval:{task}/{split}")


def example(doc: Doc) -> Example:
    """A document as a benchmark example: the prompt is the gold choice's context, the target its index, the
    references every gold index; `raw` keeps the requests the scorer reads (harness/scoring/lmeval.py)."""
    context = doc.requests[doc.gold[0]][0]
    return Example(prompt=context, encoder_text=context, target=str(doc.gold[0]),
                   references=tuple(str(g) for g in doc.gold),
                   raw={"context": context, "requests": doc.requests, "choices": doc.choices, "gold": doc.gold})
