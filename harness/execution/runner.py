"""The unit runner both executors use: one unit in this process, read from the unit cache when kept, else computed
(harness/execution/compute.py) and kept; and the one workspace a process holds at a time.

The local executor runs every unit through one `Runner`; a Ray worker keeps one for its process, so the next unit
of the same group finds the model its last unit loaded. The runner drives the workspace's lifecycle (setup for a
group, use per unit, release when another group begins or the run ends); neither executor touches its state.
"""
from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import Callable

from harness.errors import SftbenchError
from harness.execution import Failure
from harness.execution.compute import Context, Output, Progress, compute, keep, key_of
from harness.execution.plan import Unit
from harness.execution.workspace import Workspace
from harness.models.loading import ModelHandle
from harness.storage.units import UnitCache

log = logging.getLogger(__name__)


def planned_handle(ctx: Context, candidate: str) -> ModelHandle:
    return ctx.handles[candidate]


class Runner:
    """Runs units in this process with one workspace at a time: the units of a group share it. `handle` gives the
    candidate's model as this process sees it (a Ray worker may resolve it again on its node)."""

    def __init__(self, handle: Callable[[Context, str], ModelHandle] = planned_handle):
        self.handle = handle
        self.ws: Workspace | None = None

    def run(self, unit: Unit, inputs: dict[str, Output], ctx: Context, cache: UnitCache,
            progress: Progress) -> Output:
        return run_unit(unit, inputs, ctx, self.workspace(unit, ctx), cache, progress)

    def workspace(self, unit: Unit, ctx: Context) -> Workspace:
        """The workspace for `unit`: the one held when it serves the unit's group, else a new one (the old one
        released first, so that two models are never held at once)."""
        if self.ws is None or not self.ws.serves(unit):
            self.release()
            self.ws = Workspace.setup(unit, ctx.benchmark(unit.benchmark).spec, self.handle(ctx, unit.candidate))
        return self.ws.use(unit)

    def release(self) -> None:
        if self.ws is not None:
            self.ws.release()
            self.ws = None
            gc.collect()


def failure(unit: Unit, err: BaseException, where: str = "") -> Failure:
    """The reason a unit failed, in one line, naming the unit (and where it ran)."""
    if isinstance(err, SftbenchError):
        reason = str(err)
    else:  # a crash: its type, first line and the place it was raised
        last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
        place = f" ({last.filename.split('/')[-1]}:{last.lineno})" if last else ""
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{place}"
    return Failure(f"{reason} [unit {unit.id}{f' on {where}' if where else ''}]")


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
