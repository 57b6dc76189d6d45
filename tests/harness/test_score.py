"""Every metric in harness.scoring.metrics on cases computed by hand, and against its reference library (sacrebleu,
rouge-score, scikit-learn) on real data from ../shared/data when it is there, to the last digit; plus edge cases,
interval determinism and harness.scoring.files."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, f1_score

from harness.errors import ConfigError, DataError
from harness.scoring.metrics import (METRICS, ROUGE_TYPES, normalise_answer, per_class_f1, reference_streams, score,
                           score_losses)
from harness.scoring.files import score_files

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TEXT_METRICS = ("exact_match", "bleu", "chrf", *ROUGE_TYPES)


def _data(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"../shared/data not found: {path} (real-data metric tests need the shared data folder)")
    return path


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


@pytest.fixture(scope="module")
def multi30k() -> tuple[list[str], list[str]]:
    """German captions as references; predictions are the same lines with every 3rd one's word order reversed."""
    with gzip.open(_data("multi30k/val.de.gz"), "rt", encoding="utf-8") as f:
        refs = _lines(f.read())
    preds = [" ".join(r.split()[::-1]) if i % 3 == 0 else r for i, r in enumerate(refs)]
    return preds, refs


@pytest.fixture(scope="module")
def dialogsum() -> tuple[list[str], list[list[str]]]:
    """summary1 as the prediction, summary2 and summary3 as two references of every dialogue."""
    rows = [json.loads(line) for line in _data("dialogsum/test.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["summary1"] for r in rows], [[r["summary2"], r["summary3"]] for r in rows]


@pytest.fixture(scope="module")
def sst2() -> tuple[list[str], list[str]]:
    """Gold SST-2 dev labels and predictions with every 7th label flipped."""
    rows = _data("sst2/dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    gold = [row.rsplit("\t", 1)[1].strip() for row in rows]
    preds = [("0" if g == "1" else "1") if i % 7 == 0 else g for i, g in enumerate(gold)]
    return preds, gold


def _unequal(refs: list[list[str]]) -> list[list[str]]:
    """Drop the second reference of every 4th item, so items have one or two references."""
    return [r[:1] if i % 4 == 0 else r for i, r in enumerate(refs)]


# --- classification -----------------------------------------------------------------------------------------

def test_accuracy_and_macro_f1_match_sklearn_on_sst2(sst2):
    preds, gold = sst2
    refs = [[g] for g in gold]
    assert score("accuracy", preds, refs).value == accuracy_score(gold, preds)
    assert score("macro_f1", preds, refs).value == f1_score(gold, preds, average="macro", zero_division=0)


# gold a a b b c, predicted a b b b a: a TP 1 FP 1 FN 1 (F1 1/2); b TP 2 FP 1 FN 0 (P 2/3, R 1, F1 4/5);
# c TP 0 FN 1 (F1 0). A predicted label that is never gold ('d') only costs its item's gold class.
HAND_GOLD, HAND_PRED = ["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"]


def test_macro_and_per_class_f1_by_hand():
    refs = [[g] for g in HAND_GOLD]
    assert per_class_f1(HAND_PRED, refs) == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0}, abs=1e-15)
    assert score("macro_f1", HAND_PRED, refs).value == pytest.approx((0.5 + 0.8 + 0.0) / 3, abs=1e-15)
    assert score("accuracy", HAND_PRED, refs).value == 0.6
    # item 5 predicted 'd' instead of 'a': c still has F1 0, a loses its false positive (P 1, R 1/2, F1 2/3)
    other = HAND_PRED[:4] + ["d"]
    assert per_class_f1(other, refs) == pytest.approx({"a": 2 / 3, "b": 0.8, "c": 0.0}, abs=1e-15)
    assert score("macro_f1", other, refs).value == pytest.approx((2 / 3 + 0.8) / 3, abs=1e-15)
    assert score("macro_f1", HAND_GOLD, refs).value == 1.0 and score("macro_f1", ["z"] * 5, refs).value == 0.0


@pytest.mark.parametrize("trial", range(12))
def test_macro_f1_interval_equals_sklearn_on_every_resample(trial):
    """The bootstrap computes every resample's macro F1 at once (numpy counts); it must equal scikit-learn's f1_score
    on each resample's items, so the interval is the same to the last bit: missing labels in a resample, predictions
    outside the gold labels, one item."""
    from harness.statistics.intervals import bootstrap_ci

    rng = np.random.default_rng(trial)
    labels = list("abcdefg")[: int(rng.integers(2, 8))]
    n = int(rng.integers(1, 90))
    gold = [str(rng.choice(labels)) for _ in range(n)]
    preds = [g if rng.random() < 0.6 else str(rng.choice(labels + ["zz"])) for g in gold]
    g, p, known = np.array(gold, dtype=object), np.array(preds, dtype=object), sorted(set(gold))
    want = bootstrap_ci(lambda idx: float(f1_score(g[idx], p[idx], labels=known, average="macro", zero_division=0)),
                        n, 150, trial)
    got = score("macro_f1", preds, [[x] for x in gold], 150, trial)
    assert (got.ci_low, got.ci_high) == want
    assert got.value == f1_score(gold, preds, labels=known, average="macro", zero_division=0)


def test_per_class_f1_averages_to_macro_f1_on_sst2(sst2):
    preds, gold = sst2
    got = per_class_f1(preds, [[g] for g in gold])
    assert set(got) == {"0", "1"} and per_class_f1(preds, gold) == got
    assert abs(np.mean(list(got.values())) - score("macro_f1", preds, [[g] for g in gold]).value) < 1e-12
    assert per_class_f1([], []) == {}


# --- exact match --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, normal", [
    ("  Paris. ", "paris"), ("'Positive'", "positive"), ("( Paris )", "paris"), ("New \t\n York", "new york"),
    ("U.S.", "u.s"), ("$5", "$5"), ("-5", "5"), ("«Grüße!»", "grüße"), ("東京。", "東京"), ("...", ""), ("", ""),
])
def test_normalise_answer(raw, normal):
    assert normalise_answer(raw) == normal


def test_exact_match_equals_accuracy_on_normalised_sst2(sst2):
    preds, gold = sst2
    decorated = [f" '{p}'." if i % 2 else p.upper() for i, p in enumerate(preds)]
    got = score("exact_match", decorated, [[g] for g in gold])
    assert got.value == accuracy_score(gold, preds)
    assert got.per_item == [float(p == g) for p, g in zip(preds, gold)]


def test_exact_match_counts_any_reference():
    got = score("exact_match", ["Berlin", "bonn!", "x", ""], [["Paris", "berlin"], ["Bonn"], ["y", "z", "w"], [""]])
    assert got.per_item == [1.0, 1.0, 0.0, 1.0]
    assert got.value == 0.75 and got.ci_method == "wilson"


# --- BLEU and chrF ------------------------------------------------------------------------------------------

def test_bleu_by_hand():
    """Every n-gram precision is 1 (5/5, 4/4, 3/3, 2/2); the hypothesis is one token short of the reference's 6, so
    BLEU = 100 * brevity penalty = 100 * exp(1 - 6/5)."""
    got = score("bleu", ["the cat sat on the"], [["the cat sat on the mat"]])
    assert got.value == pytest.approx(100 * math.exp(1 - 6 / 5), rel=1e-12)
    assert score("bleu", ["the cat sat on the mat"], [["the cat sat on the mat"]]).value == pytest.approx(100, rel=1e-12)
    # two references: the closest length (6, not 2) sets the brevity penalty; precisions count against either
    assert score("bleu", ["the cat sat on the"], [["a cat", "the cat sat on the mat"]]).value == pytest.approx(
        100 * math.exp(1 - 6 / 5), rel=1e-12)


def test_bleu_matches_sacrebleu_on_multi30k(multi30k):
    preds, refs = multi30k
    got = score("bleu", preds, [[r] for r in refs])
    metric = BLEU()
    expected = metric.corpus_score(preds, [refs])
    assert got.value == expected.score == sacrebleu.corpus_bleu(preds, [refs]).score
    assert got.signature == str(metric.get_signature())
    assert got.per_item == [sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(preds, refs)]
    assert 0 < got.value < 100 and got.n == len(refs)


def test_chrf_matches_sacrebleu_on_multi30k(multi30k):
    preds, refs = multi30k
    got = score("chrf", preds, [[r] for r in refs])
    metric = CHRF()
    assert got.value == metric.corpus_score(preds, [refs]).score == sacrebleu.corpus_chrf(preds, [refs]).score
    assert got.signature == str(metric.get_signature())
    assert got.per_item == [CHRF().sentence_score(p, [r]).score for p, r in zip(preds, refs)]


@pytest.mark.parametrize("name, cls", [("bleu", BLEU), ("chrf", CHRF)])
def test_sacrebleu_multi_reference_unequal_counts_on_dialogsum(dialogsum, name, cls):
    preds, refs = dialogsum
    refs = _unequal(refs)
    got = score(name, preds, refs)
    metric = cls()
    assert got.value == metric.corpus_score(preds, reference_streams(refs)).score
    assert got.signature == str(metric.get_signature())
    assert "nrefs:var" in got.signature
    # per-item scores come from the padded corpus statistics; they must equal scoring each item on its own refs
    sentence = cls(effective_order=True) if cls is BLEU else cls()
    assert got.per_item == [sentence.sentence_score(p, r).score for p, r in zip(preds, refs)]


def test_reference_streams_pad_with_none():
    assert reference_streams([["a"], ["b", "c"]]) == [["a", "b"], [None, "c"]]


def test_padding_is_not_an_empty_reference():
    # an empty-string placeholder would add a length-0 reference and change BLEU's brevity penalty
    long = "a b c d e f g h i j k l"
    preds, refs = ["a b c d e", "a b c d"], [[long], ["a b c d", "a b c"]]
    padded = BLEU().corpus_score(preds, [[long, "a b c d"], [None, "a b c"]]).score
    assert score("bleu", preds, refs).value == padded
    assert BLEU().corpus_score(preds, [[long, "a b c d"], ["", "a b c"]]).score != padded


# --- ROUGE --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ROUGE_TYPES)
def test_rouge_matches_rouge_score_on_dialogsum(dialogsum, kind):
    preds, refs = dialogsum
    refs = _unequal(refs)
    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    expected = [scorer.score_multi(r, p)[kind].fmeasure for p, r in zip(preds, refs)]
    got = score(kind, preds, refs)
    assert got.per_item == expected
    assert abs(got.value - np.mean(expected)) <= 1e-12
    assert 0 <= got.value <= 1


def test_rouge_multi_reference_takes_best_f(dialogsum):
    preds, refs = dialogsum
    preds, refs = preds[:50], refs[:50]
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    best = [max(scorer.score(r, p)["rouge1"].fmeasure for r in rs) for p, rs in zip(preds, refs)]
    assert score("rouge1", preds, refs).per_item == best


# rouge-score's tokenizer lowercases and keeps runs of [a-z0-9]; tokens longer than 3 characters are stemmed.
@pytest.mark.parametrize("pred, ref, expected", [
    # 6 tokens each; unigrams in common: the, cat, on, mat (4); bigrams: 'the cat' (1 of 5); LCS: the cat on mat (4)
    ("the cat sat on the mat", "the cat was on a mat", {"rouge1": 4 / 6, "rouge2": 1 / 5, "rougeL": 4 / 6}),
    # stemmed: dogs -> dog, running and runs -> run; P 2/4, R 2/3, F 4/7; no bigram in common
    ("The dogs were running!", "a dog runs", {"rouge1": 4 / 7, "rouge2": 0.0, "rougeL": 4 / 7}),
    # non-ASCII letters split words: m|dchen, ber, stra|e; 8 tokens, all but laufen/rennen shared, 5 of 7 bigrams
    ("Die Mädchen laufen über die Straße.", "Die Mädchen rennen über die Straße.",
     {"rouge1": 7 / 8, "rouge2": 5 / 7, "rougeL": 7 / 8}),
    ("東京は日本の首都です。", "東京は日本の首都です。", {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}),  # no tokens
])
def test_rouge_by_hand(pred, ref, expected):
    for kind, value in expected.items():
        got = score(kind, [pred], [[ref]])
        assert got.per_item == pytest.approx([value], abs=1e-15) and got.value == pytest.approx(value, abs=1e-15)


def test_rouge_lsum_by_hand():
    """Two sentences in swapped order: each reference sentence is matched whole by one predicted sentence (summary
    level LCS 6 of 6), while the LCS of the whole texts is 3 of 6; bigrams: 4 of 5 ('f a' vs 'c d' differ)."""
    pred, ref = "d e f\na b c", "a b c\nd e f"
    assert score("rougeLsum", [pred], [[ref]]).value == 1.0
    assert score("rougeL", [pred], [[ref]]).value == 0.5
    assert score("rouge2", [pred], [[ref]]).value == pytest.approx(0.8, abs=1e-15)
    one_line = [pred.replace("\n", " ")], [[ref.replace("\n", " ")]]
    assert score("rougeLsum", *one_line).value == score("rougeL", *one_line).value == 0.5  # one sentence each


def test_rouge_takes_the_best_reference_and_averages_items():
    got = score("rouge1", ["the cat sat on the mat", "a dog runs"], [["a mat", "the cat sat on the mat"],
                                                                     ["The dogs were running!"]])
    assert got.per_item == pytest.approx([1.0, 4 / 7], abs=1e-15)
    assert got.value == pytest.approx((1 + 4 / 7) / 2, abs=1e-15)


# --- edge cases ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TEXT_METRICS + ("accuracy", "macro_f1"))
def test_zero_items_give_nan_not_a_crash(name):
    got = score(name, [], [])
    assert got.n == 0 and math.isnan(got.value) and math.isnan(got.ci_low) and math.isnan(got.ci_high)


def test_empty_predictions_score_zero():
    preds, refs = ["", "ein Hund läuft"], [["ein Hund läuft"], ["ein Hund läuft"]]
    bleu = score("bleu", preds, refs)
    assert bleu.value == BLEU().corpus_score(preds, [[r[0] for r in refs]]).score
    assert bleu.per_item[0] == 0.0
    assert score("chrf", preds, refs).per_item[0] == 0.0
    for kind in ROUGE_TYPES:
        assert score(kind, preds, refs).per_item[0] == 0.0
    assert score("bleu", [""], [["a b c"]]).value == 0.0


UNICODE_PREDS = ["Die Mädchen laufen über die Straße.", "東京は日本の首都です。", "Ein Junge isst Äpfel"]
UNICODE_REFS = [["Die Mädchen rennen über die Straße."], ["東京は日本の首都です。", "日本の首都は東京です。"],
                ["Ein Junge isst einen Apfel"]]


def test_unicode_matches_libraries():
    streams = reference_streams(UNICODE_REFS)
    assert score("bleu", UNICODE_PREDS, UNICODE_REFS).value == BLEU().corpus_score(UNICODE_PREDS, streams).score
    assert score("chrf", UNICODE_PREDS, UNICODE_REFS).value == CHRF().corpus_score(UNICODE_PREDS, streams).score
    # by hand (see test_rouge_by_hand): 7 of 8 tokens; no ASCII token at all; 'ein junge isst' of 4 and 5 tokens
    # (Äpfel -> pfel), so P 3/4, R 3/5, F 2/3
    assert score("rougeL", UNICODE_PREDS, UNICODE_REFS).per_item == pytest.approx([7 / 8, 0.0, 2 / 3], abs=1e-15)
    assert score("exact_match", ["東京は日本の首都です"], [["東京は日本の首都です。"]]).value == 1.0


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_single_item(name):
    got = score(name, ["a small dog runs"], [["a small dog runs fast"]])
    assert got.n == 1 and got.ci_low <= got.value <= got.ci_high


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_bad_inputs_fail_clearly(name):
    with pytest.raises(ValueError, match="item 1 has no reference"):
        score(name, ["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="prediction 0 is NoneType"):
        score(name, [None], [["a"]])
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score(name, ["a", "b"], [["a"]])


# --- intervals ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bleu", "chrf", "exact_match", "rouge2"])  # rouge1 ignores word order: 1.0
def test_intervals_are_seeded_and_contain_the_value(multi30k, name):
    preds, refs = multi30k
    refs = [[r] for r in refs]
    a = score(name, preds, refs, resamples=200, seed=3)
    b = score(name, preds, refs, resamples=200, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low <= a.value <= a.ci_high and a.ci_low < a.ci_high
    if name != "exact_match":  # Wilson intervals do not depend on the seed
        c = score(name, preds, refs, resamples=200, seed=4)
        assert (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)
        assert a.ci_method == "bootstrap(resamples=200,seed=3)"


# --- loss and perplexity ------------------------------------------------------------------------------------

def test_score_losses_token_weighted():
    rng = np.random.Generator(np.random.PCG64(0))  # a named bit generator: see tests/harness/test_coverage.py
    losses, counts = rng.uniform(1, 4, 300).tolist(), rng.integers(1, 60, 300).tolist()
    got = score_losses(losses, counts, resamples=300, seed=1)
    expected = float(np.dot(losses, counts) / np.sum(counts))
    assert abs(got["loss"].value - expected) < 1e-12
    assert got["perplexity"].value == math.exp(got["loss"].value)
    assert got["perplexity"].ci_low == math.exp(got["loss"].ci_low)
    assert got["loss"].ci_low <= got["loss"].value <= got["loss"].ci_high
    assert score_losses(losses, counts, resamples=300, seed=1) == got
    assert got["loss"].per_item == losses and got["loss"].n == 300


def test_score_losses_edges():
    assert math.isnan(score_losses([], [])["perplexity"].value)
    with pytest.raises(ValueError, match="2 losses but 1 token counts"):
        score_losses([1.0, 2.0], [3])
    with pytest.raises(ValueError, match="not finite"):
        score_losses([1.0, float("nan")], [3, 3])
    with pytest.raises(ValueError, match=">= 1"):
        score_losses([1.0], [0])


def test_registry_directions_and_loss_metrics_refuse_strings():
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"loss", "perplexity"}
    assert set(TEXT_METRICS) <= set(METRICS)
    for name in ("loss", "perplexity"):
        with pytest.raises(ValueError, match="score_losses"):
            score(name, ["2.3"], [["x"]])


# --- score_files --------------------------------------------------------------------------------------------

def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_score_files_text_matches_score(tmp_path, multi30k):
    preds, refs = multi30k
    p = _write(tmp_path / "hyp.txt", "\n".join(preds) + "\n")
    r = _write(tmp_path / "ref.de", "\n".join(refs))  # no trailing newline: same items
    got = score_files("bleu", p, [r], resamples=100)
    expected = score("bleu", preds, [[x] for x in refs], resamples=100)
    assert got == {"metric": "bleu", "value": expected.value, "ci_low": expected.ci_low,
                   "ci_high": expected.ci_high, "n": len(refs), "signature": expected.signature}


def test_score_files_jsonl_and_multi_reference(tmp_path):
    rows = [{"prediction": "the cat sat", "reference": "the cat sat down"},
            {"prediction": "a dog", "reference": "a dog"}]
    both = _write(tmp_path / "both.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    second = _write(tmp_path / "second.jsonl", json.dumps({"text": "the cat sat"}) + "\nnull\n")
    got = score_files("exact_match", both, [both, second], resamples=10)
    assert got["value"] == 1.0 and got["n"] == 2 and got["signature"] == ""
    third = _write(tmp_path / "third.txt", "the cat sat\n\n")  # empty line: no 3rd reference for item 2
    got = score_files("chrf", both, [both, second, third], resamples=10)
    refs = [["the cat sat down", "the cat sat", "the cat sat"], ["a dog"]]
    assert got["value"] == CHRF().corpus_score(["the cat sat", "a dog"], reference_streams(refs)).score
    strings = _write(tmp_path / "strings.jsonl", '"the cat sat down"\n"a cow"\n')
    assert score_files("exact_match", strings, [both])["value"] == 0.5


def test_score_files_errors_name_the_file(tmp_path):
    preds = _write(tmp_path / "p.txt", "a\nb\nc\n")
    short = _write(tmp_path / "short.txt", "a\nb\n")
    with pytest.raises(DataError, match="2 items but the predictions file") as err:
        score_files("bleu", preds, [short])
    assert err.value.path == str(short)
    empty = _write(tmp_path / "empty.txt", "")
    for args in ((empty, [short]), (preds, [empty])):
        with pytest.raises(DataError, match="file is empty") as err:
            score_files("bleu", *args)
        assert err.value.path == str(empty)
    bad = _write(tmp_path / "bad.jsonl", '"a"\n{"text": \n"c"\n')
    with pytest.raises(DataError, match="bad JSON") as err:
        score_files("bleu", bad, [preds])
    assert (err.value.path, err.value.line) == (str(bad), 2)
    nokey = _write(tmp_path / "nokey.jsonl", '{"answer": "a"}\n')
    with pytest.raises(DataError, match="no 'prediction' or 'text' key"):
        score_files("bleu", nokey, [nokey])
    with pytest.raises(DataError, match="file not found"):
        score_files("bleu", tmp_path / "missing.txt", [preds])
    with pytest.raises(ConfigError, match="unknown metric 'blue'"):
        score_files("blue", preds, [preds])
    with pytest.raises(ConfigError, match="per-item losses"):
        score_files("perplexity", preds, [preds])


def test_score_files_line_handling(tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("\ufeffGrüße\r\nx\u2028y\r\n".encode())
    ref = _write(tmp_path / "ref.txt", "grüße\nx\u2028y\n")
    got = score_files("exact_match", crlf, [ref])
    assert got["n"] == 2 and got["value"] == 1.0
    one_empty = _write(tmp_path / "one.txt", "\n")
    assert score_files("bleu", one_empty, [_write(tmp_path / "r1.txt", "a b\n")])["n"] == 1
