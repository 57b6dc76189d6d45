"""Execution: a bake-off's plan of units (plan.py), the one function that runs a unit (compute.py), and the
executors that decide where and when each unit runs. An executor is one module and one registration here.

An executor takes the plan, the context every unit may read, the driver's unit cache and the progress display,
and returns every unit's output or failure. It never changes what a unit computes: the same plan on any
executor gives the same records (tests/execution/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from harness.cache import UnitCache
from harness.config import ExecutorConfig
from harness.execution.compute import Context, Output, Progress
from harness.execution.plan import Plan
from harness.registry import Registry


@dataclass(frozen=True)
class Failure:
    """A unit that raised (or whose input failed): the message names the unit, and the node where it ran."""

    message: str


class Executor(Protocol):
    def execute(self, plan: Plan, ctx: Context, cache: UnitCache,
                progress: Progress) -> dict[str, Output | Failure]: ...


EXECUTORS: Registry[type] = Registry("executor")
MODULES = ("local", "ray_tasks")


def executor_for(cfg: ExecutorConfig) -> Executor:
    import importlib

    for module in MODULES:  # each registers its executor when imported; none imports Ray before it runs
        importlib.import_module(f"harness.execution.{module}")
    return EXECUTORS.get(cfg.kind)(cfg)
