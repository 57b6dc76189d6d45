"""The results of a bake-off: the typed model (model.py), how the harness finishes a run into it (finish.py: the
rows come from harness/execution/assemble.py), and the registry of renderers that reports/ fills (render.py).
reports/ imports this package's model and registry, and nothing else from the harness."""
from __future__ import annotations

from harness.results.model import (
    SCHEMA_VERSION,
    BenchmarkRow,
    BiasRow,
    CandidateRow,
    Cost,
    GateVerdict,
    Generalisation,
    MetricScore,
    ProbeRow,
    Results,
    TieGroup,
    write_json,
)

__all__ = ["SCHEMA_VERSION", "BenchmarkRow", "BiasRow", "CandidateRow", "Cost", "GateVerdict", "Generalisation",
           "MetricScore", "ProbeRow", "Results", "TieGroup", "write_json"]
