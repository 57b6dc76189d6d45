"""Commands over the run store: runs, show, promote, compare, gate, report."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from harness.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError


def dispatch(args: argparse.Namespace) -> int:
    from harness.store import Store

    with Store(args.store) as store:
        if args.command == "runs":
            for run in store.runs():
                print("  ".join(str(run.get(k, "")) for k in ("run_id", "name", "created", "passed", "recommendation")))
            return EXIT_OK
        results = store.get(args.run_id)
        if args.command == "promote":
            promoted = store.promote(args.run_id, args.candidate, args.baseline_name)
            print(f"promoted: {promoted}")
            return EXIT_OK
        if args.command == "compare":
            return _compare(results, store.get(args.other), args.format)
        if args.command == "gate":
            results = _regate(results, args.gates, store)
            _terminal(results)
            return EXIT_OK if results["passed"] else EXIT_GATE_FAILED
        if args.command == "show":
            _terminal(results)
            return EXIT_OK
        return _report(results, args.format)


def _terminal(results: dict[str, Any]) -> None:
    from rich.console import Console

    from reports.terminal import render

    render(results, Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160))))


def _report(results: dict[str, Any], fmt: str) -> int:
    if fmt == "terminal":
        _terminal(results)
    elif fmt == "json":
        print(json.dumps(results, indent=1))
    elif fmt == "md":  # the full report.md (summary.md is its first part)
        from reports.markdown import render_report

        print(render_report(results))
    elif fmt == "html":
        from reports.html import render_html

        print(render_html(results))
    else:
        from reports.junit import render_junit

        print(render_junit(results))
    return EXIT_OK


def _regate(results: dict[str, Any], gates_file: str | None, store: Any) -> dict[str, Any]:
    """Verdicts again on stored results: the run's own gates, or the `gates:` list (and optional
    `gate_correction:`) of a YAML file; the run's bootstrap resamples and seed, so its own gates reproduce."""
    from pathlib import Path

    from harness.config import CORRECTIONS, GateConfig, build, read_yaml
    from harness.gate import check
    from reports.results import finish

    config = results["config"]
    source = read_yaml(Path(gates_file)) if gates_file else config
    raw, correction = source.get("gates", []), source.get("gate_correction", config.get("gate_correction", "holm"))
    try:
        if gates_file and "gates" not in source:
            raise ConfigError("no `gates:` list")
        if not isinstance(raw, list):
            raise ConfigError("`gates:` must be a list")
        if correction not in CORRECTIONS:
            raise ConfigError(f"gate_correction must be one of {', '.join(CORRECTIONS)} (got {correction!r})")
        gates = [build(GateConfig, g, f"gates[{i}]") for i, g in enumerate(raw)]
    except ConfigError as err:
        raise ConfigError(err.message, gates_file) from None
    baselines = {g.baseline: store.baseline(g.baseline) for g in gates if g.baseline}
    verdicts = check(results["candidates"], gates, baselines, config.get("bootstrap_resamples", 1000),
                     config.get("recipe", {}).get("seed", 0), correction)
    return finish(results["run_id"], results["name"], results["config_hash"], config, results["candidates"], verdicts,
                  gates)


def _compare(a: dict[str, Any], b: dict[str, Any], fmt: str = "table") -> int:
    """Run a against run b: a table (reports/compare.py), or one JSON object per row, omitted rows included."""
    from harness.compare import compare_runs

    correction, alpha = "holm", 0.05
    rows = compare_runs(a, b, alpha=alpha, correction=correction)
    if fmt == "json":
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    from rich.console import Console

    from reports.compare import render_comparison

    runs = {side: {k: r.get(k) for k in ("run_id", "name", "created")} for side, r in (("a", a), ("b", b))}
    render_comparison(runs | {"correction": correction, "alpha": alpha, "rows": rows},
                      Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160))))
    return EXIT_OK
