"""Did a candidate learn the task? Trivial baselines ("chance") and the rule that compares a tuned score with them.

A candidate that stays at chance is a finding to report ("did not learn", with what to try), not a plain gate
FAIL: the user would otherwise conclude that the model cannot do the task, when it is often the recipe (too low a
learning rate, too few epochs) that failed it.

Chance, per split, scored by the same metric code as the candidate (harness.scoring.metrics.score):
- classification: always answering the split's most frequent label (the majority-class rate for accuracy; the
  same constant predictions scored by macro-F1 for macro-F1): the best a constant answer can do on that split;
- generation: the better of two trivial outputs, copying the input and the empty string;
- an lm-eval task (acc, acc_norm): a uniform guess among each document's choices (its expected accuracy).
Metrics computed from losses (loss, perplexity) have no trivial prediction: chance is None and `learned` too.

The rule (documented in docs/benchmarks.md): a tuned candidate learned a benchmark when its test main metric
beats chance by at least LEARN_MARGIN (in the metric's units: 0.02 on 0-1 metrics, 2 points on BLEU/chrF) AND its
95% interval excludes chance, and, where a validation score of the kept weights was measured (a sweep, or
recipe.eval_metric), that score beats validation chance by LEARN_MARGIN too.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.data.lmeval import TASK_KIND as LM_EVAL
from harness.data.specs import BenchmarkSpec, Example, Split
from harness.results.model import MetricScore
from harness.scoring.metrics import METRICS, score

LEARN_MARGIN = 0.02  # on a 0-1 metric; multiplied by the metric's registered scale (100 for BLEU and chrF)


@dataclass(frozen=True)
class Chance:
    value: float
    how: str  # which trivial predictor gave it


def chance(spec: BenchmarkSpec, split: Split, metric: str) -> Chance | None:
    """The best trivial predictor's score on this split, or None where none applies (loss-based metrics)."""
    if METRICS.get(metric).from_losses or not split.examples:
        return None
    refs = [list(ex.references) for ex in split.examples]
    n = len(refs)
    if spec.task == "classification":
        label, _ = Counter(ex.target for ex in split.examples).most_common(1)[0]
        return Chance(score(metric, [label] * n, refs, resamples=0).number, f"always '{label}' (the majority class)")
    if spec.task == LM_EVAL:  # each document's gold share of its choices: a uniform guess's expected accuracy
        return Chance(sum(len(ex.raw["gold"]) / len(ex.raw["choices"]) for ex in split.examples) / n,
                      "a uniform guess among each document's choices")
    higher = METRICS.get(metric).higher_is_better
    tried = [Chance(score(metric, [_input(spec, ex) for ex in split.examples], refs, resamples=0).number,
                    "copying the input"),
             Chance(score(metric, [""] * n, refs, resamples=0).number, "the empty string")]
    return max(tried, key=lambda c: c.value if higher else -c.value)


def _input(spec: BenchmarkSpec, ex: Example) -> str:
    """The row's input as text: its input fields, or chat data's user turns."""
    if spec.messages:
        return "\n".join(content for role, content in ex.turns if role == "user")
    return "\n".join(ex.raw[c] for c in spec.input_fields.values()) if ex.raw else ex.prompt


def margin(metric: str) -> float:
    return LEARN_MARGIN * METRICS.get(metric).scale


def learned(metric: str, test: MetricScore, test_chance: Chance | None, validation: float | None = None,
            validation_chance: Chance | None = None) -> tuple[bool | None, str]:
    """(learned, reason): None when there is nothing to compare with (no trivial baseline, or a NaN score)."""
    if test_chance is None:
        return None, f"no trivial baseline for {metric}"
    value = test.number
    if value != value:
        return None, f"test {metric} is NaN"
    m, higher = margin(metric), METRICS.get(metric).higher_is_better
    sign = 1 if higher else -1
    end = test.ci_low if higher else test.ci_high
    bound = float("nan") if end is None else end
    beats = sign * (value - test_chance.value) >= m
    clear = bound != bound or sign * (bound - test_chance.value) > 0  # an interval-less metric is judged on value
    shown = f"test {metric} {value:.4g} vs chance {test_chance.value:.4g} ({test_chance.how})"
    if not (beats and clear):
        why = ("does not beat chance by the margin" if not beats
               else "does not beat chance: its 95% interval includes it")
        return False, f"{shown}: {why} (margin {m:g})"
    if validation is not None and validation_chance is not None:
        if sign * (validation - validation_chance.value) < m:
            return False, (f"{shown}, but validation {metric} {validation:.4g} does not beat validation chance "
                           f"{validation_chance.value:.4g} by {m:g}")
    return True, f"{shown}: beats it by {sign * (value - test_chance.value):.4g} (margin {m:g})"


def what_to_try(sweep: list[dict], learning_rate: float | None, epochs: int | None) -> str:
    """A suggestion for a candidate that did not learn: a wider learning-rate grid around what was tried (too low
    a rate leaves a new head at chance; too high a rate diverges), and longer training."""
    lrs = sorted({s["learning_rate"] for s in sweep}) or ([learning_rate] if learning_rate else [])
    grid = (f"a wider sweep.learning_rate grid, e.g. [{lrs[0] / 10:g}, {lrs[0]:g}, {lrs[-1] * 10:g}]" if lrs
            else "a sweep.learning_rate grid")
    return f"try {grid}, or recipe.epochs: {2 * epochs if epochs else 'more'}"
