"""Markdown of one results object, for a pull-request comment or $GITHUB_STEP_SUMMARY: the terminal
leaderboard's columns as a GitHub table (rows in the same order, a tie group column per benchmark), then the
recommendation, the tie rule and column notes, and every failing gate.

All data text (candidate, benchmark, gate names, reasons) is escaped: HTML-significant characters become
entities, and characters that Markdown would read as table cells, code, emphasis or links get a backslash,
so a candidate named `<script>|x` renders as that text in one cell."""
from __future__ import annotations

import re
from typing import Any

from harness.results.model import CandidateRow, MetricScore, Results
from harness.results.render import renderer
from reports.format import (
    BIAS_NOTE,
    NOT_PERCENT,
    bias_measured,
    bias_reports,
    learning_lines,
    main_metrics,
    metric_text,
    ranked,
    recommendation_text,
    seed_note,
    sweep_lines,
    tie_notes,
    verdict,
    warning_lines,
)
from reports.format import params_text as _params

_MD = re.compile(r"([\\`*_\[\]|])")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ANSI escapes and NULs in error messages


def _metric(entry: MetricScore | None, pct: bool = True) -> str:
    return metric_text(entry, pct, digits=2)


def escape(value: Any) -> str:
    text = " ".join(_CONTROL.sub("", str(value)).split())  # a newline would end the table row
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD.sub(r"\\\1", text)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _labelled(entries: list[tuple[str, MetricScore | None]]) -> str:
    return "<br>".join(f"{escape(label)}: {_metric(entry)}" for label, entry in entries) or "-"


def _num(value: Any, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _candidate_cells(results: Results, c: CandidateRow, bias: bool) -> list[str]:
    cells, forgetting = [escape(c.name)], []
    for (bench, metric, _), ties in zip(main_metrics(results), results.tie_groups):
        b = c.benchmark(bench)
        if b is None or b.status != "ok":
            cells += ["n/a" if b and b.status == "n/a" else "failed", "-", "-"]
            continue
        pct = metric not in NOT_PERCENT
        cells += [_metric(b.score("test", metric), pct), _num(ties.group.get(c.name), "d"),
                  _metric(b.score("shifted", metric), pct)]
        forgetting += [(p.probe, p.forgetting) for p in b.probes]
    cells.append(_labelled(forgetting))
    if bias:
        cells.append(_labelled([(r.probe, r.change) for r in bias_reports(c)]))
    cost = c.cost
    label, detail = verdict(results, c)
    return cells + [f"{_params(c.params)} ({_params(c.trainable_params or 0)})" if c.params else "-",
                    _num(cost.train_seconds), _num(cost.train_tokens_per_second),
                    _num(cost.latency_ms_per_item, ".1f"), _num(cost.peak_rss_mb),
                    (f"**{label}**" if label != "pass" else label) + (f": {escape(detail)}" if detail else "")]


def _header(results: Results, bias: bool) -> list[str]:
    header = ["candidate"]
    for bench, metric, _ in main_metrics(results):
        unit = "" if metric in NOT_PERCENT else " %"
        header += [f"{escape(bench)} {escape(metric)}{unit} [95% CI]", "tie group", "shifted"]
    header += ["forgetting pts [95% CI]"] + ["bias change, flip pts [95% CI]"] * bias
    return header + ["params (trained)", "train s", "train tok/s", "ms/item", "peak MB", "gate"]


@renderer("summary", "summary.md")
def render_markdown(results: Results) -> str:
    """summary.md: the leaderboard and the recommendation, for a pull-request comment or a CI step summary."""
    bias = bias_measured(results)
    header = _header(results, bias)
    lines = [f"### sftbench · {escape(results.name)} · run {escape(results.run_id)}", "",
             _row(header), _row(["---"] + ["---:"] * (len(header) - 2) + ["---"])]
    lines += [_row(_candidate_cells(results, c, bias)) for c in ranked(results)]
    verdict = "PASS" if results.passed else "FAIL"
    lines += ["", f"**Recommendation [{verdict}]:** {escape(recommendation_text(results))}", ""]
    lines += [f"- {escape(note)}" for note in [results.tie_rule] + tie_notes(results.tie_groups)
              + [seed_note(results)]]
    lines.append(f"- {escape(BIAS_NOTE if bias else 'bias change: not measured (no bias suite in the config)')}")
    learning = learning_lines(results)
    if learning:
        lines += ["", "Did the candidates learn? (chance = the best trivial predictor on the split):", ""]
        lines += [f"- {escape(line)}" for line in learning]
    failed = [v for v in results.gates if not v.passed]
    if failed:
        lines += ["", "Failing gates:", ""]
        lines += [f"- {escape(v.candidate)} / {escape(v.gate)}: {escape(v.message)}" for v in failed]
    if not results.gates:
        lines += ["", "No gates configured: every candidate that ran passes."]
    sweeps = sweep_lines(results)
    if sweeps:
        lines += ["", "Settings picked on validation (never on test):", ""] + [f"- {escape(w)}" for w in sweeps]
    warnings = warning_lines(results)
    if warnings:
        lines += ["", "Data warnings (`sftbench validate` lints the same):", ""] + [f"- {escape(w)}" for w in warnings]
    lines += ["", f"config {escape(results.config_hash)} · git {escape(results.git_sha)}"]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [empty]
    return [_row(header), _row(["---"] * len(header))] + [_row(r) for r in rows]


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.2g}"


@renderer("md", "report.md")
def render_report(results: Results) -> str:
    """report.md: the summary, then every gate verdict, forgetting, generalisation and bias in full."""
    gates = [[escape(v.candidate), escape(v.gate), "pass" if v.passed else "**FAIL**", escape(v.message)]
             for v in results.gates]
    forgetting, general, bias = [], [], []
    for c in results.candidates:
        for b in (x for x in c.benchmarks if x.status == "ok"):
            name, bench = escape(c.name), escape(b.benchmark)
            forgetting += [[name, bench, escape(p.probe), _metric(p.before), _metric(p.after),
                            _metric(p.forgetting), _num(p.forgotten, "d"), _num(p.gained, "d"),
                            _p(p.mcnemar_p)] for p in b.probes]
            g = b.generalisation
            if g.gap is not None and g.metric:
                pct = g.metric not in NOT_PERCENT
                general.append([name, bench, escape(g.metric), _metric(b.score("test", g.metric), pct),
                                _metric(b.score("shifted", g.metric), pct),
                                _metric(MetricScore(g.gap, g.gap_ci_low, g.gap_ci_high), pct),
                                _num(g.overfit_loss_gap, ".3f")])
            bias += [[name, escape(r.probe), _metric(r.flip_rate_before), _metric(r.flip_rate_after),
                      _metric(r.change), _p(r.mcnemar_p)] for r in b.bias]
    lines = [render_markdown(results), "## Gate verdicts", ""]
    lines += _table(["candidate", "gate", "verdict", "why"], gates, "No gates configured.")
    lines += ["", "## Forgetting (probe accuracy before and after tuning, same items, paired interval)", ""]
    lines += _table(["candidate", "tuned on", "probe", "before %", "after %", "forgetting pts [95% CI]", "forgotten",
                     "gained", "McNemar p"], forgetting, "No probes in the config.")
    lines += ["", "## Generalisation (in-distribution test minus shifted test; final validation minus train loss)", ""]
    lines += _table(["candidate", "benchmark", "metric", "test", "shifted", "gap [95% CI]", "val - train loss"],
                    general, "No benchmark has a shifted split.")
    lines += ["", "## Bias (counterfactual flip rate before and after tuning)", ""]
    lines += _table(["candidate", "suite", "before %", "after %", "change pts [95% CI]", "McNemar p"], bias,
                    "No bias suite measured (none in the config, or only encoders, which have no 'before').")
    return "\n".join(lines) + "\n"
