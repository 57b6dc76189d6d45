"""Command line: `sftbench run [CONFIG] [--out DIR] [key=value ...]`, `sftbench ls`.

Exit codes: 0 all gates pass, 1 a gate failed, 2 usage/config/data error, 3 runtime failure.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, SftbenchError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sftbench", description="Which base model should we fine-tune and ship?")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a bake-off (the bundled demo when no config is given)")
    run.add_argument("config", nargs="?", help="bake-off YAML (default: the bundled demo)")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. recipe.epochs=1")
    run.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    sub.add_parser("ls", help="list bundled benchmarks, probes, metrics, tuners and model aliases")
    sc = sub.add_parser("score", help="score a predictions file against reference file(s); prints JSON")
    sc.add_argument("--metric", required=True)
    sc.add_argument("--predictions", required=True, type=Path)
    sc.add_argument("--references", required=True, type=Path, action="append",
                    help="one item per line (or JSONL); repeat for multiple references")
    sc.add_argument("--resamples", type=int, default=1000)
    sc.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        # overrides may come after options (`run cfg.yaml --out d recipe.epochs=1`): collect the leftovers
        args, extra = parser.parse_known_args(args_list)
        if extra and (args.command != "run" or any("=" not in e for e in extra)):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if extra:
            args.overrides = [*args.overrides, *extra]
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "ls":
            return _ls()
        if args.command == "score":
            return _score(args)
    except SftbenchError as err:
        print(f"sftbench: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("sftbench: interrupted; run the same command again to start over", file=sys.stderr)
        return 130
    return EXIT_USAGE


def quiet_libraries() -> None:
    """Library progress bars and deprecation chatter would bury our own progress and leaderboard."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*requires_grad=True to a scalar.*")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.config import load_config
    from harness.run import run
    from reports.progress import RichProgress
    from reports.results import build_results, write_json
    from reports.terminal import render

    # A config path that is really an override (`sftbench run recipe.epochs=1`) means: the demo, overridden.
    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    cfg = load_config(config, overrides)
    quiet_libraries()
    out = Path(args.out or Path("runs") / cfg.name)
    console = Console(stderr=True, quiet=args.quiet)
    with RichProgress(console) as progress:
        run_id, candidates = run(cfg, progress)
    from harness.run import load_suites

    mains = {spec.name: spec.main_metric for spec, _ in load_suites(cfg).benchmarks}
    results = build_results(run_id, cfg, candidates, mains)
    write_json(results, out / "results.json")
    from reports.html import render_html

    (out / "report.html").write_text(render_html(results), encoding="utf-8")
    render(results, Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160))))
    print(f"results: {out / 'results.json'}")
    if any(c["status"] == "failed" for c in results["candidates"]):
        return EXIT_RUNTIME
    return EXIT_OK if results["passed"] else EXIT_GATE_FAILED


def _score(args: argparse.Namespace) -> int:
    import json

    from harness.scorefiles import score_files

    result = score_files(args.metric, args.predictions, args.references, args.resamples, args.seed)
    print(json.dumps(result))
    return EXIT_OK


def _ls() -> int:
    from harness.config import BUNDLED_DIR
    from harness.models import ALIASES
    from harness.score import METRICS
    from tuners import load_all

    print("benchmarks:", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/benchmark.yaml"))))
    print("probes:    ", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/probe.yaml"))))
    print("metrics:   ", ", ".join(f"{n} ({'higher' if m.higher_is_better else 'lower'} is better)" for n, m in METRICS.items()))
    print("tuners:    ", ", ".join(load_all()))
    for name, alias in ALIASES.items():
        print(f"model alias {name}: {alias.description}")
    return EXIT_OK


def entry() -> None:
    sys.exit(main())
