"""`sftbench run [CONFIG] [key=value ...]`: the bake-off (harness/run.py), with progress on the terminal or in a
log, results.json and the reports written, the run stored, the leaderboard printed and, when configured, the run
logged to MLflow. Exit code: 0 every gate passes, 1 a gate failed, 3 a candidate failed (harness/errors.py)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import interrupts
from harness.commands.overrides import config_and_overrides
from harness.config import BakeoffConfig, load_config
from harness.errors import EXIT_GATE_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME
from harness.models.device import quiet_libraries
from harness.results.model import Results
from harness.storage.store import Store, default_path
from harness.storage.tracking import log_run
from harness.storage.units import UnitCache, default_root
from reports import write_reports
from reports.logs import PRINTED, say
from reports.progress import LineProgress, RichProgress
from reports.terminal import render

log = logging.getLogger("sftbench")


def main(args: argparse.Namespace, console: Any) -> int:
    cfg = _config(args)
    quiet_libraries()
    store = None if args.no_store else Store(args.store)  # a bad store fails before hours of training
    baselines = {g.baseline: store.baseline(g.baseline) for g in cfg.gates if g.baseline and store}
    out = Path(args.out or Path("runs") / cfg.name)
    # the unit store: the one the workers share when the executor declares it, else beside the run store
    root = Path(cfg.executor.units) if cfg.executor.units else \
        default_root(Path(args.store) if args.store else default_path())
    cache = UnitCache(None if args.no_cache else root, force=args.force)
    from harness.run import run  # the pipeline imports torch (seconds): after the config and the store are checked

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
    return _report(results, cfg, out, written)


def _config(args: argparse.Namespace) -> BakeoffConfig:
    config, overrides = config_and_overrides(args)
    # the flags are overrides of the config's `executor:` (so bad values get the config's own error message)
    overrides += [f"executor.kind={args.executor}"] * bool(args.executor)
    overrides += ["executor.kind=ray", f"executor.address={args.ray_address}"] * bool(args.ray_address)
    overrides += [f"tracking.mlflow={args.mlflow}"] * bool(args.mlflow)
    return load_config(config, overrides)


def _report(results: Results, cfg: BakeoffConfig, out: Path, written: list[str]) -> int:
    """The leaderboard and where the files are; the run logged to MLflow when configured; the exit code."""
    board = Console(file=sys.stdout, width=int(os.environ.get("COLUMNS", 160)), record=True)
    render(results, board)
    log.info("leaderboard:\n%s", board.export_text(), extra=PRINTED)
    say(f"results: {out / 'results.json'} ({', '.join(written)} beside it)")
    failed = any(c.status == "failed" for c in results.candidates)
    code = EXIT_RUNTIME if failed else EXIT_OK if results.passed else EXIT_GATE_FAILED
    if cfg.tracking.mlflow:  # after results.json is written: a tracking failure (exit 2) keeps the results
        say(f"mlflow: run {log_run(results, out, cfg.tracking.mlflow, code)} in {cfg.tracking.mlflow}")
    return code
