"""Commands over the run store: runs, show, promote, compare, gate, report. Stored runs are read back as the typed
results model (harness/results/finish.py restore), which every renderer takes."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from harness.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError
from harness.results.model import Results


def dispatch(args: argparse.Namespace) -> int:
    from harness.results.finish import restore
    from harness.storage.store import Store

    with Store(args.store) as store:
        if args.command == "runs":
            for run in store.runs():
                print("  ".join(str(run.get(k, "")) for k in ("run_id", "name", "created", "passed", "recommendation")))
            return EXIT_OK
        stored = store.get(args.run_id)
        if args.command == "promote":
            promoted = store.promote(args.run_id, args.candidate, args.baseline_name)
            print(f"promoted: {promoted}")
            return EXIT_OK
        if args.command == "compare":
            return _compare(stored, store.get(args.other), args.format)
        results = restore(stored)
        if args.command == "gate":
            results = _regate(results, args.gates, store)
            _terminal(results)
            return EXIT_OK if results.passed else EXIT_GATE_FAILED
        if args.command == "show":
            _terminal(results)
            return EXIT_OK
        return _report(results, args.format)


def _terminal(results: Results) -> None:
    from rich.console import Console

    from reports.terminal import render

    render(results, Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160))))


def _report(results: Results, fmt: str) -> int:
    """Any registered format (harness/results/render.py); the terminal one straight to the console."""
    if fmt == "terminal":
        _terminal(results)
        return EXIT_OK
    import reports
    from harness.results.render import RENDERERS

    reports.load()
    print(RENDERERS.get(fmt).render(results))
    return EXIT_OK


def _regate(results: Results, gates_file: str | None, store: Any) -> Results:
    """Verdicts again on stored results: the run's own gates, or the `gates:` list (and optional
    `gate_correction:`) of a YAML file; the run's bootstrap resamples and seed, so its own gates reproduce."""
    from pathlib import Path

    from harness.config import CORRECTIONS, GateConfig, build, read_yaml
    from harness.results.finish import regate

    config = results.config
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
    return regate(results, gates, correction, baselines)


def _compare(a: dict[str, Any], b: dict[str, Any], fmt: str = "table") -> int:
    """Run a against run b: a table (reports/compare.py), or one JSON object per row, omitted rows included."""
    from harness.results.compare import compare_runs

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
