"""Command line: the arguments of every command, the logging setup, and the dispatch to the command's module
(harness/commands/: run, validate, plan, init, ls, score, gc, runs, show, promote, compare, gate, report;
`simulate` is harness/gates/simulate.py's own parser).

Exit codes: 0 all gates pass, 1 a gate failed, 2 usage/config/data error, 3 runtime failure.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import reports  # noqa: F401  (registers the report formats by name; no renderer module is imported)
from harness import __version__
from harness.commands import COMMANDS
from harness.errors import EXIT_INTERRUPTED, EXIT_USAGE, SftbenchError
from harness.execution import EXECUTORS
from harness.results.render import RENDERERS
from reports import logs
from reports.logs import say

log = logging.getLogger("sftbench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sftbench", description="Which base model should we fine-tune and ship?")
    parser.add_argument("--version", action="version", version=f"sftbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _validate_parsers(sub)
    _init_parser(sub)
    _gc_parser(sub)
    _history_parsers(sub)
    sub.add_parser("ls", help="list bundled benchmarks, probes, metrics, tuners and model aliases")
    sub.add_parser("simulate", add_help=False, help="simulated bake-offs of known truth: what adaptive seeds save and "
                   "what they get wrong (no training; `sftbench simulate --help`)")
    sc = sub.add_parser("score", help="score a predictions file against reference file(s); prints JSON")
    sc.add_argument("--metric", required=True)
    sc.add_argument("--predictions", required=True, type=Path)
    sc.add_argument("--references", required=True, type=Path, action="append",
                    help="one item per line (or JSONL); repeat for multiple references")
    sc.add_argument("--resamples", type=int, default=1000)
    sc.add_argument("--seed", type=int, default=0)
    return parser


def _run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a bake-off (the bundled demo when no config is given)")
    run.add_argument("config", nargs="?", help="bake-off YAML (default: the bundled demo)")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. recipe.epochs=1")
    run.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--verbose", action="store_true",
                     help="also show each unit's start and finish, kept units reused, and unit keys")
    run.add_argument("--log-file", default=None, type=Path, metavar="PATH",
                     help="keep the full log in PATH: everything printed, plus debug detail, timestamped")
    run.add_argument("--store", default=None, help="run store (default: $SFTBENCH_STORE or .sftbench/runs.sqlite)")
    run.add_argument("--no-store", action="store_true", help="do not record the run in the store")
    run.add_argument("--force", action="store_true", help="recompute every unit of work, ignoring kept results")
    run.add_argument("--no-cache", action="store_true", help="neither reuse nor keep finished units of work")
    run.add_argument("--executor", choices=list(EXECUTORS), default=None,
                     help="where units run: in this process (default) or as Ray tasks (docs/distributed.md)")
    run.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="join this Ray cluster (auto, HOST:PORT); without it --executor ray starts a local Ray")
    run.add_argument("--mlflow", default=None, metavar="URI",
                     help="also log the finished run to this MLflow tracking store (sqlite:///mlflow.db, "
                          "http://host:5000); overrides the config's tracking.mlflow")
    _subset_arguments(run)


def _validate_parsers(sub: Any) -> None:
    """validate and plan: a config read before any compute."""
    val = sub.add_parser("validate", help="check a config, its suites and data, and lint the data; loads no model")
    val.add_argument("config", nargs="?", help="bake-off YAML (default: the bundled demo)")
    val.add_argument("overrides", nargs="*", help="key=value overrides, as for run")
    val.add_argument("--examples", type=int, default=0, metavar="N",
                     help="print the first N rows of every split as each candidate reads them (JSON lines; loads "
                          "each causal candidate's tokenizer, no weights)")
    plan = sub.add_parser("plan", help="expected fine-tunes and the chance of a stable recommendation, before any "
                          "compute (simulated; loads no model)")
    plan.add_argument("config", nargs="?", help="bake-off YAML (default: the bundled demo)")
    plan.add_argument("overrides", nargs="*", help="key=value overrides, as for run")
    plan.add_argument("--store", default=None, help="run store whose latest run of this bake-off gives the levels")
    for cmd in (val, plan):
        _subset_arguments(cmd)


def _history_parsers(sub: Any) -> None:
    """The commands over stored runs (harness/commands/history.py)."""
    for name, help_text in (("runs", "list stored runs"), ("show", "print a stored run's leaderboard"),
                            ("promote", "mark a stored run's candidate as the accepted baseline"),
                            ("compare", "paired differences between two stored runs"),
                            ("gate", "re-evaluate gates on a stored run without retraining"),
                            ("report", "render a stored run again")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--store", default=None)
        if name != "runs":
            cmd.add_argument("run_id", help="run id (or a unique prefix)")
        if name == "promote":
            cmd.add_argument("--candidate", default=None)
            cmd.add_argument("--as", dest="baseline_name", default=None,
                             help="baseline name (default: the bake-off name)")
            cmd.add_argument("--mlflow", default=None, metavar="URI",
                             help="also register the candidate's adapter in this MLflow model registry, aliased "
                                  "champion (default: the run's tracking.mlflow, if any)")
        if name == "compare":
            cmd.add_argument("other", help="second run id")
            cmd.add_argument("--format", choices=("table", "json"), default="table",
                             help="a table (default), or one JSON object per row")
        if name == "gate":
            cmd.add_argument("--gates", default=None, help="YAML file with a `gates:` list (default: the run's own)")
        if name == "report":
            cmd.add_argument("--format", choices=_formats(), default="terminal")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number (got {text!r})")
    return int(text)


def _subset_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--limit", type=_positive, default=None, metavar="N",
                     help="a smoke run: cap every split of every benchmark, and every probe, at N rows (recorded as "
                          "the suites' max_train/max_validation/max_test/max_items)")
    cmd.add_argument("--candidates", default=None, metavar="A,B",
                     help="run only these candidates, by name (recorded as only_candidates)")


def _init_parser(sub: Any) -> None:
    init = sub.add_parser("init", help="write a benchmark.yaml and a bake-off config from a data file of text(s) "
                                       "and label")
    init.add_argument("--from", dest="data", required=True, type=Path, metavar="FILE",
                      help="a CSV or TSV with a header row, or JSONL, JSON or Parquet: text column(s) and a label "
                           "column")
    init.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="folder to write into (default: the file's name beside it, e.g. reviews/ for reviews.csv)")
    init.add_argument("--text", action="append", default=None, metavar="COL",
                      help="a text column; repeat for several, read together (--text premise --text hypothesis); "
                           "default: a sentence pair by its names (premise/hypothesis, sentence1/sentence2...), else "
                           "one text column by name")
    init.add_argument("--label", default=None, metavar="COL", help="the label column (default: detected by name)")
    init.add_argument("--force", action="store_true", help="overwrite files already in DIR")


def _gc_parser(sub: Any) -> None:
    gc = sub.add_parser("gc", help="remove kept units no promoted baseline needs (prints the plan; --yes removes)")
    gc.add_argument("--older-than", default=None, metavar="AGE",
                    help="only units no run has written or reused within AGE (30d, 12h, 2w)")
    gc.add_argument("--yes", action="store_true", help="remove them (without it, only print what would go)")
    gc.add_argument("--store", default=None, help="run store whose baselines are kept (default: as for run)")
    gc.add_argument("--units", default=None, metavar="DIR", help="unit store (default: units/ beside the run store)")


def _formats() -> list[str]:
    """The report formats: every renderer registered by reports/ (harness/results/render.py)."""
    return list(RENDERERS)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:  # its own options (harness/gates/simulate.py), no config, no logging
        from harness.gates import simulate  # numpy and scipy load for simulate only

        try:
            return simulate.main(args_list[1:])
        except SystemExit as exc:
            return int(exc.code or 0)
    parser = _parser()
    try:
        # overrides may come after options (`run cfg.yaml --out d recipe.epochs=1`): collect the leftovers
        args, extra = parser.parse_known_args(args_list)
        if extra and (args.command not in ("run", "validate", "plan") or any("=" not in e for e in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if extra:
            args.overrides = [*args.overrides, *extra]
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    from rich.console import Console

    # the one logging setup: progress and --verbose lines on stderr, --log-file from the first line to the exit code
    console = Console(stderr=True, quiet=vars(args).get("quiet", False))
    try:
        code = _command(args, console)
        log.info("exit code %d", code)
    finally:
        logs.reset()  # nothing of this command's logging stays behind (a crash's traceback still prints)
    return code


def _command(args: argparse.Namespace, console: Any) -> int:
    """The command's exit code; an error or a Ctrl-C is one line on stderr (and in the log file)."""
    try:
        logs.setup(console, vars(args).get("verbose", False), vars(args).get("log_file"))
    except OSError as err:
        say(f"sftbench: error: --log-file {args.log_file}: {err.strerror or err}", sys.stderr, logging.ERROR)
        return EXIT_USAGE
    try:
        return _dispatch(args, console)
    except SftbenchError as err:
        say(f"sftbench: error: {err}", sys.stderr, logging.ERROR)
        return err.exit_code
    except KeyboardInterrupt:
        say("sftbench: interrupted", sys.stderr, logging.WARNING)
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace, console: Any) -> int:
    # each command's module is imported when it runs (harness/commands/): `sftbench ls` never loads torch
    return COMMANDS.get(args.command)(args, console)


def entry() -> None:
    # Before torch loads: spinning OpenMP threads make a busy 2-core machine several times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
