"""The commands over the run store: runs, show, promote, compare, gate, report. Stored runs are read back as the
typed results model (harness/results/finish.py restore), which every renderer takes."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import reports  # noqa: F401  (registers the report formats by name)
from harness.config import CORRECTIONS, GateConfig, build, read_yaml
from harness.errors import EXIT_GATE_FAILED, EXIT_OK, ConfigError
from harness.results.compare import compare_runs, environment_notes
from harness.results.finish import regate, restore
from harness.results.model import Results
from harness.results.render import RENDERERS
from harness.storage.store import Store
from harness.storage.tracking import ALIAS, register
from reports.compare import render_comparison
from reports.terminal import render


def main(args: argparse.Namespace, console: Any) -> int:
    with Store(args.store) as store:
        if args.command == "runs":
            _runs_table(store.runs(), store.path)
            return EXIT_OK
        stored = store.get(args.run_id)
        if args.command == "promote":
            promoted = store.promote(args.run_id, args.candidate, args.baseline_name)
            print(promoted_sentence(promoted))
            _register(stored, promoted, getattr(args, "mlflow", None))
            return EXIT_OK
        if args.command == "compare":
            return _compare(stored, store.get(args.other), args.format)
        results = restore(stored)
        if args.command == "gate":
            results = _regate(results, args.gates, store)
            _terminal(results)
            for line in verdict_lines(results):
                print(line)
            return EXIT_OK if results.passed else EXIT_GATE_FAILED
        if args.command == "show":
            _terminal(results)
            return EXIT_OK
        return _report(results, args.format)


def _console() -> Any:
    return Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160)))


def _runs_table(runs: list[dict[str, Any]], path: Any) -> None:
    """One row per stored run, oldest first, under a header."""
    if not runs:
        print(f"no runs in {path} yet; `sftbench run` records each bake-off there")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("run id", "name", "created", "candidates", "passed", "recommendation", "baseline of"):
        table.add_column(column, no_wrap=column in ("run id", "created"), overflow="fold")
    for run in runs:
        table.add_row(run["run_id"], run["name"], run["created"], str(run["candidates"]),
                      "yes" if run["passed"] else "no", run["recommendation"] or "none",
                      ", ".join(run["baseline_of"]) or "-")
    _console().print(table)


def promoted_sentence(entry: dict[str, str]) -> str:
    """What `promote` did, as a sentence."""
    return (f"Promoted {entry['candidate']} of run {entry['run_id']} as baseline '{entry['name']}' "
            f"(at {entry['promoted_at']}); gates with `baseline: {entry['name']}` now compare against it.")


def verdict_lines(results: Results) -> list[str]:
    """Every gate verdict with its message (observed value; for baseline gates the margin, raw and adjusted p)."""
    if not results.gates:
        return ["gates: none configured"]
    passed = sum(v.passed for v in results.gates)
    lines = [f"gates: {passed} of {len(results.gates)} verdict{'s' * (len(results.gates) != 1)} pass"]
    return lines + [f"  {'PASS' if v.passed else 'FAIL'}  {v.candidate}: {v.gate}: {v.message}" for v in results.gates]


def _register(stored: dict[str, Any], promoted: dict[str, str], uri: str | None) -> None:
    """Register the promoted candidate's adapter in the MLflow model registry (aliased champion), when a tracking URI
    is given (`--mlflow`) or the run was configured with one (`tracking.mlflow`)."""
    uri = uri or (stored.get("config", {}).get("tracking") or {}).get("mlflow")
    if not uri:
        return
    model, version = register(stored, promoted["candidate"], uri, promoted["name"])
    print(f"Registered {promoted['candidate']}'s adapter as model '{model}' version {version} in {uri}, "
          f"alias {ALIAS}.")


def _terminal(results: Results) -> None:
    render(results, _console())


def _report(results: Results, fmt: str) -> int:
    """Any registered format (harness/results/render.py); the terminal one straight to the console."""
    if fmt == "terminal":
        _terminal(results)
        return EXIT_OK
    print(RENDERERS.get(fmt).render(results))
    return EXIT_OK


def _regate(results: Results, gates_file: str | None, store: Any) -> Results:
    """Verdicts again on stored results: the run's own gates, or the `gates:` list (and optional
    `gate_correction:`) of a YAML file; the run's bootstrap resamples and seed, so its own gates reproduce."""
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
    correction, alpha = "holm", 0.05
    rows = compare_runs(a, b, alpha=alpha, correction=correction)
    beside = environment_notes(a, b)  # different hardware; latencies measured under different conditions
    if fmt == "json":
        for row in rows:
            print(json.dumps(row))
        for note in beside:
            print(f"note: {note}", file=sys.stderr)
        return EXIT_OK
    runs = {side: {k: r.get(k) for k in ("run_id", "name", "created")} for side, r in (("a", a), ("b", b))}
    render_comparison(runs | {"correction": correction, "alpha": alpha, "rows": rows, "notes": beside},
                      _console())
    return EXIT_OK
