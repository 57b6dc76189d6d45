"""The terminal leaderboard (rich): one row per candidate, main metric with its interval per benchmark,
shifted score, forgetting, cost, gate; then the recommendation on its own line. Plain ASCII box
characters so it reads the same in CI logs and non-colour terminals."""
from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from reports.format import main_metrics as _main_metrics
from reports.format import metric_text as _metric
from reports.format import params_text as _params


ALREADY_PERCENT = {"bleu", "chrf"}  # sacrebleu reports these on a 0-100 scale


def _value(name: str, entry: dict[str, Any]) -> str:
    scale = 1 if name in ALREADY_PERCENT or name in ("loss", "perplexity") else 100
    return f"{name} {scale * entry['value']:.1f}" if scale == 100 else f"{name} {entry['value']:.2f}"


def leaderboard(results: dict[str, Any]) -> Table:
    table = Table(title=f"sftbench - {results['name']} - run {results['run_id']}", box=box.ASCII2,
                  show_lines=False, title_justify="left")
    table.add_column("candidate", no_wrap=True)
    metrics = _main_metrics(results)
    for bench, metric, others in metrics:
        table.add_column(f"{bench}\n{metric}{'' if metric in ALREADY_PERCENT else ' %'} [95% CI]", justify="right", overflow="fold")
        if others:
            table.add_column("also", justify="right", overflow="fold")
        table.add_column("shifted", justify="right", overflow="fold")
    table.add_column("forgetting\npts [95% CI]", justify="right", overflow="fold")
    table.add_column("cost", justify="right", overflow="fold")
    table.add_column("gate", no_wrap=True)
    failing = {}
    for v in results["gates"]:
        if not v["passed"]:
            failing.setdefault(v["candidate"], v["gate"])
    for c in results["candidates"]:
        row = [c["name"]]
        forgetting = []
        for bench, metric, others in metrics:
            b = next((x for x in c["benchmarks"] if x["benchmark"] == bench), None)
            if b is None or b["status"] != "ok":
                row += [("n/a" if b and b["status"] == "n/a" else "failed")] + ["-"] * (2 if others else 1)
                continue
            pct = metric not in ALREADY_PERCENT
            test = b["scores"].get("test", {})
            row.append(_metric(test.get(metric), pct))
            if others:
                row.append("\n".join(_value(m, test[m]) for m in others if m in test))
            row.append(_metric(b["scores"].get("shifted", {}).get(metric), pct))
            forgetting += [f"{p['probe']}:\n{_metric(p['forgetting'])}" for p in b["probes"]]
        row += ["\n".join(forgetting) or "-", _cost(c), "FAIL" if c["name"] in failing or c["status"] != "ok" else "pass"]
        table.add_row(*row)
    return table


def _cost(c: dict[str, Any]) -> str:
    cost = c["cost"]
    lines = [f"{_params(c['params'])} params" if c["params"] else "-",
             f"{_params(c['trainable_params'])} trained" if c["params"] else "",
             f"train {cost['train_seconds']:.0f} s, {cost['train_tokens_per_second']:.0f} tok/s"]
    if cost["latency_ms_per_item"] is not None:
        lines.append(f"{cost['latency_ms_per_item']:.1f} ms/item")
    lines.append(f"peak {cost['peak_rss_mb']:.0f} MB")
    return "\n".join(x for x in lines if x)


def render(results: dict[str, Any], console: Console) -> None:
    console.print(leaderboard(results))
    for v in results["gates"]:
        if not v["passed"]:
            console.print(f"  {v['candidate']}: FAIL {v['gate']} ({v['message']})", highlight=False)
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            if b["status"] != "ok":
                console.print(f"  {c['name']} / {b['benchmark']}: {b['status']} - {b['reason']}")
    signatures = {(b["benchmark"], m, v["signature"]) for c in results["candidates"] for b in c["benchmarks"]
                  for m, v in b["scores"].get("test", {}).items() if v.get("signature")}
    for bench, metric, signature in sorted(signatures):
        console.print(f"  {bench} {metric}: sacrebleu {signature}", highlight=False)
    if not results["gates"]:
        console.print("  no gates configured: every candidate that ran passes")
    verdict = "PASS" if results["passed"] else "FAIL"
    console.print(f"Recommendation [{verdict}]: {results['recommendation_reason']}", highlight=False)
