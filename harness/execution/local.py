"""The local executor: every unit in this process, in the plan's order (a serial run's order), with one loaded
model per group of units (a candidate on a benchmark under one seed), released when the next group begins."""
from __future__ import annotations

import gc
import logging
import time
import traceback

from harness import interrupts
from harness.config import ExecutorConfig
from harness.errors import SftbenchError
from harness.execution import Failure
from harness.execution.compute import Context, Output, Progress, compute, keep, key_of, open_workspace
from harness.execution.plan import Plan, Unit
from harness.execution.workspace import Workspace
from harness.storage.units import UnitCache

log = logging.getLogger(__name__)


def failure(unit: Unit, err: BaseException, where: str = "") -> Failure:
    """The reason a unit failed, in one line, naming the unit (and where it ran)."""
    if isinstance(err, SftbenchError):
        reason = str(err)
    else:  # a crash: its type, first line and the place it was raised
        last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        place = f" ({last.filename.split('/')[-1]}:{last.lineno})" if last else ""
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{place}"
    return Failure(f"{reason} [unit {unit.id}{f' on {where}' if where else ''}]")


class LocalExecutor:
    def __init__(self, cfg: ExecutorConfig | None = None):
        self.cfg = cfg or ExecutorConfig()

    def execute(self, plan: Plan, ctx: Context, cache: UnitCache, progress: Progress) -> dict[str, Output | Failure]:
        outputs: dict[str, Output | Failure] = {}
        failed: set[tuple[str, str]] = set()  # a failed unit fails its candidate's benchmark: skip the rest of it
        ws: Workspace | None = None
        for unit in plan.units:
            interrupts.check()
            if (unit.candidate, unit.benchmark) in failed:
                outputs[unit.id] = Failure(f"not run: an earlier unit of {unit.candidate}/{unit.benchmark} failed")
                continue
            if ws is None or ws.group != unit.group:
                ws = self._workspace(ws, unit, ctx)
            try:
                outputs[unit.id] = run_unit(unit, {i: outputs[i] for i in unit.inputs}, ctx, ws, cache, progress)  # type: ignore[misc]
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as err:  # a candidate's crash must not lose the other candidates' results
                outputs[unit.id] = failure(unit, err)
                failed.add((unit.candidate, unit.benchmark))
        if ws is not None:
            ws.release()
        return outputs

    @staticmethod
    def _workspace(previous: Workspace | None, unit: Unit, ctx: Context) -> Workspace:
        if previous is not None:
            previous.release()
            gc.collect()
        return open_workspace(unit, ctx, ctx.handles[unit.candidate])


def usable(unit: Unit, record: dict | None) -> dict | None:
    """A kept record, unless it lacks what this unit must give: a tune unit kept by a run without a sweep has no
    validation score (the same setting has the same key with or without a sweep), and a sweep needs it."""
    if record is not None and unit.kind == "tune" and unit.snapshot and record.get("validation") is None:
        return None
    return record


def run_unit(unit: Unit, inputs: dict[str, Output], ctx: Context, ws: Workspace, cache: UnitCache,
             progress: Progress) -> Output:
    """One unit in this process: read from `cache` when kept, else computed and kept there. With no cache
    (--no-cache) a tune unit's tensors stay in memory for the units that read them."""
    key = key_of(unit, inputs, ctx)
    record = usable(unit, cache.get(key) if key else None)
    if record is not None:
        log.debug("unit %s: kept (%s)", unit.id, key)
        return Output(record, key=key, reused=True)
    with cache.computing(key) as kept:  # a run sharing the unit store may be computing it
        record = usable(unit, kept)
        if record is not None:  # it was: kept while this run waited for its lock
            log.info("unit %s: kept by a concurrent run meanwhile, reused (%s)", unit.id, key)
            return Output(record, key=key, reused=True)
        log.info("unit %s: started (key %s)", unit.id, key)
        start = time.monotonic()
        out = compute(unit, inputs, ctx, ws, cache, progress, in_memory=cache.root is None)
        out.key = key
        if key:
            keep(cache, key, out)
            if cache.root is not None:
                out.tensors = None  # views of the model being trained on: read back from the cache when needed
    log.info("unit %s: finished in %.1f s", unit.id, time.monotonic() - start)
    return out
