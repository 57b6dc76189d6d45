"""The gates section: one GateConfig per gate (a metric threshold, a baseline gate, a cap, or the recommendation's
stability), and the names a gate may use."""
from __future__ import annotations

from dataclasses import dataclass

from harness.config.reader import check

CAPS = ("forgetting", "generalisation_gap", "bias", "cost")  # gate kinds that put a ceiling (`max:`) on a number
COSTS = ("params", "latency_ms_per_item", "peak_rss_mb", "train_seconds", "peak_gpu_mb", "gpu_seconds")
CORRECTIONS = ("holm", "bh", "none")


BASELINE_MODES = {
    "no_regression": "fails only on evidence of a drop beyond the margin (controls false alarms; the default)",
    "non_inferior": "passes only on evidence that any drop is within the margin (controls false passes)",
}


@dataclass(frozen=True)
class GateConfig:
    """One gate; exactly one of `metric` (a threshold, or non-inferiority with `baseline:`) or a cap:
    `forgetting: PROBE`, `generalisation_gap: BENCHMARK`, `bias: SUITE` or `cost: NAME`, each with `max:`.
    `metric` is `benchmark.metric[.split]`, e.g. `support_intents.accuracy`. See harness/gates/check.py."""

    metric: str = ""
    op: str = ">="
    value: float = 0.0
    on: str = "value"  # value | ci_low | ci_high
    name: str = ""
    baseline: str = ""  # non-inferiority against this promoted baseline instead of a threshold
    margin: float = 0.0
    alpha: float = 0.05
    mode: str = ""  # baseline gates: no_regression (default) or non_inferior; see BASELINE_MODES
    forgetting: str = ""  # a probe name, or "*" for every probe the candidate ran
    generalisation_gap: str = ""  # a benchmark name
    bias: str = ""  # a counterfactual bias suite name
    cost: str = ""  # one of COSTS
    max: float | None = None  # the cap's ceiling
    recommendation_stability: float | None = None  # the bake-off's own gate: minimum bootstrap agreement

    @property
    def cap(self) -> str:
        """Which cap this gate is ("" for a metric gate)."""
        return next((k for k in CAPS if getattr(self, k)), "")

    def __post_init__(self) -> None:
        kinds = [k for k in ("metric", *CAPS) if getattr(self, k)] + (
            ["recommendation_stability"] if self.recommendation_stability is not None else [])
        check(len(kinds) == 1, "a gate needs exactly one of metric, " + ", ".join(CAPS)
               + ", recommendation_stability" + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.recommendation_stability is not None:
            check(0 < self.recommendation_stability <= 1,
                   f"gate recommendation_stability must be in (0, 1] (got {self.recommendation_stability})")
            if not self.name:
                object.__setattr__(self, "name", f"recommendation stability >= {self.recommendation_stability:g}")
            return
        check(self.margin >= 0, "gate margin must be >= 0")
        check(0 < self.alpha < 0.5, "gate alpha must be in (0, 0.5)")
        if self.cap:
            self._check_cap()
            return
        check(self.max is None, f"gate {self.metric}: `max:` is for caps ({', '.join(CAPS)}); "
               "a metric gate uses op and value")
        if self.baseline:
            mode = self.mode or "no_regression"
            check(mode in BASELINE_MODES, f"gate {self.metric}: mode must be one of {', '.join(BASELINE_MODES)} "
                   f"(got {self.mode!r})")
            object.__setattr__(self, "mode", mode)
            if not self.name:
                what = "non-inferior to" if mode == "non_inferior" else "no regression vs"
                object.__setattr__(self, "name", f"{self.metric} {what} {self.baseline} (margin {self.margin:g})")
        check(not self.mode or bool(self.baseline), f"gate {self.metric}: `mode:` is for baseline gates only")
        check(self.op in (">=", ">", "<=", "<"), f"gate op must be one of >=, >, <=, < (got {self.op!r})")
        check(self.on in ("value", "ci_low", "ci_high"), "gate 'on' must be value, ci_low or ci_high")
        check(self.metric.count(".") in (1, 2), f"gate metric must be benchmark.metric[.split] (got {self.metric!r})")
        if not self.name:
            on = "" if self.on == "value" else f" on {self.on}"
            object.__setattr__(self, "name", f"{self.metric} {self.op} {self.value:g}{on}")

    def _check_cap(self) -> None:
        cap, target = self.cap, getattr(self, self.cap)
        check(self.max is not None, f"gate {cap}: {target} needs `max:` (the cap)")
        check(not self.baseline, f"gate {cap}: {target}: `baseline:` is for metric gates only")
        check(not self.mode, f"gate {cap}: {target}: `mode:` is for baseline gates only")
        if cap == "cost":
            check(target in COSTS, f"gate cost must be one of {', '.join(COSTS)} (got {target!r})")
            check(self.on == "value", f"gate cost: {target} has no interval; drop `on: {self.on}`")
        check(self.on in ("value", "ci_high"),
               f"gate {cap}: {target}: 'on' must be value or ci_high (got {self.on!r})")
        if not self.name:
            label = "generalisation gap" if cap == "generalisation_gap" else cap
            bound = "" if self.on == "value" else f" on {self.on}"
            object.__setattr__(self, "name", f"{label} {target}{bound} <= {self.max:g}")
