"""The local executor: every unit in this process, in the plan's order (a serial run's order), through one unit
runner (harness/execution/runner.py): one loaded model per group of units (a candidate on a benchmark under one
seed), released when the next group begins."""
from __future__ import annotations

from harness import interrupts
from harness.config import ExecutorConfig
from harness.execution import Failure
from harness.execution.compute import Context, Output, Progress
from harness.execution.plan import Plan
from harness.execution.runner import Runner, failure
from harness.storage.units import UnitCache


class LocalExecutor:
    def __init__(self, cfg: ExecutorConfig | None = None):
        self.cfg = cfg or ExecutorConfig()

    def execute(self, plan: Plan, ctx: Context, cache: UnitCache, progress: Progress) -> dict[str, Output | Failure]:
        outputs: dict[str, Output | Failure] = {}
        failed: set[tuple[str, str]] = set()  # a failed unit fails its candidate's benchmark: skip the rest of it
        runner = Runner()
        try:
            for unit in plan.units:
                interrupts.check()
                if (unit.candidate, unit.benchmark) in failed:
                    outputs[unit.id] = Failure(f"not run: an earlier unit of {unit.candidate}/{unit.benchmark} failed")
                    continue
                inputs = {i: outputs[i] for i in unit.inputs}
                try:
                    outputs[unit.id] = runner.run(unit, inputs, ctx, cache, progress)  # type: ignore[arg-type]
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as err:  # a candidate's crash must not lose the other candidates' results
                    outputs[unit.id] = failure(unit, err)
                    failed.add((unit.candidate, unit.benchmark))
        finally:
            runner.release()
        return outputs
