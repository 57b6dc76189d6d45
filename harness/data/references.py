"""The references of every scored split (gold labels, or reference texts), kept in results.json beside each
candidate's predictions. Corpus metrics (macro-F1, BLEU, chrF) are not means of per-item scores, so comparing
two stored runs on them needs the predictions and what they were scored against, not only the per-item numbers.

results.json `references`: {benchmark: {split: {"data_sha256": ..., "items": [[reference, ...], ...]}}}, one list
per scored item in scoring order (classification: [label]). `data_sha256` is the hash of the items the run
scored (row caps included), so references are only ever paired with predictions of those same items.
"""
from __future__ import annotations

from typing import Any

from harness.config import BakeoffConfig
from harness.data.specs import SCORED_SPLITS, load_benchmark_spec, load_split
from harness.errors import SftbenchError

References = dict[str, dict[str, dict[str, Any]]]


def scored_references(cfg: BakeoffConfig) -> References:
    """Read the scored splits again, as the run read them (same spec, same caps; no model). A split that can no
    longer be read (deleted or broken since the run began) is left out: comparisons then say it is missing."""
    out: References = {}
    for ref in cfg.benchmarks:
        try:
            spec = load_benchmark_spec(ref.spec, cfg.base_dir)
        except (SftbenchError, OSError):
            continue
        splits = out.setdefault(spec.name, {})
        for name in (s for s in SCORED_SPLITS if s in spec.splits):
            try:
                split = load_split(spec, name, ref.max_test)
            except (SftbenchError, OSError):
                continue
            splits[name] = {"data_sha256": split.sha256, "items": [list(ex.references) for ex in split.examples]}
    return out


def stored_references(results: dict[str, Any], benchmark: str, split: str,
                      data_sha256: str | None) -> tuple[list[list[str]] | None, str]:
    """The references a stored run kept for `benchmark/split`, or (None, why not). They must be of the data the
    predictions were scored on (`data_sha256`, the candidate's benchmark entry's hash)."""
    entry = ((results.get("references") or {}).get(benchmark) or {}).get(split)
    run = results.get("run_id", "?")
    if entry is None:
        return None, (f"run {run} stores no references for {benchmark}/{split} (a run stored before sftbench kept "
                      "them, or its data could not be read again); run it again to compare this metric")
    if entry.get("data_sha256") != data_sha256:
        return None, (f"run {run} keeps references for {benchmark}/{split} of data sha256 {entry.get('data_sha256')}, "
                      f"not of the scored data {data_sha256}")
    return entry["items"], ""
