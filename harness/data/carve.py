"""Splits carved from train: `splits: {validation: {from: train, fraction: 0.1, seed: 0, stratify: true}}`.

The carving is reproducible (numpy's PCG64 generator seeded by `seed`), optionally stratified by label, and in the
data hash: a carved split's sha256, and that of the train rows left, are of the file's bytes and every carving from
it, so a kept unit is never reused across a different carve. Several splits carved from one file are taken in split
order (validation, then test, then shifted), each `fraction` of the file's rows, so they never share a row.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import ConfigError, DataError

CARVE_KEYS = ("from", "fraction", "seed", "stratify")
SOURCES = ("train",)  # the split a split may be carved from


@dataclass(frozen=True)
class Carve:
    source: str  # the split whose file the rows are taken from
    fraction: float  # of the file's rows (of each label's rows when stratified)
    seed: int = 0
    stratify: bool = False

    def describe(self) -> str:
        return f"from {self.source} fraction {self.fraction!r} seed {self.seed} stratify {self.stratify}"


def parse_carve(split: str, raw: dict[str, object], task: str) -> Carve:
    unknown = sorted(set(raw) - set(CARVE_KEYS))
    if unknown:
        raise ConfigError(f"splits.{split}: unknown key '{unknown[0]}'; known: {', '.join(CARVE_KEYS)}")
    source, fraction, seed, stratify = (raw.get("from"), raw.get("fraction"), raw.get("seed", 0),
                                        raw.get("stratify", False))
    if source not in SOURCES:
        raise ConfigError(f"splits.{split}.from must be {' or '.join(SOURCES)} (got {source!r})")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"splits.{split}.fraction must be a number between 0 and 1 (got {fraction!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"splits.{split}.seed must be a non-negative integer (got {seed!r})")
    if not isinstance(stratify, bool):
        raise ConfigError(f"splits.{split}.stratify must be true or false (got {stratify!r})")
    if stratify and task != "classification":
        raise ConfigError(f"splits.{split}.stratify needs labels: only a classification benchmark has them")
    return Carve(str(source), float(fraction), seed, stratify)


def carve_rows(carves: dict[str, Carve], targets: list[str], path: Path) -> dict[str, list[int]]:
    """Row indices (in file order) of each carved split, and of the source split's rows left (under its name)."""
    left = list(range(len(targets)))
    parts: dict[str, list[int]] = {}
    for name, carve in carves.items():
        rng = np.random.Generator(np.random.PCG64(carve.seed))
        if carve.stratify:
            in_file: dict[str, int] = defaultdict(int)
            for t in targets:
                in_file[t] += 1
            groups: dict[str, list[int]] = defaultdict(list)
            for i in left:
                groups[targets[i]].append(i)
            taken = [int(i) for label in sorted(groups) for i in
                     rng.permutation(groups[label])[: min(round(carve.fraction * in_file[label]),
                                                          len(groups[label]) - 1)]]
        else:
            taken = [int(i) for i in rng.permutation(left)[: min(round(carve.fraction * len(targets)),
                                                                len(left) - 1)]]
        if not taken:
            raise DataError(f"carving {name} ({carve.describe()}) from {len(left)} rows takes no row", path)
        parts[name] = sorted(taken)
        chosen = set(taken)
        left = [i for i in left if i not in chosen]
    parts[next(iter(carves.values())).source] = left
    return parts


def carve_digest(file_digest: str, carves: dict[str, Carve], split: str) -> str:
    """The data hash of one part of a carved file: its bytes' digest, every carving from it, and which part."""
    plan = "; ".join(f"{name} {carve.describe()}" for name, carve in carves.items())
    return hashlib.sha256(f"{file_digest}:carved {plan}:{split}".encode()).hexdigest()
