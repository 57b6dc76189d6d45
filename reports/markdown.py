"""Markdown of one results object, for a pull-request comment or $GITHUB_STEP_SUMMARY: the terminal
leaderboard's columns as a GitHub table (rows in the same order, a tie group column per benchmark), then the
recommendation, the tie rule and column notes, and every failing gate.

All data text (candidate, benchmark, gate names, reasons) is escaped: HTML-significant characters become
entities, and characters that Markdown would read as table cells, code, emphasis or links get a backslash,
so a candidate named `<script>|x` renders as that text in one cell."""
from __future__ import annotations

import re
from typing import Any

from reports.format import (
    BIAS_NOTE,
    NOT_PERCENT,
    bias_measured,
    bias_reports,
    learning_lines,
    main_metrics,
    metric_text,
    recommendation_text,
    seed_note,
    sweep_lines,
    verdict,
    warning_lines,
)
from reports.format import params_text as _params
from reports.ties import RULE, TieGroups, all_tie_groups, ranked

_MD = re.compile(r"([\\`*_\[\]|])")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ANSI escapes and NULs in error messages


def _metric(entry: dict[str, Any] | None, pct: bool = True) -> str:
    return metric_text(entry, pct, digits=2)


def escape(value: Any) -> str:
    text = " ".join(_CONTROL.sub("", str(value)).split())  # a newline would end the table row
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD.sub(r"\\\1", text)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _labelled(entries: list[tuple[str, dict[str, Any] | None]]) -> str:
    return "<br>".join(f"{escape(label)}: {_metric(entry)}" for label, entry in entries) or "-"


def _num(value: Any, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _candidate_cells(results: dict[str, Any], c: dict[str, Any], groups: list[TieGroups], bias: bool) -> list[str]:
    cells, forgetting = [escape(c["name"])], []
    for (bench, metric, _), ties in zip(main_metrics(results), groups):
        b = next((x for x in c["benchmarks"] if x["benchmark"] == bench), None)
        if b is None or b["status"] != "ok":
            cells += ["n/a" if b and b["status"] == "n/a" else "failed", "-", "-"]
            continue
        pct = metric not in NOT_PERCENT
        cells += [_metric(b["scores"].get("test", {}).get(metric), pct), _num(ties.group.get(c["name"]), "d"),
                  _metric(b["scores"].get("shifted", {}).get(metric), pct)]
        forgetting += [(p["probe"], p.get("forgetting")) for p in b.get("probes") or []]
    cells.append(_labelled(forgetting))
    if bias:
        cells.append(_labelled([(r["probe"], r.get("change")) for r in bias_reports(c)]))
    cost = c.get("cost") or {}
    label, detail = verdict(results, c)
    return cells + [f"{_params(c['params'])} ({_params(c['trainable_params'])})" if c.get("params") else "-",
                    _num(cost.get("train_seconds")), _num(cost.get("train_tokens_per_second")),
                    _num(cost.get("latency_ms_per_item"), ".1f"), _num(cost.get("peak_rss_mb")),
                    (f"**{label}**" if label != "pass" else label) + (f": {escape(detail)}" if detail else "")]


def _header(results: dict[str, Any], bias: bool) -> list[str]:
    header = ["candidate"]
    for bench, metric, _ in main_metrics(results):
        unit = "" if metric in NOT_PERCENT else " %"
        header += [f"{escape(bench)} {escape(metric)}{unit} [95% CI]", "tie group", "shifted"]
    header += ["forgetting pts [95% CI]"] + ["bias change, flip pts [95% CI]"] * bias
    return header + ["params (trained)", "train s", "train tok/s", "ms/item", "peak MB", "gate"]


def render_markdown(results: dict[str, Any]) -> str:
    groups = all_tie_groups(results)
    bias = bias_measured(results)
    header = _header(results, bias)
    lines = [f"### sftbench · {escape(results['name'])} · run {escape(results['run_id'])}", "",
             _row(header), _row(["---"] + ["---:"] * (len(header) - 2) + ["---"])]
    lines += [_row(_candidate_cells(results, c, groups, bias)) for c in ranked(results, groups)]
    verdict = "PASS" if results["passed"] else "FAIL"
    lines += ["", f"**Recommendation [{verdict}]:** {escape(recommendation_text(results))}", ""]
    lines += [f"- {escape(note)}" for note in [RULE] + [f"{t.benchmark}: {n}" for t in groups for n in t.notes]
              + [seed_note(results)]]
    lines.append(f"- {escape(BIAS_NOTE if bias else 'bias change: not measured (no bias suite in the config)')}")
    learning = learning_lines(results)
    if learning:
        lines += ["", "Did the candidates learn? (chance = the best trivial predictor on the split):", ""]
        lines += [f"- {escape(line)}" for line in learning]
    failed = [v for v in results["gates"] if not v["passed"]]
    if failed:
        lines += ["", "Failing gates:", ""]
        lines += [f"- {escape(v['candidate'])} / {escape(v['gate'])}: {escape(v['message'])}" for v in failed]
    if not results["gates"]:
        lines += ["", "No gates configured: every candidate that ran passes."]
    sweeps = sweep_lines(results)
    if sweeps:
        lines += ["", "Settings picked on validation (never on test):", ""] + [f"- {escape(w)}" for w in sweeps]
    warnings = warning_lines(results)
    if warnings:
        lines += ["", "Data warnings (`sftbench validate` lints the same):", ""] + [f"- {escape(w)}" for w in warnings]
    lines += ["", f"config {escape(results.get('config_hash', ''))} · git {escape(results.get('git_sha', ''))}"]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [empty]
    return [_row(header), _row(["---"] * len(header))] + [_row(r) for r in rows]


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.2g}"


def render_report(results: dict[str, Any]) -> str:
    """report.md: the summary, then every gate verdict, forgetting, generalisation and bias in full."""
    gates = [[escape(v["candidate"]), escape(v["gate"]), "pass" if v["passed"] else "**FAIL**", escape(v["message"])]
             for v in results["gates"]]
    forgetting, general, bias = [], [], []
    for c in results["candidates"]:
        for b in (x for x in c["benchmarks"] if x["status"] == "ok"):
            name, bench = escape(c["name"]), escape(b["benchmark"])
            forgetting += [[name, bench, escape(p["probe"]), _metric(p.get("before")), _metric(p.get("after")),
                            _metric(p.get("forgetting")), _num(p.get("forgotten"), "d"), _num(p.get("gained"), "d"),
                            _p(p.get("mcnemar_p"))] for p in b.get("probes") or []]
            g = b.get("generalisation") or {}
            if "gap" in g and g.get("metric"):
                pct = g["metric"] not in NOT_PERCENT
                general.append([name, bench, escape(g["metric"]), _metric(b["scores"]["test"][g["metric"]], pct),
                                _metric(b["scores"]["shifted"][g["metric"]], pct),
                                _metric({"value": g["gap"], "ci_low": g["gap_ci_low"], "ci_high": g["gap_ci_high"]},
                                        pct),
                                _num(g.get("overfit_loss_gap"), ".3f")])
            bias += [[name, escape(r["probe"]), _metric(r.get("flip_rate_before")), _metric(r.get("flip_rate_after")),
                      _metric(r.get("change")), _p(r.get("mcnemar_p"))] for r in b.get("bias") or []]
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
