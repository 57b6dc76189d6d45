"""Command line: `sftbench run [CONFIG] [--out DIR] [key=value ...]`, `sftbench validate [CONFIG]`, `sftbench ls`.

Exit codes: 0 all gates pass, 1 a gate failed, 2 usage/config/data error, 3 runtime failure.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import EXIT_GATE_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, SftbenchError

log = logging.getLogger("sftbench")


def _parser() -> argparse.ArgumentParser:
    from harness import __version__
    from harness.execution import EXECUTORS

    parser = argparse.ArgumentParser(prog="sftbench", description="Which base model should we fine-tune and ship?")
    parser.add_argument("--version", action="version", version=f"sftbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
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
    for cmd in (run, val, plan):
        _subset_arguments(cmd)
    _init_parser(sub)
    _gc_parser(sub)
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
    import reports  # noqa: F401  (registers the formats by name)
    from harness.results.render import RENDERERS

    return list(RENDERERS)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:  # its own options (harness/gates/simulate.py), no config, no logging
        from harness.gates import simulate

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

    from reports import logs

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
    from reports import logs

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
    if args.command == "run":
        return _run(args, console)
    if args.command == "ls":
        return _ls()
    if args.command == "validate":
        return _validate(args, console)
    if args.command == "score":
        return _score(args)
    if args.command == "init":
        return _init(args)
    if args.command == "gc":
        return _gc(args)
    if args.command == "plan":
        return _plan(args)
    from harness.storage import history

    return history.dispatch(args)


def _run(args: argparse.Namespace, console: Any) -> int:
    from rich.console import Console

    from harness import interrupts
    from harness.config import load_config
    from harness.run import run
    from harness.storage.store import default_path
    from harness.storage.units import UnitCache, default_root
    from reports import write_reports
    from reports.logs import PRINTED
    from reports.progress import LineProgress, RichProgress
    from reports.terminal import render

    config, overrides = _config_and_overrides(args)
    # the flags are overrides of the config's `executor:` (so bad values get the config's own error message)
    overrides += [f"executor.kind={args.executor}"] * bool(args.executor)
    overrides += ["executor.kind=ray", f"executor.address={args.ray_address}"] * bool(args.ray_address)
    overrides += [f"tracking.mlflow={args.mlflow}"] * bool(args.mlflow)
    cfg = load_config(config, overrides)
    from harness.models.device import quiet_libraries

    quiet_libraries()
    from harness.storage.store import Store

    store = None if args.no_store else Store(args.store)  # a bad store fails before hours of training
    baselines = {g.baseline: store.baseline(g.baseline) for g in cfg.gates if g.baseline and store}
    out = Path(args.out or Path("runs") / cfg.name)
    # the unit store: the one the workers share when the executor declares it, else beside the run store
    root = Path(cfg.executor.units) if cfg.executor.units else \
        default_root(Path(args.store) if args.store else default_path())
    cache = UnitCache(None if args.no_cache else root, force=args.force)
    try:
        # a terminal gets live bars; a log (CI) a line per stage and per loop at most every 30 s or 10%
        with interrupts.honoured(), \
                (RichProgress(console) if console.is_terminal else LineProgress(console)) as progress:
            results = run(cfg, progress, cache, baselines)
            progress.stage(cfg.name, f"writing results.json and the reports to {out}")
            written = write_reports(results, out)
    except KeyboardInterrupt:
        kept = f"{cache.computed} finished unit(s) of work are kept in {cache.root}; run the same command again to " \
               "resume" if cache.root else "nothing was kept (--no-cache); run the same command again to start over"
        say(f"sftbench: interrupted; {kept}", sys.stderr, logging.WARNING)
        return EXIT_INTERRUPTED
    if store:
        store.save(results.to_json())
        store.close()
    board = Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160)), record=True)
    render(results, board)
    log.info("leaderboard:\n%s", board.export_text(), extra=PRINTED)
    say(f"results: {out / 'results.json'} ({', '.join(written)} beside it)")
    failed = any(c.status == "failed" for c in results.candidates)
    code = EXIT_RUNTIME if failed else EXIT_OK if results.passed else EXIT_GATE_FAILED
    if cfg.tracking.mlflow:  # after results.json is written: a tracking failure (exit 2) keeps the results
        from harness.storage.tracking import log_run

        say(f"mlflow: run {log_run(results, out, cfg.tracking.mlflow, code)} in {cfg.tracking.mlflow}")
    return code


def say(line: str, file: Any = None, level: int = logging.INFO) -> None:
    """Print a line for the person at the terminal, and keep it in the log (--log-file)."""
    from reports.logs import PRINTED

    print(line, file=file or sys.stdout)
    log.log(level, line, extra=PRINTED)


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    # A config path that is really an override (`sftbench run recipe.epochs=1`) means: the demo, overridden.
    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    if args.candidates is not None:
        import json

        from harness.errors import ConfigError

        names = [n.strip() for n in args.candidates.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"--candidates needs at least one candidate name (got {args.candidates!r})")
        overrides.append(f"only_candidates={json.dumps(names)}")
    if args.limit is not None:
        overrides += _limit_overrides(config, overrides, args.limit)
    return config, overrides


def _limit_overrides(config: str | None, overrides: list[str], limit: int) -> list[str]:
    """`--limit N` as overrides of every suite's caps (a cap already below N stays), so the config records it and
    the unit keys follow. A config that does not read is left to the command's own error."""
    from harness.config import DEMO_CONFIG, apply_override, read_yaml
    from harness.errors import ConfigError

    try:
        raw = read_yaml(Path(config) if config else DEMO_CONFIG)
        for item in overrides:
            apply_override(raw, item)
    except ConfigError:
        return []
    caps = {"benchmarks": ("max_train", "max_validation", "max_test"), "probes": ("max_items",)}
    out = []
    for key, names in caps.items():
        suites = raw.get(key) or []
        for i, suite in enumerate(suites if isinstance(suites, list) else []):
            for cap in names:
                have = suite.get(cap) if isinstance(suite, dict) else None
                capped = min(have, limit) if isinstance(have, int) and not isinstance(have, bool) else limit
                out.append(f"{key}.{i}.{cap}={capped}")
    return out


def _validate(args: argparse.Namespace, console: Any) -> int:
    """One line per finding on stderr (`path[:line]: warning|error: message`), a summary on stdout."""
    from harness.data.validate import Finding
    from harness.execution.preflight import validate
    from reports.format import capped

    config, overrides = _config_and_overrides(args)
    findings = validate(config, overrides)
    for shown in capped([f.to_dict() for f in findings]):  # a few of each kind: the rest counted in one line
        print(Finding(**shown), file=sys.stderr)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if not errors:
        _power(config, overrides, sys.stderr if args.examples else sys.stdout)
    if args.examples and not errors:  # stdout carries only the JSON lines then; the summary goes to stderr
        import json

        from harness.config import load_config
        from harness.data.examples import model_inputs
        from harness.models.device import quiet_libraries
        from reports.progress import LineProgress, RichProgress

        quiet_libraries()  # resolving a GGUF candidate converts it once: our progress on stderr, no library bars
        with (RichProgress(console) if console.is_terminal else LineProgress(console)) as progress:
            rows = list(model_inputs(load_config(config, overrides), args.examples, progress))
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    print(f"{config or 'demo'}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}",
          file=sys.stderr if args.examples else sys.stdout)
    return EXIT_USAGE if errors else EXIT_OK


def _power(config: str | None, overrides: list[str], out: Any) -> None:
    """Each metric gate's smallest detectable effect at 80% power (harness/power.py), before any compute."""
    from harness.config import load_config
    from harness.gates.power import power_lines
    from harness.storage.store import Store

    cfg = load_config(config, overrides)
    try:
        with Store() as store:
            latest = store.latest(cfg.name)
    except Exception:  # a store that cannot be read is not a reason to refuse a power estimate
        latest = None
    for line in power_lines(cfg, _test_sizes(cfg), latest):
        print(line, file=out)


def _test_sizes(cfg: Any) -> dict[str, int]:
    from harness.data.specs import load_benchmark

    sizes = {}
    for ref in cfg.benchmarks:
        spec, splits = load_benchmark(ref, cfg.base_dir)
        sizes[spec.name] = len(splits["test"].examples)
    return sizes


def _plan(args: argparse.Namespace) -> int:
    """`sftbench plan`: the forecast of harness/gates/forecast.py, from the latest stored run of this bake-off."""
    from harness.config import load_config
    from harness.gates.forecast import forecast
    from harness.storage.store import Store

    config, overrides = _config_and_overrides(args)
    cfg = load_config(config, overrides)
    sizes = _test_sizes(cfg)
    stored = None
    try:
        with Store(args.store) as store:
            runs = [r for r in store.runs() if r["name"] == cfg.name]
            stored = store.get(runs[-1]["run_id"]) if runs else None
    except Exception:  # noqa: BLE001 a store that cannot be read is not a reason to refuse a forecast
        stored = None
    for line in forecast(cfg, sizes, stored).lines():
        print(line)
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from harness.data.scaffold import init

    made = init(args.data, args.out, args.text, args.label, args.force)
    labels = ", ".join(f"{k} ({n})" for k, n in made.labels.items())
    sizes = ", ".join(f"{s} {n}" for s, n in made.splits.items())
    dropped = f"; {made.dropped} row(s) without a text or a label left out" if made.dropped else ""
    texts = " and ".join(f"'{t}'" for t in made.texts)
    how = {1: "", 2: " (a text pair: both in the causal LM's prompt, a pair for the encoder)"}.get(
        len(made.texts), " (all in the causal LM's prompt, and in the encoder's text)")
    print(f"wrote {made.benchmark} (labels: {labels})")
    print(f"columns used: text {texts}{how}, label '{made.label}'")
    print("columns left out: " + (", ".join(f"'{c}'" for c in made.left_out) + " (add one with --text COL)"
                                   if made.left_out else "none"))
    print(f"wrote {made.config}; splits carved from {args.data.name}: {sizes}{dropped}")
    print(f"next: sftbench validate {made.config}, then sftbench run {made.config} --limit 50 for a smoke run")
    return EXIT_OK


def _gc(args: argparse.Namespace) -> int:
    from harness.errors import ConfigError
    from harness.storage import prune
    from harness.storage.store import Store, default_path
    from harness.storage.units import default_root

    try:
        age = prune.parse_age(args.older_than) if args.older_than else None
    except ValueError as err:
        raise ConfigError(f"--older-than: {err}") from None
    path = Path(args.store) if args.store else default_path()
    store = Store(path) if path.exists() else None  # no store: no baselines to keep
    try:
        plan = prune.plan(Path(args.units) if args.units else default_root(path), store, age)
    finally:
        if store:
            store.close()
    for line in prune.describe(plan, args.older_than, prune.apply(plan) if args.yes else None):
        print(line)
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    import json

    from harness.scoring.files import score_files

    result = score_files(args.metric, args.predictions, args.references, args.resamples, args.seed)
    print(json.dumps(result))
    return EXIT_OK


def _ls() -> int:
    from harness.config import BUNDLED_DIR
    from harness.models.loading import ALIASES
    from harness.scoring.metrics import METRICS
    from tuners import load_all

    print("benchmarks:", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/benchmark.yaml"))))
    print("probes:    ", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/probe.yaml"))))
    print("metrics:   ", ", ".join(f"{n} ({'higher' if m.higher_is_better else 'lower'} is better)"
                                     for n, m in METRICS.items()))
    print("tuners:    ", ", ".join(load_all()))
    for name, alias in ALIASES.items():
        print(f"model alias {name}: {alias.description}")
    return EXIT_OK


def entry() -> None:
    # Before torch loads: spinning OpenMP threads make a busy 2-core machine several times slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())
