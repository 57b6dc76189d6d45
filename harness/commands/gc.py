"""`sftbench gc`: the kept units no promoted baseline needs (harness/storage/prune.py), printed; removed with --yes."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.errors import EXIT_OK, ConfigError
from harness.storage import prune
from harness.storage.store import Store, default_path
from harness.storage.units import default_root


def main(args: argparse.Namespace, console: Any) -> int:
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
