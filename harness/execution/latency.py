"""Latency per item under fixed, recorded conditions, whatever the executor.

Scoring units time their own predictions, but on Ray they run beside each other on the same cores, so that time
was 1.8x to 9.6x the local executor's for the same bake-off (issue 26). `latency_ms_per_item` is a gate and a
selection criterion, so it is measured here instead: after the executor has finished every unit, in the driver,
one candidate and benchmark at a time (nothing else of the run is running), with torch on every CPU this process
may use, on the device the plan scored on, over the first LATENCY_ITEMS test items in one call to the scorer (which
batches them as scoring does), timed on the second of two identical calls: the first, untimed, warms up what a first
call pays once (lazy initialisation, the allocator, kernel selection for those batch shapes). The model is the one the
test split was scored with (the first seed's selected setting; the base for a zero-shot row; base plus adapter for an
adapter).

The conditions are recorded beside the figure (results.json `latency_conditions`); `sftbench compare` and the
baseline gates refuse to compare latencies measured under different conditions. Each measurement is kept in the unit
store under a key of the test score unit's key and the conditions, so a re-run on the same machine reuses it and
loads nothing; another machine, thread count or device measures again.
"""
from __future__ import annotations

import os
import time
from typing import Any

from harness.execution import Failure
from harness.execution.compute import Context, Output, Progress, _model
from harness.execution.plan import Plan, Unit
from harness.execution.workspace import Workspace
from harness.models.hardware import describe
from harness.storage.units import UnitCache, unit_key

LATENCY_ITEMS = 32  # test items timed (fewer when the split has fewer), after one untimed pass over them


def conditions(unit: Unit, items: int, executor: str) -> dict[str, Any]:
    """What the figure depends on, measured here: items per call, threads, device and precision, whether anything
    else of the run shared the node (never: the executor has finished), and the hardware."""
    hw = describe(executor)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"items": items, "warmup": "one untimed pass over the same items", "batch": "all items in one scorer call",
            "threads": cores, "device": unit.placement.device, "precision": unit.placement.precision,
            "shared": False, "cpu": hw["cpu"], "gpu": hw["gpu"] if unit.placement.kind == "cuda" else None}


def measure(plan: Plan, outputs: dict[str, Output | Failure], ctx: Context, cache: UnitCache,
            progress: Progress, executor: str) -> dict[tuple[str, str], tuple[float | None, dict[str, Any]]]:
    """(candidate, benchmark) -> (ms per item or None, conditions or the reason it was not measured)."""
    by_id, out = plan.by_id(), {}
    store = UnitCache(cache.root, force=cache.force)  # its own counts: the run's unit counts stay the plan's
    for bp in plan.benches:
        test = dict(bp.scores[0]).get("test") if bp.scores else None
        scored = outputs.get(test) if test else None
        if test is None or not isinstance(scored, Output):
            continue
        unit = by_id[test]
        spec, splits = ctx.benchmark(bp.benchmark).spec, ctx.benchmark(bp.benchmark).splits
        examples = splits["test"].examples[:LATENCY_ITEMS]
        cond = conditions(unit, len(examples), executor)
        key = unit_key("latency", score=scored.key, conditions=cond) if scored.key else None
        kept = store.get(key) if key else None
        if kept is None:
            progress.stage(bp.candidate, f"measuring latency on {len(examples)} {spec.name} test items, alone, "
                                         f"{cond['threads']} threads, {cond['device']} (an untimed pass, then the "
                                         "timed one)")
            try:
                kept = {"latency_ms": _time(unit, examples, ctx, cache, outputs, progress), "conditions": cond}
            except Exception as err:  # a measurement that cannot run here costs the figure, never the run
                kept = {"latency_ms": None, "conditions": {"not_measured": f"{type(err).__name__}: {err}"}}
            if key and kept["latency_ms"] is not None:
                store.put(key, kept)
        out[(bp.candidate, bp.benchmark)] = (kept["latency_ms"], kept["conditions"])
    return out


def _time(unit: Unit, examples: list[Any], ctx: Context, cache: UnitCache, outputs: dict[str, Output | Failure],
          progress: Progress) -> float:
    """Mean milliseconds per item of the timed pass; both passes report their progress (no silent stretch: a
    135M-parameter model takes seconds per item on a busy CPU)."""
    import torch

    from harness.scoring.tasks import predict

    spec = ctx.benchmark(unit.benchmark).spec
    ws = Workspace.setup(unit, spec, ctx.handles[unit.candidate])
    inputs = {i: o for i in unit.inputs for o in [outputs[i]] if isinstance(o, Output)}
    threads = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    _set_threads(cores, threads)
    try:
        with ws.placement.autocast():
            model = _model(unit, inputs, ws, cache)()
            length = unit.recipe.max_length
            predict(spec, examples, model, ws.tokenizer, ws.handle.kind, length, on_step=progress.step)
            _sync(ws.placement.kind)
            started = time.perf_counter()
            predict(spec, examples, model, ws.tokenizer, ws.handle.kind, length, on_step=progress.step)
            _sync(ws.placement.kind)
            return 1000 * (time.perf_counter() - started) / max(len(examples), 1)
    finally:
        _set_threads(threads, torch.get_num_threads())
        ws.release()


def _set_threads(wanted: int, current: int) -> None:
    """Only when it changes: torch.set_num_threads resets OpenMP and MKL and recreates its pthreadpool even for the
    same count. A Ray driver's latency stage once aborted in glibc (tpp.c __pthread_tpp_change_priority, the CI run
    of 7 Dec 2026, tests/execution/test_ray_nodes.py) right there; the cause is not proven, but the count is usually
    already the machine's, so the reset was never needed."""
    import torch

    if wanted != current:
        torch.set_num_threads(wanted)


def _sync(kind: str) -> None:
    import torch

    if kind == "cuda":
        torch.cuda.synchronize()
