"""`sftbench validate [CONFIG] [key=value ...] [--examples N]`: every error and warning for a config, each gate's
power, and (--examples) the first rows of every split as each candidate reads them. The config is loaded once;
no model loads (--examples loads each causal candidate's tokenizer). Exit 2 on any error."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from harness.commands.overrides import config_and_overrides, test_sizes
from harness.config import DEMO_CONFIG, BakeoffConfig, load_config
from harness.data.examples import model_inputs
from harness.data.validate import Finding
from harness.errors import EXIT_OK, EXIT_USAGE, SftbenchError
from harness.execution.preflight import config_error, lint
from harness.gates.power import power_lines
from harness.models.device import quiet_libraries
from harness.storage.store import Store
from reports.format import capped
from reports.progress import LineProgress, RichProgress


def main(args: argparse.Namespace, console: Any) -> int:
    """One line per finding on stderr (`path[:line]: warning|error: message`), a summary on stdout."""
    config, overrides = config_and_overrides(args)
    cfg: BakeoffConfig | None = None
    try:
        cfg = load_config(config, overrides)
    except SftbenchError as err:
        findings = [config_error(err, str(config or DEMO_CONFIG))]  # the demo, when no config was named
    else:
        findings = lint(cfg)
    for shown in capped([f.to_dict() for f in findings]):  # a few of each kind: the rest counted in one line
        print(Finding(**shown), file=sys.stderr)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if cfg is not None and not errors:
        power(cfg, sys.stderr if args.examples else sys.stdout)
        if args.examples:  # stdout carries only the JSON lines then; the summary goes to stderr
            quiet_libraries()  # resolving a GGUF candidate converts it once: our progress on stderr, no library bars
            with (RichProgress(console) if console.is_terminal else LineProgress(console)) as progress:
                rows = list(model_inputs(cfg, args.examples, progress))
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
    print(f"{config or 'demo'}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}",
          file=sys.stderr if args.examples else sys.stdout)
    return EXIT_USAGE if errors else EXIT_OK


def power(cfg: BakeoffConfig, out: Any) -> None:
    """Each metric gate's smallest detectable effect at 80% power (harness/gates/power.py), before any compute,
    from the latest stored run of this bake-off."""
    try:
        with Store() as store:
            latest = store.latest(cfg.name)
    except Exception:  # a store that cannot be read is not a reason to refuse a power estimate
        latest = None
    for line in power_lines(cfg, test_sizes(cfg), latest):
        print(line, file=out)
