"""`sftbench compare A B` as a table (rich): one row per candidate, benchmark split (or probe) and metric that
both runs scored on the same items, with run a's value, run b's, the paired difference a - b with its 95%
interval, the p-value and whether it is significant after the correction across rows. Under the table: which
run is a and which b, what each metric's test was, and every row that was not compared, with the reason.

Renders the comparison object `harness/commands/history.py` builds: {a{run_id, name, created}, b{...}, correction,
alpha, rows[compare_runs rows], notes[environment_notes: different hardware, latencies and their measuring
conditions]}. Plain ASCII box characters, as the leaderboard (reports/terminal.py)."""
from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from reports.format import NOT_PERCENT

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def _scale(row: dict[str, Any]) -> tuple[float, str]:
    """Fractions are shown in percent (differences in points); BLEU, chrF, loss, perplexity and a metric a spec
    declares with a scale other than 1 (the row's `scale`, from the runs' metric_scales) as they are."""
    return (1.0, ".2f") if row.get("scale", 1.0 if row["metric"] in NOT_PERCENT else 100.0) == 1.0 else (100.0, ".1f")


def _value(row: dict[str, Any], key: str) -> str:
    scale, spec = _scale(row)
    return format(scale * row[key], spec)


def _diff(row: dict[str, Any]) -> str:
    scale, spec = _scale(row)

    def f(x: float) -> str:
        return format(scale * x, "+" + spec)

    return f"{f(row['diff'])}\n[{f(row['ci_low'])}, {f(row['ci_high'])}]"


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def _significant(row: dict[str, Any]) -> str:
    if not row["significant"]:
        return "no"
    return "a better" if (row["diff"] > 0) == row["higher_is_better"] else "b better"


def _where(row: dict[str, Any]) -> str:
    return f"{row['benchmark']} (probe)" if row["split"] == "after" else f"{row['benchmark']}/{row['split']}"


def _metric_name(row: dict[str, Any]) -> str:
    return row["metric"] if _scale(row)[0] == 1.0 else f"{row['metric']} %"


def comparison_table(comparison: dict[str, Any]) -> Table:
    a, b = comparison["a"], comparison["b"]
    table = Table(title=Text(f"sftbench compare - a: run {a['run_id']} - b: run {b['run_id']}"), box=box.ASCII2,
                  title_justify="left")
    table.add_column("candidate", overflow="fold")
    table.add_column("benchmark\nmetric", overflow="fold")
    for head in ("a", "b", "diff a - b\n[95% CI]", "p"):
        table.add_column(head, justify="right", no_wrap=True)
    table.add_column("significant", overflow="fold")
    previous = None
    for row in (r for r in comparison["rows"] if "omitted" not in r):
        if previous is not None and row["candidate"] != previous:
            table.add_section()  # a rule between candidates
        previous = row["candidate"]
        table.add_row(*map(Text, (row["candidate"], f"{_where(row)}\n{_metric_name(row)}", _value(row, "a"),
                                  _value(row, "b"), _diff(row), _p(row["p_value"]), _significant(row))))
    return table


def notes(comparison: dict[str, Any]) -> list[str]:
    a, b, rows = comparison["a"], comparison["b"], comparison["rows"]
    compared = [r for r in rows if "omitted" not in r]
    correction = CORRECTIONS.get(comparison["correction"], comparison["correction"])
    lines = [(f"a = run {a['run_id']} ({a.get('name', '')}, {a.get('created', '')}); b = run {b['run_id']} "
              f"({b.get('name', '')}, {b.get('created', '')}); "
              "diff = a - b, in points where the metric is a percentage"),
             (f"significant: {correction}-adjusted p < {comparison['alpha']:g} over the {len(compared)} compared "
              f"row{'s' * (len(compared) != 1)}")]
    tests: dict[str, str] = {}
    for row in compared:
        tests.setdefault(row["metric"], row["test"])
    lines += [f"{metric}: {test}" for metric, test in tests.items()]
    lines += [f"not compared: {r['candidate']} / {_where(r)} {r['metric']}: {r['omitted']}" for r in rows
              if "omitted" in r]
    return lines + list(comparison.get("notes") or [])


def render_comparison(comparison: dict[str, Any], console: Console) -> None:
    if any("omitted" not in r for r in comparison["rows"]):
        console.print(comparison_table(comparison))
    else:
        console.print(Text("no row could be compared"))
    for line in notes(comparison):
        console.print(Padding(Text(line), (0, 0, 0, 2), expand=False))  # wrapped lines keep the indent
