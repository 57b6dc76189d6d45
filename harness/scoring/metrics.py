"""Metrics: a registry with direction, each computed by the field's reference library, each with a
95% interval and per-item scores kept for paired comparisons.

Text metrics take predictions (one string per item) and references (a list of strings per item; items may have
different numbers of references). Zero items give a NaN value with n=0. BLEU and chrF keep sacrebleu's 0-100
scale and its signature; ROUGE is 0-1. Loss and perplexity come from per-item numbers (score_losses)."""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.registry import Registry
from harness.results.model import MetricScore
from harness.statistics.intervals import bootstrap_ci, bootstrap_ci_rows, mean_ci, wilson
from harness.statistics.paired import PROBE_METRIC, reference_streams
from harness.statistics.seeds import combine, item_draws, method


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    compute: Callable[[Sequence[str], Sequence[Sequence[str]], int, int], MetricScore]
    description: str
    scale: float = 1.0  # 1 for fractions, 100 for sacrebleu's 0-100 scores: what a margin of "0.02" means here
    from_losses: bool = False  # computed from per-item losses (score_losses), not from prediction strings


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, higher_is_better: bool, description: str, scale: float = 1.0,
                    from_losses: bool = False):
    def decorator(fn):
        METRICS.add(name, Metric(name, higher_is_better, fn, description, scale, from_losses))
        return fn

    return decorator


def higher_is_better(metric: str) -> bool:
    """The metric's direction, as registered (a probe item's correctness: higher)."""
    return True if metric == PROBE_METRIC else METRICS.get(metric).higher_is_better


def scale_bound(metric: str) -> float | None:
    """The top of a bounded metric's scale (its values lie in [0, scale]); None for one computed from losses."""
    registered = METRICS.get(metric)
    return None if registered.from_losses else registered.scale


def combine_metric(metric: str, per_seed: Sequence[MetricScore], per_seed_stats: Sequence[Any] | None,
                   resamples: int, seed: int) -> MetricScore:
    """One metric value over S seeds: the mean of the per-seed values, its seed-aware interval
    (harness/statistics/seeds.py), each seed's value and their sd, the per-item mean over seeds, and each seed's
    per-item scores."""
    values = [v.number for v in per_seed]
    items = [v.per_item for v in per_seed]
    if len(per_seed) == 1 or not all(items) or len({len(i) for i in items}) != 1:
        return per_seed[0]
    sa = combine([values], [item_draws(metric, items, per_seed_stats, resamples, seed)])
    low, high = (float(x) for x in sa.interval())
    top = scale_bound(metric)
    if top is not None:  # bounded scores: the t interval can overshoot 0 or the top of the scale
        low, high = max(low, 0.0), min(high, top)
    return MetricScore(float(np.mean(values)), low, high, per_seed[0].n, method(sa, len(values)),
                       per_seed[0].signature, [float(v) for v in values],
                       None if sa.seed_sd is None else float(sa.seed_sd),
                       np.mean(np.asarray(items, dtype=float), axis=0).tolist(), [list(i) for i in items])


def score(name: str, predictions: Sequence[str], references: Sequence[Sequence[str]],
          resamples: int = 1000, seed: int = 0) -> MetricScore:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return METRICS.get(name).compute(list(predictions), [list(r) for r in references], resamples, seed)


@register_metric("accuracy", True, "share of predictions equal to the label (scikit-learn accuracy_score); Wilson "
                 "interval")
def _accuracy(preds, refs, resamples, seed):
    from sklearn.metrics import accuracy_score

    gold = [r[0] for r in refs]
    n = len(gold)
    if n == 0:
        return MetricScore(float("nan"), float("nan"), float("nan"), 0, "wilson")
    value = float(accuracy_score(gold, preds))
    per_item = [float(p == g) for p, g in zip(preds, gold)]
    low, high = wilson(sum(per_item), n)
    return MetricScore(value, low, high, n, "wilson", per_item=per_item)


@register_metric("macro_f1", True, "unweighted mean of per-class F1 over the gold labels (scikit-learn f1_score, "
                 "average='macro', zero_division=0); seeded bootstrap interval")
def _macro_f1(preds, refs, resamples, seed):
    from sklearn.metrics import f1_score

    gold = [r[0] for r in refs]
    n = len(gold)
    if n == 0:
        return MetricScore(float("nan"), float("nan"), float("nan"), 0, "bootstrap")
    labels = sorted(set(gold))
    value = float(f1_score(gold, list(preds), labels=labels, average="macro", zero_division=0))
    low, high = bootstrap_ci_rows(_macro_f1_rows(gold, preds, labels), n, resamples, seed)
    per_item = [float(a == b) for a, b in zip(preds, gold)]  # F1 is not itemwise; keep correctness for pairing
    return MetricScore(value, low, high, n, f"bootstrap(resamples={resamples},seed={seed})", per_item=per_item)


def _macro_f1_rows(gold: Sequence[str], preds: Sequence[str], labels: list[str]) -> Callable[[np.ndarray], np.ndarray]:
    """Macro F1 of every bootstrap resample at once, (resamples, n) indices -> (resamples,): per label
    2 tp / (gold count + predicted count), 0 where both are 0, averaged over `labels` (scikit-learn's f1_score
    with labels=labels, average="macro", zero_division=0, whose per-label F1 is that same ratio); a predicted
    label outside `labels` counts for none of them."""
    index = {label: i for i, label in enumerate(labels)}
    width = len(labels) + 1  # the last column: a prediction outside the labels
    g = np.array([index[x] for x in gold])
    p = np.array([index.get(x, len(labels)) for x in preds])

    def rows(idx: np.ndarray) -> np.ndarray:
        base = np.arange(idx.shape[0])[:, None] * width
        gi, pi = g[idx], p[idx]

        def count(cells: np.ndarray) -> np.ndarray:
            return np.bincount(cells, minlength=idx.shape[0] * width).reshape(-1, width)[:, :-1]

        hits, denom = count((base + gi)[gi == pi]), count((base + gi).ravel()) + count((base + pi).ravel())
        return np.divide(2 * hits, denom, out=np.zeros(denom.shape), where=denom > 0).mean(axis=1)

    return rows


def _lm_eval_choice(which: int) -> Callable[..., MetricScore]:
    """lm-eval's acc (which 0) or acc_norm (1) of a multiple-choice task as a benchmark: the prediction is `"A|N"`,
    the choice indices they take (harness/scoring/lmeval.py), right when that index is among the gold ones."""
    def compute(preds: Sequence[str], refs: Sequence[Sequence[str]], resamples: int, seed: int) -> MetricScore:
        per_item = [float(p.split("|")[which] in r) for p, r in zip(preds, refs)]
        low, high = wilson(sum(per_item), len(per_item)) if per_item else (math.nan, math.nan)
        return MetricScore(sum(per_item) / len(per_item) if per_item else math.nan, low, high, len(per_item), "wilson",
                           per_item=per_item)
    return compute


for _which, _name in enumerate(("acc", "acc_norm")):  # documents whose choice of the highest log-likelihood is gold
    register_metric(_name, True, f"lm-eval's {_name} of a multiple-choice task; Wilson interval")(
        _lm_eval_choice(_which))


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers for the text metrics below.

def _empty(method: str) -> MetricScore:
    """Zero items: a NaN score rather than a crash, so one empty split does not end a whole bake-off."""
    nan = float("nan")
    return MetricScore(nan, nan, nan, 0, method)


def _bootstrap_method(resamples: int, seed: int) -> str:
    return f"bootstrap(resamples={resamples},seed={seed})"


def _check_texts(preds: Sequence, refs: Sequence[Sequence]) -> None:
    """Fail with the item index, not deep inside sacrebleu or rouge-score, on a non-string or a reference-less item."""
    for i, (p, r) in enumerate(zip(preds, refs)):
        if not isinstance(p, str):
            raise ValueError(f"prediction {i} is {type(p).__name__}, expected str")
        if not r:
            raise ValueError(f"item {i} has no reference")
        for x in r:
            if not isinstance(x, str):
                raise ValueError(f"a reference of item {i} is {type(x).__name__}, expected str")


# ---------------------------------------------------------------------------------------------------------------
# Exact match

def normalise_answer(text: str) -> str:
    """The exact_match normalisation: lowercase (str.lower), collapse every run of Unicode whitespace to one space,
    then strip from both ends any character that is whitespace or Unicode punctuation (general category P*:
    . , ! ? : ; ' " - _ ( ) [ ] { } # % & * @ / \\ and their non-ASCII forms such as « » “ ” 。 ¿). Symbols
    ($ + < = > ^ ` | ~ €) and inner punctuation are kept, so "U.S." -> "u.s" and "$5" stays "$5"; note that a
    leading hyphen-minus is punctuation, so "-5" -> "5". No Unicode normal form is applied."""
    text = " ".join(text.lower().split())
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


@register_metric("exact_match", True, "share of items whose normalised prediction equals any normalised reference; "
                 "normalisation (harness.scoring.metrics.normalise_answer): lowercase, collapse whitespace, "
                 "strip surrounding "
                 "whitespace and Unicode punctuation (category P*); Wilson interval")
def _exact_match(preds, refs, resamples, seed):
    n = len(preds)
    if n == 0:
        return _empty("wilson")
    _check_texts(preds, refs)
    per_item = [float(normalise_answer(p) in {normalise_answer(r) for r in rs}) for p, rs in zip(preds, refs)]
    low, high = wilson(sum(per_item), n)
    return MetricScore(sum(per_item) / n, low, high, n, "wilson", per_item=per_item)


# ---------------------------------------------------------------------------------------------------------------
# sacrebleu corpus metrics: BLEU and chrF

def _sacrebleu_corpus(metric, sentence_metric, preds, refs, resamples, seed) -> MetricScore:
    """Corpus score plus a bootstrap over per-sentence sufficient statistics, as sacrebleu's own paired bootstrap
    does: each resample sums the resampled rows and recomputes the corpus score, instead of re-tokenising."""
    # sacrebleu has no public API for per-sentence statistics; its own significance module uses these two methods.
    stats = np.array(metric._extract_corpus_statistics(preds, reference_streams(refs)), dtype=np.int64)  # (n, n_stats)

    def corpus(idx: np.ndarray) -> float:
        # Python ints (tolist) so the arithmetic is exactly sacrebleu's own on the summed lists.
        return float(metric._compute_score_from_stats(stats[idx].sum(axis=0).tolist()).score)

    n = len(preds)
    value = corpus(np.arange(n))
    low, high = bootstrap_ci(corpus, n, resamples, seed)
    per_item = [float(sentence_metric._compute_score_from_stats(row.tolist()).score) for row in stats]
    return MetricScore(value, low, high, n, _bootstrap_method(resamples, seed), str(metric.get_signature()),
                       per_item=per_item)


@register_metric("bleu", True, "corpus BLEU, 0-100 (sacrebleu BLEU() defaults: 13a tokenizer, mixed case, exp "
                 "smoothing); any number of references per item; per item: sentence BLEU (effective order, as "
                 "sacrebleu.sentence_bleu); seeded bootstrap over per-sentence n-gram statistics", scale=100)
def _bleu(preds, refs, resamples, seed):
    from sacrebleu.metrics import BLEU

    if not preds:
        return _empty("bootstrap")
    _check_texts(preds, refs)
    return _sacrebleu_corpus(BLEU(), BLEU(effective_order=True), preds, refs, resamples, seed)


@register_metric("chrf", True, "corpus chrF2, 0-100 (sacrebleu CHRF() defaults: character 6-grams, beta 2, "
                 "whitespace ignored); best reference per item; per item: sentence chrF; seeded bootstrap over "
                 "per-sentence character n-gram statistics", scale=100)
def _chrf(preds, refs, resamples, seed):
    from sacrebleu.metrics import CHRF

    if not preds:
        return _empty("bootstrap")
    _check_texts(preds, refs)
    metric = CHRF()
    return _sacrebleu_corpus(metric, metric, preds, refs, resamples, seed)


# ---------------------------------------------------------------------------------------------------------------
# ROUGE

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _rouge(kind: str):
    def compute(preds, refs, resamples, seed):
        from rouge_score import rouge_scorer

        if not preds:
            return _empty("bootstrap")
        _check_texts(preds, refs)
        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        # score_multi keeps the reference with the highest F (first on ties); with one reference it is score().
        per_item = [float(scorer.score_multi(r, p)[kind].fmeasure) for p, r in zip(preds, refs)]
        low, high = mean_ci(per_item, resamples, seed)
        return MetricScore(float(np.mean(per_item)), low, high, len(preds), _bootstrap_method(resamples, seed),
                           per_item=per_item)

    return compute


_ROUGE_NOTE = ("rouge-score RougeScorer(use_stemmer=True): mean over items of the F-measure, 0-1 (as HF evaluate's "
               "rouge with use_aggregator=False, averaged); several references: the one with the highest F "
               "(RougeScorer.score_multi); its tokenizer keeps only ASCII [a-z0-9] runs, so non-English text scores "
               "poorly (use chrf); seeded bootstrap of the mean")
_ROUGE_WHAT = {
    "rouge1": "unigram overlap",
    "rouge2": "bigram overlap",
    "rougeL": "longest common subsequence over the whole text (newlines ignored)",
    "rougeLsum": "summary-level LCS over sentences; a sentence is a '\\n'-separated line, as in rouge-score and HF "
                 "evaluate, and no sentence splitting is added, so single-line text scores as one sentence",
}
for _kind in ROUGE_TYPES:
    register_metric(_kind, True, f"{_ROUGE_WHAT[_kind]}; {_ROUGE_NOTE}")(_rouge(_kind))


# ---------------------------------------------------------------------------------------------------------------
# Classification extras

def per_class_f1(preds: Sequence[str], refs: Sequence[Sequence[str] | str]) -> dict[str, float]:
    """F1 of each gold label (scikit-learn f1_score, average=None, zero_division=0), over the same labels as
    macro_f1, so the mean of these values is macro_f1. refs may be the registry's lists (first one is the label)
    or plain labels."""
    from sklearn.metrics import f1_score

    gold = [r if isinstance(r, str) else r[0] for r in refs]
    if len(gold) != len(preds):
        raise ValueError(f"{len(preds)} predictions but {len(gold)} references")
    if not gold:
        return {}
    labels = sorted(set(gold))
    scores = f1_score(gold, list(preds), labels=labels, average=None, zero_division=0)
    return {label: float(s) for label, s in zip(labels, scores)}


OTHER = "(other)"  # a prediction that is none of the gold labels (a generative model's free text)


def confusion_matrix(preds: Sequence[str], refs: Sequence[Sequence[str] | str]) -> dict[str, Any]:
    """How often each gold label was predicted as each label: {labels (rows: the gold labels, sorted, as in
    per_class_f1), predicted (columns: the same labels, then OTHER when some prediction is none of them),
    counts[row][column]}. Counted here, not with scikit-learn (tests/harness/test_confusion.py checks against it)."""
    gold = [r if isinstance(r, str) else r[0] for r in refs]
    if len(gold) != len(preds):
        raise ValueError(f"{len(preds)} predictions but {len(gold)} references")
    labels = sorted(set(gold))
    column = {label: i for i, label in enumerate(labels)}
    predicted = labels + [OTHER] * any(p not in column for p in preds)
    counts = [[0] * len(predicted) for _ in labels]
    for g, p in zip(gold, preds):
        counts[column[g]][column.get(p, len(labels))] += 1
    return {"labels": labels, "predicted": predicted, "counts": counts}


# ---------------------------------------------------------------------------------------------------------------
# Loss and perplexity: computed from per-item numbers, not from strings

LOSS_METRICS = ("loss", "perplexity")


def score_losses(losses: Sequence[float], token_counts: Sequence[int], resamples: int = 1000,
                 seed: int = 0) -> dict[str, MetricScore]:
    """Token-weighted mean loss and perplexity = exp(loss) from per-item mean token losses (nats) and the number
    of scored tokens of each item. The interval is a seeded bootstrap over items of the ratio
    sum(loss_i * tokens_i) / sum(tokens_i); perplexity's interval is exp of the loss interval (exp is monotone)."""
    loss = np.asarray(losses, dtype=float)
    tokens = np.asarray(token_counts, dtype=float)
    if loss.shape != tokens.shape or loss.ndim != 1:
        raise ValueError(f"{loss.size} losses but {tokens.size} token counts")
    if not np.all(np.isfinite(loss)):
        raise ValueError(f"loss of item {int(np.argmin(np.isfinite(loss)))} is not finite")
    if np.any(tokens < 1) or np.any(tokens != np.round(tokens)):
        raise ValueError("token counts must be whole numbers >= 1 (drop items with no scored tokens)")
    n = len(loss)
    method = _bootstrap_method(resamples, seed)
    if n == 0:
        return {"loss": _empty("bootstrap"), "perplexity": _empty("bootstrap")}
    weighted = loss * tokens

    def mean_loss(idx: np.ndarray) -> float:
        return float(weighted[idx].sum() / tokens[idx].sum())

    value = mean_loss(np.arange(n))
    low, high = bootstrap_ci(mean_loss, n, resamples, seed)
    return {
        "loss": MetricScore(value, low, high, n, method, per_item=loss.tolist()),
        "perplexity": MetricScore(math.exp(value), math.exp(low), math.exp(high), n, method,
                                  per_item=np.exp(loss).tolist()),
    }


def _needs_losses(name: str):
    def compute(preds, refs, resamples, seed):
        raise ValueError(f"metric '{name}' is computed from per-item losses and token counts, not from prediction "
                         "strings; call harness.scoring.metrics.score_losses(losses, token_counts)")

    return compute


register_metric("loss", False, "token-weighted mean cross-entropy (nats) over items; from per-item losses via "
                "harness.scoring.metrics.score_losses, not from strings; seeded bootstrap of the ratio of sums",
                from_losses=True)(_needs_losses("loss"))
register_metric("perplexity", False, "exp of the token-weighted mean loss; from per-item losses via "
                "harness.scoring.metrics.score_losses, not from strings; interval is exp of the loss interval",
                from_losses=True)(_needs_losses("perplexity"))
