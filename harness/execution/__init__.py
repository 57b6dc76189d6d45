"""Execution: a bake-off's plan of units (plan.py), the one function that runs a unit (compute.py), and the
executors that decide where and when each unit runs.

An executor takes the plan, the context every unit may read, the driver's unit cache and the progress display,
and returns every unit's output or failure. It never changes what a unit computes: the same plan on any
executor gives the same records (tests/execution/). A new executor is one module with a class taking the
`ExecutorConfig`, and one lazy registration in EXECUTORS (harness/registry.py): the run's checks of
`executor.kind` (harness/execution/preflight.py) and the CLI's `--executor` read its names without importing the
executors' modules, so neither loads torch or Ray."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from harness.errors import ConfigError
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.config import ExecutorConfig
    from harness.execution.compute import Context, Output, Progress
    from harness.execution.plan import Plan
    from harness.storage.units import UnitCache


@dataclass(frozen=True)
class Failure:
    """A unit that raised (or whose input failed): the message names the unit, and the node where it ran."""

    message: str


class Executor(Protocol):
    def execute(self, plan: Plan, ctx: Context, cache: UnitCache,
                progress: Progress) -> dict[str, Output | Failure]: ...


EXECUTORS: Registry[Callable[[ExecutorConfig], Executor]] = Registry("executor")
EXECUTORS.register("local", lazy="harness.execution.local:LocalExecutor")
EXECUTORS.register("ray", lazy="harness.execution.ray_tasks:RayExecutor")


def check_executor(kind: str) -> None:
    if kind not in EXECUTORS:
        raise ConfigError(f"executor.kind must be one of {', '.join(EXECUTORS)} (got {kind!r})")


def executor_for(cfg: ExecutorConfig) -> Executor:
    check_executor(cfg.kind)
    return EXECUTORS.get(cfg.kind)(cfg)
