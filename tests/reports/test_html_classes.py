"""The HTML report's per-class section and step-level loss: the confusion matrix and per-class F1 the harness
stored (harness/scoring/metrics.py) appear as escaped tables with the same counts, a run stored without a
confusion matrix still shows its F1, and the loss figure takes the training loss at every logged step."""
from __future__ import annotations

import html
import re

from harness.scoring.metrics import OTHER, confusion_matrix, per_class_f1
from reports.confusion import per_class
from reports.html import render_html
from reports.plots import _loss_points, loss_curves
from tests.reports.sample import sample_results, typed

HOSTILE = "<b>refund</b> & co"


def classified() -> dict:
    """The sample run with its first candidate's predictions scored against labels, one of them full of markup."""
    gold = ["billing", HOSTILE, "billing", HOSTILE, "shipping", "shipping", HOSTILE]
    preds = ["billing", HOSTILE, HOSTILE, "billing", "shipping", "it is about shipping", HOSTILE]
    results = sample_results()
    bench = results["candidates"][1]["benchmarks"][0]  # minilm-l6
    bench["per_class_f1"] = {"test": per_class_f1(preds, gold)}
    bench["confusion"] = {"test": confusion_matrix(preds, gold)}
    return results


def cells(table: str) -> list[list[str]]:
    """Each body row's cells as text: the gold label, the counts, n, F1 %."""
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)]
            for r in rows]


def test_the_confusion_table_holds_the_stored_counts_and_f1_escaped():
    section = per_class(typed(classified()))
    assert "<b>refund</b>" not in section and html.escape(HOSTILE) in section
    head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", section.split("<tbody>")[0])]
    assert head == ["gold \\ predicted", HOSTILE, "billing", "shipping", OTHER, "n", "F1 %"]  # labels sorted
    # gold HOSTILE: 2 right, 1 as billing; billing: 1 right, 1 as HOSTILE; shipping: 1 right, 1 free text
    assert cells(section) == [[HOSTILE, "2", "1", "0", "0", "3", "66.7"],
                              ["billing", "1", "1", "0", "0", "2", "50.0"],
                              ["shipping", "0", "0", "1", "1", "2", "66.7"]]
    assert "macro F1 61.1" in section and "minilm-l6 &middot; support_intents" in section


def test_a_run_without_confusion_matrices_still_shows_per_class_f1():
    results = classified()
    del results["candidates"][1]["benchmarks"][0]["confusion"]
    section = per_class(typed(results))
    assert "no confusion matrix stored" in section and "<td class=\"num\">66.7</td>" in section
    assert "No classification benchmark" in per_class(typed(sample_results()))


def test_the_page_has_the_section():
    page = render_html(typed(classified()))
    assert "<h2>Per-class F1 and confusion matrices (test)</h2>" in page and 'class="confusion"' in page


def test_loss_points_take_every_logged_step_then_fall_back():
    curve = [{"step": 0, "train_loss": None, "val_loss": 2.0}, {"step": 4, "train_loss": 1.5, "val_loss": 1.2}]
    train = {"train_loss": [1.5], "val_loss": [2.0, 1.2], "steps": 4, "curve": curve,
             "step_loss": [[1, 1.9], [2, 1.6], [3, 1.4], [4, 1.1]]}
    assert _loss_points(train) == ([(1, 1.9), (2, 1.6), (3, 1.4), (4, 1.1)], [(0, 2.0), (4, 1.2)])
    assert _loss_points({**train, "step_loss": []})[0] == [(4, 1.5)]  # a unit kept before step_loss: evaluations
    old = {"train_loss": [1.5, 1.0], "val_loss": [2.0, 1.2, 0.9], "steps": 8}  # a run from before step curves
    assert _loss_points(old) == ([(4.0, 1.5), (8.0, 1.0)], [(0.0, 2.0), (4.0, 1.2), (8.0, 0.9)])


def test_the_loss_figure_draws_a_point_per_logged_step():
    results = sample_results()
    steps = [[s, 2.0 - s / 100] for s in range(1, 31)]
    results["candidates"][1]["benchmarks"][0]["train"] = {"train_loss": [1.7], "val_loss": [2.1, 1.8], "steps": 30,
                                                          "step_loss": steps}
    svg = loss_curves(typed(results))
    assert svg is not None and "optimizer step (0 = before training)" in svg
    paths = re.findall(r'<path d="(M [^"]*)"', svg)
    assert sorted(len(re.findall(r"\bL ", p)) for p in paths)[-1] == 29  # one polyline through the 30 logged steps
