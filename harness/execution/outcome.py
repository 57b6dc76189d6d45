"""What the executed plan gives back, candidate by candidate, before comparison and gates: per benchmark its
scores, training record, probes and bias pairs, chance and whether it learned."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.models.loading import ModelHandle
from harness.scoring.metrics import MetricValue
from harness.training.loop import TrainResult


@dataclass(frozen=True)
class BenchmarkResult:
    benchmark: str
    version: str
    task: str
    status: str  # ok | n/a | failed
    reason: str = ""
    learning_rate: float | None = None
    data_sha256: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, MetricValue]] = field(default_factory=dict)  # split -> metric -> value
    train: TrainResult | None = None
    latency_ms: float | None = None  # measured under fixed conditions (harness/execution/latency.py)
    probes: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, list[str]] = field(default_factory=dict, repr=False)
    per_class_f1: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> label -> F1
    sweep: list[dict[str, Any]] = field(default_factory=list)  # settings tried, validation score, which won
    bias: list[dict[str, Any]] = field(default_factory=list)  # counterfactual flip rates before/after tuning
    files: dict[str, str] = field(default_factory=dict)  # resolved spec and data paths, as read
    unit: Path | None = None  # the kept tuned setting (trainable.safetensors, peft adapter/)
    chance: dict[str, dict[str, Any]] = field(default_factory=dict)  # split -> {value, how}: harness/scoring/chance.py
    learned: bool | None = None  # beats chance by the documented margin (None: nothing to compare with)
    learned_reason: str = ""
    zero_shot: bool = False  # the base model scored as it is, no tuning (a reference row)
    seeds: list[int] = field(default_factory=list)  # training seeds merged into this result (assemble.merge)
    seed_runs: list[dict[str, Any]] = field(default_factory=list)  # per seed: its unit, training seconds, loss
    seed_predictions: dict[str, list[list[str]]] = field(default_factory=dict, repr=False)  # split -> per seed
    params: int | None = None  # the tuned model's parameters on this benchmark (an encoder's head is per benchmark)
    trainable_params: int | None = None  # of them, trained on this benchmark (0 for a row scored as it is)
    latency_conditions: dict[str, Any] | None = None  # what latency_ms was measured under (or why it was not)


@dataclass(frozen=True)
class CandidateResult:
    name: str
    model: str
    status: str  # ok | failed
    reason: str = ""
    handle: ModelHandle | None = None
    params: int = 0
    trainable_params: int = 0
    peak_rss_mb: float = 0.0
    benchmarks: list[BenchmarkResult] = field(default_factory=list)
    zero_shot: bool = False  # a reference row: the base model untuned; never the recommendation
    peak_gpu_mb: float | None = None  # None where no unit ran on a GPU
    gpu_seconds: float | None = None
    adapter: str | None = None  # a peft adapter folder scored as it is: a real candidate, not a reference row


@dataclass(frozen=True)
class Bakeoff:
    run_id: str
    candidates: list[CandidateResult]
    main_metrics: dict[str, str]  # benchmark -> its main metric
    warnings: list[dict[str, Any]] = field(default_factory=list)  # data lint findings that did not stop the run
