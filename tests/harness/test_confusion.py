"""The confusion matrix a classification benchmark stores (harness/scoring/metrics.py, counted by hand) equals
scikit-learn's on the same predictions, free-text predictions fall in one OTHER column, and a finished run's rows
carry it only for references of the same data (harness/execution/assemble.py)."""
from __future__ import annotations

import random

import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score

from harness.execution.assemble import confusions
from harness.scoring.metrics import OTHER, confusion_matrix, per_class_f1

LABELS = ["billing", "refund", "account_access", "bug_report", "shipping"]


def predictions(n: int = 300, seed: int = 3) -> tuple[list[str], list[list[str]]]:
    """Gold labels and predictions that are right 60% of the time, another label 35%, free text 5%."""
    rng = random.Random(seed)
    gold = [rng.choice(LABELS) for _ in range(n)]
    preds = []
    for g in gold:
        u = rng.random()
        preds.append(g if u < 0.6 else "I think it is about <money>" if u > 0.95 else rng.choice(LABELS))
    return preds, [[g] for g in gold]


def test_counts_equal_scikit_learns_confusion_matrix():
    preds, refs = predictions()
    got = confusion_matrix(preds, refs)
    assert got["labels"] == sorted(LABELS) and got["predicted"] == sorted(LABELS) + [OTHER]
    mapped = [p if p in LABELS else OTHER for p in preds]
    expected = sk_confusion([r[0] for r in refs], mapped, labels=got["predicted"])
    assert got["counts"] == expected[:len(LABELS)].tolist()  # rows: gold labels only (no gold is OTHER)
    assert sum(map(sum, got["counts"])) == len(preds)


def test_per_class_f1_equals_scikit_learns_and_follows_from_the_counts():
    preds, refs = predictions()
    gold = [r[0] for r in refs]
    f1 = per_class_f1(preds, refs)
    expected = f1_score(gold, preds, labels=sorted(LABELS), average=None, zero_division=0)
    assert list(f1.values()) == pytest.approx(expected.tolist(), abs=1e-12)
    cm = confusion_matrix(preds, refs)["counts"]
    for i, label in enumerate(sorted(LABELS)):  # F1 = 2 tp / (row sum + column sum) from the same counts
        tp, row, col = cm[i][i], sum(cm[i]), sum(r[i] for r in cm)
        assert f1[label] == pytest.approx(2 * tp / (row + col), abs=1e-12)


def test_all_predictions_known_gives_no_other_column():
    got = confusion_matrix(["a", "b", "b"], ["a", "b", "a"])
    assert got == {"labels": ["a", "b"], "predicted": ["a", "b"], "counts": [[1, 1], [0, 1]]}
    with pytest.raises(ValueError, match="2 predictions but 3 references"):
        confusion_matrix(["a", "b"], ["a", "b", "a"])


def test_rows_keep_only_splits_whose_references_are_of_the_same_data():
    preds, refs = predictions(20)
    references = {"test": {"data_sha256": "t" * 64, "items": refs}, "shifted": {"data_sha256": "new", "items": refs}}
    got = confusions({"test": preds, "shifted": preds}, references, {"test": "t" * 64, "shifted": "old"})
    assert list(got) == ["test"] and got["test"] == confusion_matrix(preds, refs)


def test_under_seeds_the_counts_sum_over_seeds_and_per_class_f1_is_the_seed_mean():
    """Three seeds' predictions on the same rows: each cell is the sum of the seeds' cells (scikit-learn's matrix of
    each seed, added), the matrix says how many seeds, and the merged per-class F1 is each label's mean over seeds."""
    from harness.execution.merge import _mean_f1

    _, gold = predictions(60, seed=1)
    rngs = [random.Random(s) for s in (1, 2, 3)]
    seeds = [[g[0] if rng.random() < 0.6 else rng.choice(LABELS) for g in gold] for rng in rngs]
    refs = {"test": {"items": gold, "data_sha256": "h"}}
    got = confusions({"test": seeds}, refs, {"test": "h"})["test"]
    labels = sorted({g[0] for g in gold})
    expected = sum(sk_confusion([g[0] for g in gold], preds, labels=labels) for preds in seeds)
    assert got["seeds"] == 3 and got["counts"] == expected.tolist()
    per_seed = [per_class_f1(preds, gold) for preds in seeds]
    mean = _mean_f1(per_seed)
    assert mean == {k: pytest.approx(sum(f[k] for f in per_seed) / 3) for k in labels}
    assert sum(mean.values()) / len(mean) == pytest.approx(
        sum(f1_score([g[0] for g in gold], preds, average="macro", labels=labels) for preds in seeds) / 3)
    assert "seeds" not in confusions({"test": seeds[0]}, refs, {"test": "h"})["test"]  # one seed: as before
