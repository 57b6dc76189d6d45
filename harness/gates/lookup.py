"""What every gate kind shares: the verdict type (the results model's GateVerdict), failing closed, and finding
`benchmark.metric[.split]` in a candidate row (results.json shape, so stored baselines read the same way)."""
from __future__ import annotations

from typing import Any

from harness.results.model import GateVerdict as Verdict

__all__ = ["Verdict", "closed", "lookup"]


def closed(candidate: str, gate: str, why: str) -> Verdict:
    return Verdict(candidate, gate, False, None, f"fails closed: {why}")


def lookup(candidate: dict[str, Any], metric: str) -> tuple[float | None, dict[str, Any] | None, str]:
    """Find `benchmark.metric[.split]` in a candidate's results dict; (None, None, why) when absent."""
    parts = metric.split(".")
    bench, name, split = parts[0], parts[1], parts[2] if len(parts) == 3 else "test"
    if candidate["status"] == "failed" and not candidate["benchmarks"]:
        return None, None, f"candidate failed: {candidate['reason']}"
    for b in candidate["benchmarks"]:
        if b["benchmark"] != bench:
            continue
        if b["status"] != "ok":
            return None, None, f"benchmark {bench} {b['status']}: {b['reason']}"
        value = b["scores"].get(split, {}).get(name)
        if value is None:
            return None, None, f"no metric '{name}' on {bench}/{split}"
        return value["value"], value, ""
    return None, None, f"no benchmark '{bench}' in the results"
