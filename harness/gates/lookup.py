"""What every gate kind shares: the verdict type (the results model's GateVerdict), failing closed, the candidate rows
the gates read (the results model's CandidateRow; a results.json-shaped dict, as stored baselines and callers of
older code hold them, is read into one), and finding `benchmark.metric[.split]` in a row."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.results.model import CandidateRow, MetricScore
from harness.results.model import GateVerdict as Verdict

__all__ = ["Rows", "Verdict", "as_row", "as_rows", "closed", "lookup", "smallest"]

Rows = Iterable[CandidateRow | Mapping[str, Any]]  # the results model's rows (a results.json-shaped dict is read in)


def as_row(candidate: CandidateRow | Mapping[str, Any]) -> CandidateRow:
    return candidate if isinstance(candidate, CandidateRow) else CandidateRow.from_json(candidate)


def as_rows(candidates: Rows) -> list[CandidateRow]:
    return [as_row(c) for c in candidates]


def closed(candidate: str, gate: str, why: str) -> Verdict:
    return Verdict(candidate, gate, False, None, f"fails closed: {why}")


def lookup(candidate: CandidateRow, metric: str) -> tuple[float | None, MetricScore | None, str]:
    """Find `benchmark.metric[.split]` in a candidate's row; (None, None, why) when absent."""
    parts = metric.split(".")
    bench, name, split = parts[0], parts[1], parts[2] if len(parts) == 3 else "test"
    if candidate.status == "failed" and not candidate.benchmarks:
        return None, None, f"candidate failed: {candidate.reason}"
    for b in candidate.benchmarks:
        if b.benchmark != bench:
            continue
        if b.status != "ok":
            return None, None, f"benchmark {bench} {b.status}: {b.reason}"
        value = b.score(split, name)
        if value is None:
            return None, None, f"no metric '{name}' on {bench}/{split}"
        return value.value, value, ""
    return None, None, f"no benchmark '{bench}' in the results"


def smallest(c: CandidateRow) -> tuple[Any, Any]:
    """The order a recommendation takes among candidates that pass: fewest parameters, then cheapest to train."""
    return c.params, c.cost.train_seconds
