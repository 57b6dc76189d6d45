"""`sftbench ls` (what is bundled and registered) and `sftbench score` (a predictions file scored against reference
files, as JSON)."""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from harness.config import BUNDLED_DIR
from harness.errors import EXIT_OK
from harness.models.loading import ALIASES
from harness.scoring.files import score_files
from harness.scoring.metrics import METRICS
from tuners import TUNERS


def main(args: argparse.Namespace, console: Any) -> int:
    if args.command == "score":
        result = score_files(args.metric, args.predictions, args.references, args.resamples, args.seed)
        print(json.dumps(result))
        return EXIT_OK
    print("benchmarks:", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/benchmark.yaml"))))
    print("probes:    ", ", ".join(sorted(p.parent.name for p in BUNDLED_DIR.glob("*/probe.yaml"))))
    print("metrics:   ", ", ".join(f"{n} ({'higher' if m.higher_is_better else 'lower'} is better)"
                                     for n, m in METRICS.items()))
    print("tuners:    ", ", ".join(f"{n} ({', '.join(f.name for f in dataclasses.fields(t.options)) or 'no options'})"
                                     for n, t in TUNERS.items()))  # each with its own options (tuners/<name>/config.py)
    for name, alias in ALIASES.items():
        print(f"model alias {name}: {alias.description}")
    return EXIT_OK
