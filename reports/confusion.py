"""The HTML report's per-class section: for each candidate and classification benchmark, the confusion matrix on
test (rows: gold labels, columns: predicted, cells shaded by their share of the row, the diagonal in bold) with each
gold label's count and F1 beside its row. Reads only the results model; every label goes through html.escape."""
from __future__ import annotations

import html
from typing import Any

from harness.results.model import BenchmarkRow, CandidateRow, Results

SPLIT = "test"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f1(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) and value == value else "-"


def _cell(count: int, total: int, diagonal: bool) -> str:
    share = count / total if total else 0.0
    style = f' style="background: rgba(9, 105, 218, {0.55 * share:.2f})"' if count else ""
    text = f"<b>{count}</b>" if diagonal else str(count)
    return f'<td class="num"{style} title="{100 * share:.0f}% of the row">{text}</td>'


def matrix(cm: dict[str, Any], f1: dict[str, float]) -> str:
    """One confusion matrix as a table, per-class F1 in its last column."""
    predicted, counts = cm["predicted"], cm["counts"]
    head = "".join(f"<th>{_e(p)}</th>" for p in predicted)
    rows = []
    for i, (label, row) in enumerate(zip(cm["labels"], counts)):
        total = sum(row)
        cells = "".join(_cell(n, total, i == j) for j, n in enumerate(row))
        rows.append(f'<tr><th class="gold">{_e(label)}</th>{cells}<td class="num">{total}</td>'
                    f'<td class="num">{_f1(f1.get(label))}</td></tr>')
    return (f'<div class="scroll"><table class="confusion"><thead><tr><th>gold \\ predicted</th>{head}<th>n</th>'
            f"<th>F1 %</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def f1_only(f1: dict[str, float]) -> str:
    """Per-class F1 of a run stored before confusion matrices were."""
    rows = "".join(f'<tr><th class="gold">{_e(k)}</th><td class="num">{_f1(v)}</td></tr>' for k, v in f1.items())
    return f"<table><thead><tr><th>gold label</th><th>F1 %</th></tr></thead><tbody>{rows}</tbody></table>"


def _card(c: CandidateRow, b: BenchmarkRow) -> str:
    cm = (b.confusion or {}).get(SPLIT)
    f1 = (b.per_class_f1 or {}).get(SPLIT) or {}
    body = matrix(cm, f1) if cm else f1_only(f1)
    macro = sum(f1.values()) / len(f1) if f1 else None
    note = f"macro F1 {_f1(macro)} (the mean of the per-class F1)" if macro is not None else ""
    missing = "" if cm else "; no confusion matrix stored (a run from before it was recorded)"
    if cm and cm.get("seeds", 1) > 1:
        note += (f"; over {cm['seeds']} training seeds: counts summed over the seeds (n = {cm['seeds']} x rows), "
                 "F1 the mean of each seed's")
    return (f"<div><h3>{_e(c.name)} &middot; {_e(b.benchmark)}</h3><p class=\"muted\">{note}{missing}</p>"
            f"{body}</div>")


def per_class(results: Results) -> str:
    """Every candidate's confusion matrix and per-class F1 on test, for each classification benchmark it ran."""
    parts = [_card(c, b) for c in results.candidates for b in c.benchmarks
             if b.status == "ok" and ((b.confusion or {}).get(SPLIT) or (b.per_class_f1 or {}).get(SPLIT))]
    if not parts:
        return '<p class="muted">No classification benchmark was scored (or none stored its predictions).</p>'
    return f'<div class="cards">{"".join(parts)}</div>'
