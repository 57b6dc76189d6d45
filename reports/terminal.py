"""The terminal leaderboard (rich): one row per candidate with, per benchmark, the main metric and its interval,
its tie group and the other metrics, the shifted score; then forgetting, bias change, cost and the gate. Rows are
ordered by the first benchmark's ranking, a rule between its tie groups; the rule that forms the groups, the
failing gates and the recommendation (on its own line) follow the table.

Plain ASCII box characters, so it reads the same in CI logs and non-colour terminals. Width-aware: when the
table does not fit the console, cost moves to a second table of its own."""
from __future__ import annotations

import io
import os

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from harness.results.model import BenchmarkRow, CandidateRow, MetricScore, Results
from harness.results.render import renderer
from reports.costs import cost_lines, hardware_text, token_cells, token_costs, tokens_text, trained_text
from reports.costs import params_text as _params
from reports.format import (
    BIAS_NOTE,
    adaptive_lines,
    bias_measured,
    bias_reports,
    in_percent,
    learning_lines,
    main_metrics,
    metric_scale,
    ranked,
    recommendation_text,
    reliability,
    seed_note,
    sweep_lines,
    tie_notes,
    verdict,
    warning_lines,
)
from reports.format import metric_text as _metric


def _value(name: str, entry: MetricScore, results: Results) -> str:
    scale = metric_scale(name, results)
    value = entry.value if entry.value is not None else float("nan")
    return f"{name} {scale * value:.1f}" if scale == 100 else f"{name} {value:.2f}"


def _bench_cells(results: Results, b: BenchmarkRow | None, metric: str, others: list[str],
                 group: int | None) -> list[str]:
    """Main metric (with its tie group and the other metrics under it) and the shifted score."""
    if b is None or b.status != "ok":
        return ["n/a" if b and b.status == "n/a" else "failed", "-"]
    pct = in_percent(metric, results)
    test = b.scores.get("test", {})
    lines = [_metric(test.get(metric), pct)] + ([f"group {group}"] if group is not None else [])
    entry = test.get(metric)
    sd = entry.seed_sd if entry else None
    if sd is not None:
        lines.append(f"seed sd {100 * sd if pct else sd:.1f}")
    lines += [_value(m, test[m], results) for m in others if m in test]
    return ["\n".join(lines), _metric(b.score("shifted", metric), pct)]


def _labelled(entries: list[tuple[str, MetricScore | None]]) -> str:
    return "\n".join(f"{label}:\n{_metric(entry)}" for label, entry in entries) or "-"


def _cost(c: CandidateRow) -> str:
    cost = c.cost
    lines = [f"{_params(c.params)} params", f"{trained_text(c)} trained"] if c.params else []
    if cost.train_seconds is not None:
        lines += [f"train {cost.train_seconds:.0f} s", f"{cost.train_tokens_per_second or 0:.0f} tok/s"]
    if cost.latency_ms_per_item is not None:
        lines.append(f"{cost.latency_ms_per_item:.1f} ms/item")
    if cost.peak_rss_mb is not None:
        lines.append(f"peak {cost.peak_rss_mb:.0f} MB")
    if cost.peak_gpu_mb is not None:
        lines.append(f"GPU peak {cost.peak_gpu_mb:.0f} MB")
    if cost.gpu_seconds is not None:
        lines.append(f"{cost.gpu_seconds:.0f} GPU-s")
    if cost.train_tokens_computed is not None:  # tokens run / in the data (notes: TOKEN_NOTE)
        lines.append(f"train tok {tokens_text(cost.train_tokens_computed, cost.train_tokens_in_data)}")
    if cost.scoring_tokens_computed is not None:
        lines.append(f"score tok {tokens_text(cost.scoring_tokens_computed, cost.scoring_tokens_in_data)}")
    return "\n".join(lines) or "-"


def _gate(results: Results, c: CandidateRow) -> str:
    label, detail = verdict(results, c)
    if c.status != "ok":  # the reason is in the notes under the table
        detail = "run failed"
    return f"{label}\n{detail}" if detail else label


def _table(title: str) -> Table:
    return Table(title=Text(title), box=box.ASCII2, show_lines=False, title_justify="left")


def leaderboard(results: Results, with_cost: bool = True) -> Table:
    groups = results.tie_groups
    metrics = main_metrics(results)
    bias = bias_measured(results)
    table = _table(f"sftbench - {results.name} - run {results.run_id}")
    table.add_column("candidate", no_wrap=True)
    for bench, metric, _others in metrics:
        unit = " %" if in_percent(metric, results) else ""
        table.add_column(Text(f"{bench}\n{metric}{unit}\n[95% CI]"), justify="right", overflow="fold")
        table.add_column(Text(f"shifted\n{metric}{unit}"), justify="right", overflow="fold")
    table.add_column(Text("forgetting\npts [95% CI]"), justify="right", overflow="fold")
    if bias:
        table.add_column(Text("bias change\nflip pts\n[95% CI]"), justify="right", overflow="fold")
    if with_cost:
        table.add_column("cost", justify="right", overflow="fold")
    table.add_column("gate", overflow="fold")
    first = groups[0].group if groups else {}
    previous = None
    for c in ranked(results):
        if previous is not None and first.get(c.name) != first.get(previous):
            table.add_section()  # a rule between the first benchmark's tie groups
        previous = c.name
        row = [c.name]
        for (bench, metric, others), ties in zip(metrics, groups):
            row += _bench_cells(results, c.benchmark(bench), metric, others, ties.group.get(c.name))
        forgetting = [(p.probe, p.forgetting) for b in c.benchmarks if b.status == "ok" for p in b.probes]
        row.append(_labelled(forgetting))
        if bias:
            row.append(_labelled([(r.probe, r.change) for r in bias_reports(c)]))
        row += [_cost(c)] * with_cost + [_gate(results, c)]
        table.add_row(*map(Text, row))  # Text: a name like "[red]" is data, never rich markup
    return table


def cost_table(results: Results) -> Table:
    """Cost on its own, one column per figure, for consoles too narrow for it inside the leaderboard."""
    table = _table("cost")
    table.add_column("candidate", no_wrap=True)
    gpu = any(c.cost.gpu_seconds is not None for c in results.candidates)  # GPU columns only where a unit had one
    tokens = token_costs(results)  # token columns only where a run counted them
    for head in ("params", "trained", "train s", "train\ntok/s", "latency\nms/item", "peak\nRSS MB") + \
            (("peak\nGPU MB", "GPU-s") if gpu else ()) + \
            (("train tok\nrun/data", "score tok\nrun/data") if tokens else ()):
        table.add_column(head, justify="right", overflow="fold")
    for c in ranked(results):
        k = c.cost
        fmt = lambda v, spec=".0f": "-" if v is None else format(v, spec)  # noqa: E731
        table.add_row(Text(c.name), _params(c.params) if c.params else "-",
                      trained_text(c) if c.params else "-", fmt(k.train_seconds),
                      fmt(k.train_tokens_per_second), fmt(k.latency_ms_per_item, ".1f"), fmt(k.peak_rss_mb),
                      *((fmt(k.peak_gpu_mb), fmt(k.gpu_seconds)) if gpu else ()), *(token_cells(c) if tokens else ()))
    return table


def _fits(table: Table, console: Console) -> bool:
    """Whether the table's natural width (every cell on its longest line) fits the console."""
    return Measurement.get(console, console.options.update(max_width=10_000), table).maximum <= console.width


def notes(results: Results) -> list[str]:
    """Everything a reader needs under the table: the tie rule, what each column could not show, failures."""
    lines = [results.tie_rule] + tie_notes(results.tie_groups) + [seed_note(results)]
    lines.append(BIAS_NOTE if bias_measured(results) else "bias change: not measured (no bias suite in the config)")
    lines += [f"{v.candidate}: FAIL {v.gate} ({v.message})" for v in results.gates if not v.passed]
    lines += [f"{c.name} / {b.benchmark}: {b.status} - {b.reason}" for c in results.candidates
              for b in c.benchmarks if b.status != "ok"]
    lines += learning_lines(results) + cost_lines(results)
    signatures = {(b.benchmark, m, v.signature) for c in results.candidates for b in c.benchmarks
                  for m, v in b.scores.get("test", {}).items() if v.signature}
    lines += [f"{bench} {metric}: sacrebleu {signature}" for bench, metric, signature in sorted(signatures)]
    if not results.gates:
        lines.append("no gates configured: every candidate that ran passes")
    if results.hardware:
        lines.append(f"hardware: {hardware_text(results.hardware)}")
    return lines


def render(results: Results, console: Console) -> None:
    table = leaderboard(results)
    if _fits(table, console):
        console.print(table)
    else:
        console.print(leaderboard(results, with_cost=False))
        console.print(cost_table(results))
    warnings = warning_lines(results)
    for line in notes(results) + sweep_lines(results) + adaptive_lines(results) + \
            [f"data warning: {w}" for w in warnings]:
        console.print(Padding(Text(line), (0, 0, 0, 2), expand=False))  # wrapped lines keep the indent
    verdict = "PASS" if results.passed else "FAIL"
    style = "yellow" if reliability(results) == "tentative" else None  # tentative reads differently from solid
    console.print(f"Recommendation [{verdict}]: {recommendation_text(results)}", highlight=False, markup=False,
                  style=style)


@renderer("terminal")
def render_text(results: Results) -> str:
    """The leaderboard as plain text, $COLUMNS wide (160 when unset)."""
    out = io.StringIO()
    render(results, Console(file=out, width=int(os.environ.get("COLUMNS", 160))))
    return out.getvalue()
