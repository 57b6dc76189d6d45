"""The config a command reads: a config path (or the bundled demo) and key=value overrides, to which the subset
flags `--candidates` and `--limit` add their own overrides, so the config records them and the unit keys follow;
and the benchmarks' test sizes that validate's power lines and plan's forecast read from it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.config import DEMO_CONFIG, BakeoffConfig, apply_override, read_yaml
from harness.data.specs import load_benchmark
from harness.errors import ConfigError


def config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    # A config path that is really an override (`sftbench run recipe.epochs=1`) means: the demo, overridden.
    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    if args.candidates is not None:
        names = [n.strip() for n in args.candidates.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"--candidates needs at least one candidate name (got {args.candidates!r})")
        overrides.append(f"only_candidates={json.dumps(names)}")
    if args.limit is not None:
        overrides += limit_overrides(config, overrides, args.limit)
    return config, overrides


def limit_overrides(config: str | None, overrides: list[str], limit: int) -> list[str]:
    """`--limit N` as overrides of every suite's caps (a cap already below N stays), so the config records it and
    the unit keys follow. A config that does not read is left to the command's own error."""
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


def test_sizes(cfg: BakeoffConfig, split: str = "test") -> dict[str, int]:
    """Each benchmark's number of test items (or of another split's), as the run will score them."""
    sizes = {}
    for ref in cfg.benchmarks:
        spec, splits = load_benchmark(ref, cfg.base_dir)
        if split in splits:
            sizes[spec.name] = len(splits[split].examples)
    return sizes
