"""Probe suites: what a base model knew before tuning, scored item by item on the base model and
again on the tuned model, so forgetting is a paired drop.

Kinds:
- `multiple_choice` (causal LMs): log-likelihood of " " + option after the plain-text prompt (no chat
  template: these are pre-training facts). `acc` uses the summed log-probability, `acc_norm` divides it
  by the length in characters of the scored continuation, " " + option (lm-eval's acc_norm divides by
  len(option), one character less: measured 0.7627 vs 0.7600 on general_knowledge with SmolLM2, same
  per-option log-likelihoods; benchmarks/speed/probes.py). An item is correct when the answer beats
  all three distractors; `acc` decides forgetting.
- `cloze` (causal LMs): greedy continuation of the plain-text prompt (no chat template), at most
  CLOZE_MAX_NEW_TOKENS tokens, cut at the first newline. Both sides are normalised with
  harness.scoring.metrics.normalise_answer and split into words; each word is normalised again, so edge punctuation
  never matters ("Paris." and "Paris," match "Paris"). An item is correct when the generation STARTS WITH
  the answer word by word ("Paris, the capital" matches "Paris"; "Parisian" does not). Generation is not
  cut at a period, because abbreviations ("St. Louis", "U.S.") would be cut too; the word-wise prefix
  test makes a trailing sentence irrelevant. `distractors` are optional and unused. The margin is the
  share of the answer's leading words the generation reproduces: 1.0 when correct, 0.0 when the first
  word is already wrong, in between for a partial match (so the worst drops sort first).
- `paraphrase_ranking` (encoders): the anchor's mean-pooled embedding must be closer (cosine) to the
  paraphrase than to every hard distractor.
- `lm_eval` (causal LMs; `probes: [{lm_eval: TASK}]`): a multiple-choice task read by lm-eval, decided as lm-eval
  decides it (harness/scoring/lmeval.py).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import SuiteRef, read_yaml
from harness.data.rows import field_text, read_numbered_rows, row_error
from harness.data.specs import find_spec
from harness.errors import ConfigError, DataError
from harness.registry import Registry
from harness.scoring.metrics import normalise_answer
from harness.statistics.intervals import CHANGE_METHOD, change_interval, mcnemar_exact, wilson

PROBE_KINDS = {"multiple_choice": "causal", "paraphrase_ranking": "encoder", "cloze": "causal", "lm_eval": "causal"}
FILE_KINDS = ("multiple_choice", "paraphrase_ranking", "cloze")  # what a probe.yaml's `kind` may say
PROBE_KEYS = {"name", "version", "kind", "data", "description", "fields"}
# probes read by another library, each a module of its own: its loader and its scorer, registered lazily
# (harness/registry.py), so this module imports neither that module nor its library (lm-eval: the lmeval extra)
TASK_LOADERS: Registry[Callable[[SuiteRef, Path], tuple[ProbeSpec, list[Any], str]]] = Registry("probe source")
TASK_LOADERS.register("lm_eval", lazy="harness.scoring.lmeval:load_task_probe")
TASK_SCORERS: Registry[Callable[[list[Any], Any, Any, Any], ProbeScore]] = Registry("probe source")
TASK_SCORERS.register("lm_eval", lazy="harness.scoring.lmeval:score_task")
CLOZE_MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    version: str
    kind: str
    path: str
    data: str
    description: str = ""

    @property
    def model_kind(self) -> str:
        return PROBE_KINDS[self.kind]


@dataclass(frozen=True)
class ProbeItem:
    prompt: str  # prompt (multiple choice) or anchor (paraphrase)
    answer: str
    distractors: tuple[str, ...]


@dataclass(frozen=True)
class ProbeScore:
    correct: list[int]  # per item, 1 if the answer ranked first
    margin: list[float]  # per item, answer score minus best distractor score
    correct_norm: list[int] = field(default_factory=list)  # multiple choice, length-normalised
    outputs: list[str] = field(default_factory=list)  # cloze: the generated continuation per item

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) if self.correct else float("nan")


def load_probe(ref: SuiteRef, base: Path) -> tuple[ProbeSpec, list[ProbeItem], str]:
    if ref.lm_eval:
        spec_, task_items, digest_ = TASK_LOADERS.get("lm_eval")(ref, base)
        return spec_, list(task_items), digest_
    path = find_spec(ref.spec, base, "probe.yaml")
    raw = read_yaml(path)
    if raw.get("kind") == "counterfactual":  # a bias suite (scoring/bias.py) shares the file name, not the meaning
        raise ConfigError("a counterfactual bias suite is not a forgetting probe (see harness/scoring/bias.py)", path)
    unknown = sorted(set(raw) - PROBE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'; known: {', '.join(sorted(PROBE_KEYS))}", path)
    for key in ("version", "kind", "data"):
        if key not in raw:
            raise ConfigError(f"missing required key '{key}'", path)
    if not isinstance(raw["data"], str):
        raise ConfigError("'data' must name a file", path)
    if not isinstance(raw["kind"], str) or raw["kind"] not in FILE_KINDS:
        raise ConfigError(f"unknown probe kind '{raw['kind']}'; known: {', '.join(FILE_KINDS)} (an lm-eval task is "
                          "named in the config: probes: [{lm_eval: TASK}])", path)
    spec = ProbeSpec(name=str(raw.get("name") or path.parent.name), version=str(raw["version"]), kind=raw["kind"],
                     path=str(path), data=str((path.parent / raw["data"]).resolve()),
                     description=str(raw.get("description", "")))
    rows = read_numbered_rows(Path(spec.data))
    if not rows:
        raise DataError("probe suite is empty", spec.data)
    items = [_item(spec, row, line, number) for number, (line, row) in enumerate(rows, 1)]
    if ref.max_items:
        items = items[: ref.max_items]
    digest = hashlib.sha256(Path(spec.data).read_bytes() + f":{ref.max_items}".encode()).hexdigest()
    return spec, items, digest


def _item(spec: ProbeSpec, row: dict[str, Any], line: int | None, number: int) -> ProbeItem:
    keys = ("anchor", "positive") if spec.kind == "paraphrase_ranking" else ("prompt", "answer")
    needs_distractors = spec.kind != "cloze"  # cloze items may carry distractors; they are not scored
    missing = [k for k in (*keys, *(["distractors"] if needs_distractors else [])) if k not in row]
    if missing:
        raise DataError(f"item {number} has no '{missing[0]}'", spec.data, line)
    prompt, answer = (field_text(row, k, spec.data, line, number) for k in keys)
    distractors = row.get("distractors", [])
    if not isinstance(distractors, list) or (needs_distractors and not distractors):
        raise row_error("'distractors' must be a non-empty list", spec.data, line, number)
    if spec.kind == "cloze" and not normalise_answer(answer):
        raise row_error("'answer' is empty after normalisation", spec.data, line, number)
    return ProbeItem(prompt, answer, tuple(str(d) for d in distractors))


def score_probe(spec: ProbeSpec, items: list[ProbeItem], model: Any, tokenizer: Any,
                on_step: Any = None, tokens: Any = None) -> ProbeScore:
    """Score every item; on_step(done, total) reports progress in the scoring loop's units; `tokens` (a
    harness.scoring.lm.Tokens) adds up a causal LM's tokens in the data and computed, and the path that ran."""
    if spec.kind in TASK_SCORERS:
        return TASK_SCORERS.get(spec.kind)(items, model, tokenizer, on_step)
    if spec.kind == "multiple_choice":
        return _multiple_choice(items, model, tokenizer, on_step, tokens)
    if spec.kind == "cloze":
        return _cloze(items, model, tokenizer, on_step, tokens)
    return _paraphrase(items, model, tokenizer, on_step)


def _multiple_choice(items: list[ProbeItem], model: Any, tokenizer: Any, on_step: Any = None,
                     tokens: Any = None) -> ProbeScore:
    from harness.scoring.lm import continuation_logprobs

    contexts, conts = choice_pairs(items, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = continuation_logprobs(model, pad_id, contexts, conts, on_step=on_step, tokens=tokens)
    correct, margin, correct_norm = [], [], []
    pos = 0
    for item in items:
        k = 1 + len(item.distractors)
        raw = np.array([s for s, _ in scores[pos:pos + k]])
        lengths = np.array([len(" " + o) for o in (item.answer, *item.distractors)])
        norm = raw / lengths
        pos += k
        correct.append(int(raw[0] > raw[1:].max()))
        correct_norm.append(int(norm[0] > norm[1:].max()))
        margin.append(float(raw[0] - raw[1:].max()))
    return ProbeScore(correct, margin, correct_norm)


def choice_pairs(items: list[ProbeItem], tokenizer: Any) -> tuple[list[list[int]], list[list[int]]]:
    """Multiple-choice scoring pairs: every item's plain prompt with " " + each option (the answer first)."""
    contexts, conts = [], []
    for item in items:
        ctx = tokenizer(item.prompt)["input_ids"]
        for option in (item.answer, *item.distractors):
            contexts.append(ctx)
            conts.append(tokenizer(" " + option, add_special_tokens=False)["input_ids"])
    return contexts, conts


def _cloze(items: list[ProbeItem], model: Any, tokenizer: Any, on_step: Any = None,
           tokens: Any = None) -> ProbeScore:
    from harness.scoring.generation import generate

    prompts = [tokenizer(item.prompt)["input_ids"] for item in items]
    outputs = generate(model, tokenizer, prompts, CLOZE_MAX_NEW_TOKENS, stop=("\n",), on_step=on_step,
                       tokens=tokens)
    margin = [cloze_match(out, item.answer) for out, item in zip(outputs, items)]
    return ProbeScore([int(m == 1.0) for m in margin], margin, outputs=outputs)


def cloze_match(generated: str, answer: str) -> float:
    """Share of the answer's words that the generation reproduces from its start (1.0 = correct)."""
    gen = [normalise_answer(w) for w in normalise_answer(generated).split()]
    ans = [normalise_answer(w) for w in normalise_answer(answer).split()]
    if not ans:
        return 0.0
    matched = 0
    for g, a in zip(gen, ans):
        if g != a:
            break
        matched += 1
    return matched / len(ans)


def _paraphrase(items: list[ProbeItem], model: Any, tokenizer: Any, on_step: Any = None) -> ProbeScore:
    from harness.scoring.lm import embed

    texts = []
    for item in items:
        texts += [item.prompt, item.answer, *item.distractors]
    vectors = embed(model, tokenizer, texts, on_step=on_step)
    correct, margin, pos = [], [], 0
    for item in items:
        k = 2 + len(item.distractors)
        block = vectors[pos:pos + k]
        sims = (block[1:] @ block[0]).tolist()  # cosine: embeddings are normalised
        pos += k
        correct.append(int(sims[0] > max(sims[1:])))
        margin.append(float(sims[0] - max(sims[1:])))
    return ProbeScore(correct, margin)


def forgetting_report(spec: ProbeSpec, items: list[ProbeItem], before: ProbeScore, after: ProbeScore,
                      data_hash: str) -> dict[str, Any]:
    """Before/after accuracy, forgetting = before - after with a paired interval, transitions, McNemar."""
    n = len(items)
    lost, gained, p = mcnemar_exact(before.correct, after.correct)
    low, high = change_interval(lost, gained, n)  # not [0, 0] when no item changed
    drops = sorted((i for i in range(n) if before.correct[i] and not after.correct[i]),
                   key=lambda i: after.margin[i] - before.margin[i])
    report = {
        "probe": spec.name, "version": spec.version, "kind": spec.kind, "n": n, "data_sha256": data_hash,
        "before": _acc(before.correct), "after": _acc(after.correct),
        "chance": (chance := probe_chance(items)), "informative": _acc(before.correct)["ci_low"] > chance,
        "forgetting": {"value": before.accuracy - after.accuracy, "ci_low": low, "ci_high": high,
                       "ci_method": CHANGE_METHOD},
        "forgotten": lost, "gained": gained, "mcnemar_p": p,
        "most_forgotten": [_forgotten(items[i], before, after, i) for i in drops[:10]],
        "per_item": {"before": before.correct, "after": after.correct},
    }
    if before.correct_norm:
        report["before_norm"] = _acc(before.correct_norm)
        report["after_norm"] = _acc(after.correct_norm)
    return report


def probe_chance(items: list[ProbeItem]) -> float:
    """The accuracy of a uniform guess: 1 / (1 + distractors) per item, averaged; 0 for a cloze (free generation).
    A probe whose base model is not shown above it (the Wilson lower bound of `before` <= chance) is uninformative
    for that model: its forgetting is noise from a floor, and the reports and forgetting caps say so."""
    return float(np.mean([1 / (1 + len(i.distractors)) if i.distractors else 0.0 for i in items])) if items else 0.0


def _forgotten(item: ProbeItem, before: ProbeScore, after: ProbeScore, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {"item": i, "prompt": item.prompt, "answer": item.answer,
                           "margin_before": before.margin[i], "margin_after": after.margin[i]}
    if before.outputs and after.outputs:  # cloze: what the model said, before and after
        out |= {"output_before": before.outputs[i], "output_after": after.outputs[i]}
    return out


def _acc(correct: list[int]) -> dict[str, float]:
    low, high = wilson(sum(correct), len(correct))
    return {"value": float(np.mean(correct)), "ci_low": low, "ci_high": high}
