"""Execution: a bake-off's plan of units (plan.py), the one function that runs a unit (compute.py), and the
executors that decide where and when each unit runs.

An executor takes the plan, the context every unit may read, the driver's unit cache and the progress display,
and returns every unit's output or failure. It never changes what a unit computes: the same plan on any
executor gives the same records (tests/execution/). A new executor is one module with a class taking the
`ExecutorConfig`, and one line in EXECUTORS; the config's `executor.kind` and the CLI's `--executor` read it.
This module imports nothing heavy, so the config can check a kind without loading torch or Ray."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.config import ExecutorConfig
    from harness.execution.compute import Context, Output, Progress
    from harness.execution.plan import Plan
    from harness.storage.units import UnitCache

EXECUTORS = {  # kind -> module:class
    "local": "harness.execution.local:LocalExecutor",
    "ray": "harness.execution.ray_tasks:RayExecutor",
}


@dataclass(frozen=True)
class Failure:
    """A unit that raised (or whose input failed): the message names the unit, and the node where it ran."""

    message: str


class Executor(Protocol):
    def execute(self, plan: Plan, ctx: Context, cache: UnitCache,
                progress: Progress) -> dict[str, Output | Failure]: ...


def executor_for(cfg: ExecutorConfig) -> Executor:
    module, name = EXECUTORS[cfg.kind].split(":")
    made: Any = getattr(importlib.import_module(module), name)(cfg)
    return made
