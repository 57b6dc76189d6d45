"""Markdown of one results object, for a pull-request comment or $GITHUB_STEP_SUMMARY: the terminal
leaderboard's columns as a GitHub table, then the recommendation and every failing gate.

All data text (candidate, benchmark, gate names, reasons) is escaped: HTML-significant characters become
entities, and characters that Markdown would read as table cells, code, emphasis or links get a backslash,
so a candidate named `<script>|x` renders as that text in one cell."""
from __future__ import annotations

import re
from typing import Any

from reports.format import NOT_PERCENT, main_metrics, metric_text, params_text as _params

_MD = re.compile(r"([\\`*_\[\]|])")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ANSI escapes and NULs in error messages


def _metric(entry: dict[str, Any] | None, pct: bool = True) -> str:
    return metric_text(entry, pct, digits=2)


def _main_metrics(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(benchmark, main metric): the first metric the benchmark declares, as on the terminal leaderboard."""
    return [(bench, metric) for bench, metric, _ in main_metrics(results)]


def escape(value: Any) -> str:
    text = " ".join(_CONTROL.sub("", str(value)).split())  # a newline would end the table row
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD.sub(r"\\\1", text)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _candidate_cells(c: dict[str, Any], metrics: list[tuple[str, str]], failing: dict[str, str]) -> list[str]:
    cells, forgetting = [escape(c["name"])], []
    for bench, metric in metrics:
        b = next((x for x in c["benchmarks"] if x["benchmark"] == bench), None)
        if b is None or b["status"] != "ok":
            cells += ["n/a" if b and b["status"] == "n/a" else "failed", "-"]
            continue
        pct = metric not in NOT_PERCENT
        cells += [_metric(b["scores"].get("test", {}).get(metric), pct),
                  _metric(b["scores"].get("shifted", {}).get(metric), pct)]
        forgetting += [f"{escape(p['probe'])}: {_metric(p['forgetting'])}" for p in b["probes"]]
    cost = c["cost"]
    if c["status"] != "ok":
        gate = f"**FAIL**: {escape(c['reason'])}"
    elif c["name"] in failing:
        gate = f"**FAIL**: {escape(failing[c['name']])}"
    else:
        gate = "pass"
    return cells + ["<br>".join(forgetting) or "-",
                    f"{_params(c['params'])} ({_params(c['trainable_params'])})" if c["params"] else "-",
                    f"{cost['train_seconds']:.0f}" if cost.get("train_seconds") is not None else "-", gate]


def render_markdown(results: dict[str, Any]) -> str:
    metrics = _main_metrics(results)
    header = ["candidate"]
    for bench, metric in metrics:
        unit = "" if metric in NOT_PERCENT else " %"
        header += [f"{escape(bench)} {escape(metric)}{unit} [95% CI]", "shifted"]
    header += ["forgetting pts [95% CI]", "params (trained)", "train s", "gate"]
    failing: dict[str, str] = {}
    for v in results["gates"]:
        if not v["passed"]:
            failing.setdefault(v["candidate"], v["gate"])
    lines = [f"### sftbench · {escape(results['name'])} · run {escape(results['run_id'])}", "",
             _row(header), _row(["---"] + ["---:"] * (len(header) - 2) + ["---"])]
    lines += [_row(_candidate_cells(c, metrics, failing)) for c in results["candidates"]]
    verdict = "PASS" if results["passed"] else "FAIL"
    lines += ["", f"**Recommendation [{verdict}]:** {escape(results['recommendation_reason'])}"]
    failed = [v for v in results["gates"] if not v["passed"]]
    if failed:
        lines += ["", "Failing gates:", ""]
        lines += [f"- {escape(v['candidate'])} / {escape(v['gate'])}: {escape(v['message'])}" for v in failed]
    if not results["gates"]:
        lines += ["", "No gates configured: every candidate that ran passes."]
    lines += ["", f"config {escape(results.get('config_hash', ''))} · git {escape(results.get('git_sha', ''))}"]
    return "\n".join(lines) + "\n"
