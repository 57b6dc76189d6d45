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

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import SuiteRef
from harness.data.lmeval import Doc, docs_digest, include_folder, read_task, scored_docs, version
from harness.scoring.probes import ProbeItem, ProbeScore, ProbeSpec


@dataclass(frozen=True)
class TaskItem(ProbeItem):
    """One document of a multiple-choice task: the (context, continuation) pair lm-eval builds for each choice.
    `prompt` is the gold choice's context, `answer` the first gold choice, `distractors` the other choices."""

    requests: tuple[tuple[str, str], ...]  # per choice, in doc_to_choice order
    lengths: tuple[int, ...]  # per choice: len(choice) in characters, acc_norm's divisor
    gold: tuple[int, ...]  # gold choice indices (several for a multiple-target task)


def _item(doc: Doc) -> TaskItem:
    others = tuple(c for k, c in enumerate(doc.choices) if k not in doc.gold)
    return TaskItem(doc.requests[doc.gold[0]][0], doc.choices[doc.gold[0]], others, doc.requests, doc.lengths,
                    doc.gold)


def load_task_probe(ref: SuiteRef, base: Path) -> tuple[ProbeSpec, list[TaskItem], str]:
    """The probe spec, items and data hash of an lm-eval task (or of every task of a group, in order)."""
    where = f"probes: lm_eval task '{ref.lm_eval}'"
    tasks = read_task(ref, base, where)
    items: list[TaskItem] = []
    digest = hashlib.sha256()
    for name, task in tasks:
        docs, raw = scored_docs(name, task, ref.limit)
        items += [_item(d) for d in docs]
        digest.update(docs_digest(name, raw, docs).encode())
    if ref.max_items:  # the command line's cap (--cap) on every probe: the first N items over all tasks
        items = items[:ref.max_items]
        digest.update(f":first {ref.max_items}".encode())
    spec = ProbeSpec(name=ref.lm_eval, version=version(tasks), kind="lm_eval",
                     path=str(include_folder(ref, base, where) or f"lm_eval:{ref.lm_eval}"),
                     data=f"lm_eval:{ref.lm_eval}", description=f"lm-eval task {ref.lm_eval}")
    return spec, items, digest.hexdigest()


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


def _logprobs(requests: list[tuple[tuple[str, str], ...]], model: Any, tokenizer: Any, on_step: Any = None,
              tokens: Any = None) -> list[np.ndarray]:
    """Each document's log-likelihood per choice, its requests tokenised as lm-eval's HFLM does."""
    from harness.scoring.lm import continuation_logprobs

    contexts, conts = [], []
    for pairs in requests:
        for context, continuation in pairs:
            ctx, cont = encode_pair(tokenizer, context, continuation)
            contexts.append(ctx)
            conts.append(cont)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = continuation_logprobs(model, pad_id, contexts, conts, on_step=on_step, tokens=tokens)
    out, pos = [], 0
    for pairs in requests:
        out.append(np.array([s for s, _ in scores[pos:pos + len(pairs)]]))
        pos += len(pairs)
    return out


def _choices(lls: np.ndarray, lengths: tuple[int, ...]) -> tuple[int, int]:
    """The choice `acc` takes (the highest log-likelihood; np.argmax: the first of a tie) and the one `acc_norm`
    takes (the highest per character of the choice), as lm-eval's process_results decides them."""
    return int(np.argmax(lls)), int(np.argmax(lls / np.array(lengths, dtype=float)))


def score_task(items: list[TaskItem], model: Any, tokenizer: Any, on_step: Any = None) -> ProbeScore:
    """acc (decides forgetting), acc_norm and the margin (gold minus best other log-likelihood) of every item."""
    correct, correct_norm, margin = [], [], []
    for item, lls in zip(items, _logprobs([i.requests for i in items], model, tokenizer, on_step)):
        acc, norm = _choices(lls, item.lengths)
        correct.append(int(acc in item.gold))
        correct_norm.append(int(norm in item.gold))
        others = np.delete(lls, list(item.gold))
        margin.append(float(lls[list(item.gold)].max() - others.max()) if others.size else 0.0)
    return ProbeScore(correct, margin, correct_norm)


def predict_choices(examples: list[Any], model: Any, tokenizer: Any, on_step: Any = None,
                    tokens: Any = None) -> list[str]:
    """A benchmark's predictions (harness/data/lmeval.py examples): per document `"A|N"`, the choice index `acc`
    takes and the one `acc_norm` takes (harness/scoring/metrics.py scores each against the gold indices)."""
    out = []
    for ex, lls in zip(examples, _logprobs([ex.raw["requests"] for ex in examples], model, tokenizer, on_step,
                                           tokens)):
        acc, norm = _choices(lls, tuple(len(c) for c in ex.raw["choices"]))
        out.append(f"{acc}|{norm}")
    return out


def training_pair(tokenizer: Any, example: Any, max_length: int) -> tuple[list[int], list[int]]:
    """A training document's ids and labels: its gold request (zero-shot context and gold continuation) tokenised as
    it is scored, the loss on the continuation only; the context is cut from the left to fit max_length."""
    ctx, cont = encode_pair(tokenizer, *example.raw["requests"][int(example.target)])
    cont = cont[:max_length - 1]
    ctx = ctx[-max(1, max_length - len(cont)):]
    return ctx + cont, [-100] * len(ctx) + cont
