"""`sftbench plan [CONFIG]`: the forecast of harness/results/forecast.py (expected fine-tunes and the chance of a
stable recommendation under adaptive seeds), from the latest stored run of this bake-off. Loads no model."""
from __future__ import annotations

import argparse
from typing import Any

from harness.commands.overrides import config_and_overrides, test_sizes
from harness.config import load_config
from harness.errors import EXIT_OK
from harness.results.forecast import forecast
from harness.storage.store import Store


def main(args: argparse.Namespace, console: Any) -> int:
    config, overrides = config_and_overrides(args)
    cfg = load_config(config, overrides)
    sizes = test_sizes(cfg)
    try:
        with Store(args.store) as store:
            latest = store.latest(cfg.name)
    except Exception:  # noqa: BLE001 a store that cannot be read is not a reason to refuse a forecast
        latest = None
    for line in forecast(cfg, sizes, latest[1] if latest else None,
                         validation_sizes=test_sizes(cfg, "validation")).lines():
        print(line)
    return EXIT_OK
