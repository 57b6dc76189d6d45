"""`sftbench compare` as a table: rendered into a fixed-width colourless console it equals the golden text, stays
ASCII and within the width, shows each metric on its own scale, names the better run only when the corrected
difference is significant (in the metric's direction), lists omitted rows with the reason instead of numbers,
and prints names as data (never as rich markup)."""
from __future__ import annotations

import copy
import io
import os
from pathlib import Path

from rich.console import Console

from reports.compare import render_comparison

GOLDEN = Path(__file__).parent / "golden" / "compare.txt"
TEST = "mean of per-item accuracy; McNemar exact p; paired bootstrap 95% percentile interval (resamples=2000, seed=0)"


def compared(candidate, benchmark, split, metric, a, b, low, high, p, significant, higher=True, test=TEST):
    return {"candidate": candidate, "benchmark": benchmark, "split": split, "metric": metric, "higher_is_better": higher,
            "a": a, "b": b, "diff": a - b, "ci_low": low, "ci_high": high, "p_value": p, "test": test, "n": 228,
            "significant": significant}


def sample() -> dict:
    bleu = "corpus bleu from sacrebleu statistics; null-shifted bootstrap p; paired bootstrap 95% percentile interval"
    f1 = "macro-F1 from predictions and gold; null-shifted bootstrap p; paired bootstrap 95% percentile interval"
    rows = [
        compared("minilm-l6", "support_intents", "test", "accuracy", 0.829, 0.781, 0.018, 0.079, 0.0021, True),
        compared("minilm-l6", "support_intents", "test", "macro_f1", 0.801, 0.779, -0.011, 0.055, 0.19, False, test=f1),
        compared("smollm2-135m", "ticket_summaries", "test", "bleu", 21.37, 24.05, -4.91, -0.52, 0.00004, True,
                 test=bleu),
        {"candidate": "smollm2-135m", "benchmark": "ticket_summaries", "split": "test", "metric": "loss",
         "higher_is_better": False, "omitted": "loss is token-weighted and token counts are not stored; the mean of "
                                               "per-item loss is another number"},
        compared("smollm2-135m", "general_knowledge", "after", "probe_correct", 0.62, 0.66, -0.1, 0.02, 0.31, False,
                 test="mean of per-item probe_correct; McNemar exact p; paired bootstrap 95% percentile interval"),
    ]
    return {"a": {"run_id": "20260301-101500-aaaaaa", "name": "nightly", "created": "2026-03-01T10:15:00+0000"},
            "b": {"run_id": "20260228-101500-bbbbbb", "name": "nightly", "created": "2026-02-28T10:15:00+0000"},
            "correction": "holm", "alpha": 0.05, "rows": rows}


def rendered(comparison: dict, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    render_comparison(comparison, console)
    return console.file.getvalue()


def test_compare_table_matches_golden_text():
    text = rendered(sample())
    if os.environ.get("SFTBENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_plain_ascii_and_width_aware():
    for width in (60, 80, 100, 160):
        text = rendered(sample(), width)
        assert text.isascii() and max(len(line) for line in text.splitlines()) <= width


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]


def test_scales_direction_and_omitted_rows():
    text = rendered(sample(), 160)
    rows = table_rows(text)
    assert rows[2][:7] == ["minilm-l6", "support_intents/test", "82.9", "78.1", "+4.8", "0.0021", "a better"]
    assert rows[3][1:] == ["accuracy %", "", "", "[+1.8, +7.9]", "", ""]  # the interval under the difference
    assert rows[4][2:7] == ["80.1", "77.9", "+2.2", "0.19", "no"]  # not significant: no winner named
    assert rows[6][2:7] == ["21.37", "24.05", "-2.68", "<0.0001", "b better"]  # BLEU on its own 0-100 scale
    assert rows[7][1] == "bleu" and rows[9][1] == "probe_correct %"
    assert "general_knowledge (probe)" in text
    assert "loss" not in [r[1] for r in rows]  # omitted: no numbers under its name...
    assert ("not compared: smollm2-135m / ticket_summaries/test loss: loss is token-weighted and token counts are "
            "not stored") in text  # ...and the reason under the table
    assert "significant: Holm-adjusted p < 0.05 over the 4 compared rows" in text
    assert "macro_f1: macro-F1 from predictions and gold" in text and "a = run 20260301-101500-aaaaaa" in text
    lower = copy.deepcopy(sample())
    lower["rows"][0] |= {"higher_is_better": False}  # a higher loss-like metric is worse: b is better
    assert table_rows(rendered(lower, 160))[2][6] == "b better"


def test_only_omitted_rows_and_markup_as_data():
    only = sample()
    only["rows"] = [r for r in only["rows"] if "omitted" in r]
    text = rendered(only)
    assert "no row could be compared" in text and "+--" not in text and "not compared: smollm2-135m" in text
    marked = sample()
    marked["rows"][0]["candidate"] = "[red]x[/red]"
    assert "[red]x[/red]" in rendered(marked, 160)
