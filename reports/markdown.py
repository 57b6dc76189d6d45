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
from reports.costs import cost_lines, hardware_text, optional_cells, optional_columns, trained_text
from reports.costs import params_text as _params
from reports.format import (
    BIAS_NOTE,
    adaptive_lines,
    bias_measured,
    bias_reports,
    count_text,
    in_percent,
    learning_lines,
    main_metrics,
    mcnemar_text,
    metric_scale,
    metric_text,
    ranked,
    recommendation_text,
    score_warnings,
    seed_note,
    sweep_lines,
    tie_notes,
    verdict,
    warning_lines,
)

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
        pct = in_percent(metric, results)
        cells += [_metric(b.score("test", metric), pct), _num(ties.group.get(c.name), "d"),
                  _metric(b.score("shifted", metric), pct)]
        forgetting += [(p.probe, p.forgetting) for p in b.probes]
    cells.append(_labelled(forgetting))
    if bias:
        cells.append(_labelled([(r.probe, r.change) for r in bias_reports(c)]))
    cost = c.cost
    label, detail = verdict(results, c)
    return cells + [f"{_params(c.params)} ({trained_text(c)})" if c.params else "-",
                    _num(cost.train_seconds), _num(cost.train_tokens_per_second),
                    _num(cost.latency_ms_per_item, ".1f"), _num(cost.peak_rss_mb),
                    *optional_cells(c, results),
                    (f"**{label}**" if label != "pass" else label) + (f": {escape(detail)}" if detail else "")]


def _header(results: Results, bias: bool) -> list[str]:
    header = ["candidate"]
    for bench, metric, _ in main_metrics(results):
        unit = " %" if in_percent(metric, results) else ""
        header += [f"{escape(bench)} {escape(metric)}{unit} [95% CI]", "tie group", "shifted"]
    header += ["forgetting pts [95% CI]"] + ["bias change, flip pts [95% CI]"] * bias
    return header + ["params (trained)", "train s", "train tok/s", "ms/item", "peak MB",
                     *optional_columns(results),
                     "gate"]


def _delta(results: Results, c: CandidateRow) -> str:
    """Each baseline gate's difference against the promoted baseline, with its adjusted regression p."""
    out = []
    for v in results.gates:
        if v.candidate != c.name or not v.baseline or v.observed is None:
            continue
        scale = metric_scale(v.metric or "", results)
        p = "-" if v.p_adjusted is None else f"{v.p_adjusted:.2g}"
        out.append(f"{scale * v.observed:+.1f}{'' if scale == 1.0 else ' pts'} (p {p})")
    return "<br>".join(out) or "-"


def _main_cell(results: Results, c: CandidateRow) -> str:
    """Each benchmark's main metric on test with its interval; named when there are several benchmarks."""
    mains = main_metrics(results)
    cells = []
    for bench, metric, _ in mains:
        b = c.benchmark(bench)
        text = (_metric(b.score("test", metric), in_percent(metric, results)) if b and b.status == "ok"
                else "n/a" if b and b.status == "n/a" else "failed")
        cells.append(text if len(mains) == 1 else f"{escape(bench)}: {text}")
    return "<br>".join(cells) or "-"


def _narrow(results: Results) -> list[str]:
    """The pull-request table: candidate, main metric, difference against the baseline, forgetting, gate."""
    mains = main_metrics(results)
    what = (f"{escape(mains[0][0])} {escape(mains[0][1])}{' %' if in_percent(mains[0][1], results) else ''}"
            if len(mains) == 1 else "main metric")
    header = ["candidate", f"{what} [95% CI]", "Δ vs baseline (adj. p)", "forgetting pts [95% CI]", "gate"]
    lines = [_row(header), _row(["---", "---:", "---:", "---:", "---"])]
    for c in ranked(results):
        label, _ = verdict(results, c)
        forgetting = [(p.probe, p.forgetting) for b in c.benchmarks if b.status == "ok" for p in b.probes]
        lines.append(_row([escape(c.name), _main_cell(results, c), _delta(results, c), _labelled(forgetting),
                           label if label == "pass" else f"**{label}**"]))
    return lines


def _beside_scores(results: Results) -> list[str]:
    """Under the scores: each benchmark's data warnings that bear on them (a label in test that train lacks)."""
    lines = [f"**Warning, {escape(bench)}:** {escape(w)}" for bench, _, _ in main_metrics(results)
             for w in score_warnings(results, bench)]
    return [line for w in lines for line in (w, "")]


def _details(summary: str, body: list[str]) -> list[str]:
    """A collapsed block: GitHub renders the Markdown inside it when blank lines surround the body."""
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"] if body else []


def _wide(results: Results) -> list[str]:
    bias = bias_measured(results)
    header = _header(results, bias)
    return ([_row(header), _row(["---"] + ["---:"] * (len(header) - 2) + ["---"])]
            + [_row(_candidate_cells(results, c, bias)) for c in ranked(results)])


def _gate_lines(results: Results) -> list[str]:
    if not results.gates:
        return ["No gates configured: every candidate that ran passes."]
    return [f"- {escape(v.candidate)} / {escape(v.gate)}: {'pass' if v.passed else '**FAIL**'}: {escape(v.message)}"
            for v in results.gates]


@renderer("summary", "summary.md")
def render_markdown(results: Results) -> str:
    """summary.md, sized for a pull-request comment: one narrow table and the recommendation; the full
    leaderboard, gate verdicts, notes, seeds, cost, sweeps and data warnings collapsed in <details> blocks."""
    bias = bias_measured(results)
    verdict_word = "PASS" if results.passed else "FAIL"
    failed = sum(not v.passed for v in results.gates)
    lines = [f"### sftbench · {escape(results.name)} · run {escape(results.run_id)}", "", *_narrow(results), "",
             *_beside_scores(results),
             f"**Recommendation [{verdict_word}]:** {escape(recommendation_text(results))}"]
    seeds = adaptive_lines(results)
    if seeds:
        lines += ["", escape(seeds[0])]
        lines += _details("Adaptive seeds: each candidate and setting", [f"- {escape(x.strip())}" for x in seeds[1:]])
    lines += _details("Full leaderboard: every benchmark, tie groups, shifted split, bias, cost", _wide(results))
    lines += _details(f"Gate verdicts ({len(results.gates)}, {failed} failing)", _gate_lines(results))
    notes = [results.tie_rule] + tie_notes(results.tie_groups) + [seed_note(results)]
    notes.append(BIAS_NOTE if bias else "bias change: not measured (no bias suite in the config)")
    notes += cost_lines(results)
    notes.append("Δ vs baseline: candidate minus the promoted baseline on each baseline gate's metric, p(regression) "
                 "adjusted across the candidate's baseline gates ('-': no baseline gate)")
    lines += _details("Notes: ties, seeds, columns", [f"- {escape(note)}" for note in notes])
    learning = learning_lines(results)
    lines += _details("Did the candidates learn? (chance = the best trivial predictor on the split)",
                      [f"- {escape(line)}" for line in learning])
    lines += _details("Settings picked on validation (never on test)",
                      [f"- {escape(w)}" for w in sweep_lines(results)])
    lines += _details("Data warnings (`sftbench validate` lints the same)",
                      [f"- {escape(w)}" for w in warning_lines(results)])
    lines += ["", f"config {escape(results.config_hash)} · git {escape(results.git_sha)}"
              + (f" · hardware: {escape(hardware_text(results.hardware))}" if results.hardware else "")]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [empty]
    return [_row(header), _row(["---"] * len(header))] + [_row(r) for r in rows]


MD_P = ".2g"  # report.md's p-values: two significant digits (the HTML report gives three)


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
                            _metric(p.forgetting), count_text(p.forgotten), count_text(p.gained),
                            mcnemar_text(p.mcnemar_p, p.mcnemar_p_per_seed, MD_P)] for p in b.probes]
            g = b.generalisation
            if g.gap is not None and g.metric:
                pct = in_percent(g.metric, results)
                general.append([name, bench, escape(g.metric), _metric(b.score("test", g.metric), pct),
                                _metric(b.score("shifted", g.metric), pct),
                                _metric(MetricScore(g.gap, g.gap_ci_low, g.gap_ci_high), pct),
                                _num(g.overfit_loss_gap, ".3f")])
            bias += [[name, escape(r.probe), _metric(r.flip_rate_before), _metric(r.flip_rate_after),
                      _metric(r.change), mcnemar_text(r.mcnemar_p, r.mcnemar_p_per_seed, MD_P)] for r in b.bias]
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
