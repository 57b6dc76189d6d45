"""The references of every scored split (gold labels, or reference texts), kept in results.json beside each
candidate's predictions. Corpus metrics (macro-F1, BLEU, chrF) are not means of per-item scores, so comparing
two stored runs on them needs the predictions and what they were scored against, not only the per-item numbers.

results.json `references`: {benchmark: {split: {"data_sha256": ..., "items": [[reference, ...], ...]}}}, one list
per scored item in scoring order (classification: [label]). `data_sha256` is the hash of the items the run
scored (row caps included), so references are only ever paired with predictions of those same items.
"""
from __future__ import annotations

from typing import Any

from harness.data.specs import Split

References = dict[str, dict[str, dict[str, Any]]]


def split_references(split: Split) -> dict[str, Any]:
    """What one scored split's predictions are scored against, as the run read it (its row caps applied): the
    references travel with the bake-off to results.json (harness/execution/suites.py Benchmark.references), never
    read again from disk."""
    return {"data_sha256": split.sha256, "items": [list(ex.references) for ex in split.examples]}


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
