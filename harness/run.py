"""The bake-off pipeline: read the suites and resolve the models -> plan the units -> execute them (local or
Ray: harness/execution/) -> assemble each candidate's results -> compare -> gate -> recommend (harness/results/).
"""
from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from harness.config import BakeoffConfig
from harness.errors import SftbenchError
from harness.execution import Failure, executor_for
from harness.execution.assemble import Bakeoff, assemble, candidate_row, not_run
from harness.execution.compute import QUIET, Context, Output, Progress
from harness.execution.latency import measure
from harness.execution.plan import SCORED_SPLITS, Arms, Plan, plan
from harness.execution.suites import Suites, load_suites, resolve_all
from harness.models.device import Placement, resolve, set_threads
from harness.storage.units import UnitCache

if TYPE_CHECKING:
    from harness.results.model import CandidateRow, Results

__all__ = ["SCORED_SPLITS", "Bakeoff", "Suites", "execute", "load_suites", "run"]


def run(cfg: BakeoffConfig, progress: Progress = QUIET, cache: UnitCache | None = None,
        baselines: dict[str, Any] | None = None) -> Results:
    """The whole bake-off, finished: every candidate's results, tie groups, gate verdicts (against `baselines`,
    stored runs by baseline name) and the recommendation. Units already in `cache` are reused, new ones kept."""
    from harness.results.finish import finish

    cache = cache or UnitCache(None)
    if cfg.recipe.adaptive:
        from harness.results.rounds import run_rounds

        def one_round(round_cfg: BakeoffConfig, arms: Arms) -> Results:
            bakeoff = execute(round_cfg, progress, cache, arms)
            progress.stage(cfg.name, "comparing the candidates: tie groups, gates, recommendation")
            return finish(bakeoff, round_cfg, baselines).with_changes(
                units={"device_seconds": bakeoff.device_seconds, "devices": list(bakeoff.devices)})

        with _executor_session(cfg):
            results = run_rounds(cfg, one_round, lambda line: progress.stage(cfg.name, f"adaptive seeds: {line}"))
        return results.with_changes(units={**(results.units or {}), "reused": cache.hits, "computed": cache.computed,
                                           "root": str(cache.root) if cache.root else None})
    bakeoff = execute(cfg, progress, cache)
    progress.stage(cfg.name, "comparing the candidates: tie groups, gates, recommendation")
    return finish(bakeoff, cfg, baselines).with_changes(
        units={"reused": cache.hits, "computed": cache.computed, "root": str(cache.root) if cache.root else None})


def execute(cfg: BakeoffConfig, progress: Progress = QUIET, cache: UnitCache | None = None,
            arms: Arms | None = None) -> Bakeoff:
    """Every candidate through its units: each candidate's results, not yet compared or gated. `arms`: with adaptive
    seeds, the seeds and settings of each candidate so far (harness/results/rounds.py)."""
    from harness.data.validate import run_warnings
    from tuners import load_all

    try:  # everything that can reject the input runs before any model loads
        tuner = load_all().get(cfg.recipe.tuner)
        executor = executor_for(cfg.executor)  # an unknown executor.kind: before the data is read
        placements = placements_for(cfg)
        if tuner.check:
            tuner.check(placements["tune"])
        suites = load_suites(cfg)
        progress.stage(cfg.name, "linting the data (duplicates, leakage, labels, lengths)")
        warnings = [f.to_dict() for f in run_warnings(cfg, suites.loaded())]
        handles = resolve_all(cfg, progress)
    except SftbenchError as err:
        if err.path is None and cfg.source:  # an unknown name is an error in the config that named it
            err.path = cfg.source
        raise
    set_threads()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    cache = cache or UnitCache(None)
    ctx = Context(cfg, suites, handles)
    units = plan(cfg, suites, handles, placements, arms)
    outputs = executor.execute(units, ctx, cache, progress)
    latency = measure(units, outputs, ctx, cache, progress, cfg.executor.kind)  # alone, after every unit
    done = {i: o.record for i, o in outputs.items() if isinstance(o, Output)}
    return Bakeoff(run_id, candidates(units, outputs, ctx, cache, latency),
                   {b.name: b.spec.main_metric for b in suites.benchmarks.values()}, warnings,
                   {b.name: b.references() for b in suites.benchmarks.values()},
                   {i: float(r["device_seconds"]) for i, r in done.items() if r.get("device_seconds") is not None},
                   tuple(sorted({r["device"] for r in done.values() if r.get("device")})))


def _executor_session(cfg: BakeoffConfig) -> Any:
    """Ray held over every round of an adaptive run (its workers stay warm); nothing for the local executor."""
    import contextlib

    if cfg.executor.kind != "ray":
        return contextlib.nullcontext()
    from harness.execution.ray_tasks import held

    return held(cfg.executor.address)


def placements_for(cfg: BakeoffConfig) -> dict[str, Placement]:
    """Where each kind of unit runs (tune, score, probe: the `executor.resources` entries): `recipe.device` as this
    machine resolves it; under the Ray executor, `auto` is CUDA for a unit kind that asks for GPUs."""
    ray = cfg.executor.kind == "ray"
    return {kind: resolve(cfg.recipe.device, cfg.recipe.bf16,
                          gpu_planned=ray and bool(getattr(cfg.executor.resources, kind).num_gpus))
            for kind in ("tune", "score", "probe")}


def candidates(units: Plan, outputs: dict[str, Output | Failure], ctx: Context, cache: UnitCache,
               latency: dict[tuple[str, str], tuple[float | None, dict[str, Any]]] | None = None
               ) -> list[CandidateRow]:
    """Each candidate's row from its units' outputs: a benchmark with a failed unit is failed (the first failure's
    message names the unit), the others are assembled, each with its latency measured under fixed conditions
    (harness/execution/latency.py; None where it was not measured)."""
    out = []
    done = {i: o for i, o in outputs.items() if isinstance(o, Output)}
    for cand in ctx.cfg.candidates:
        rows = []
        for bp in (b for b in units.benches if b.candidate == cand.name):
            spec = ctx.benchmark(bp.benchmark).spec
            mine = [u.id for u in units.units if (u.candidate, u.benchmark) == (cand.name, bp.benchmark)]
            failures = [f for f in (outputs[i] for i in mine) if isinstance(f, Failure)]
            if bp.na:
                rows.append(not_run(spec, "n/a", bp.na))
            elif failures:
                first = next((f for f in failures if not f.message.startswith("not run")), failures[0])
                rows.append(not_run(spec, "failed", first.message))
            else:
                ms, conditions = (latency or {}).get((cand.name, bp.benchmark), (None, None))
                rows.append(assemble(bp, done, ctx, cache.folder, ms, conditions))
        records = [o.record for u in units.units if u.candidate == cand.name
                   for o in [outputs[u.id]] if isinstance(o, Output)]
        out.append(candidate_row(cand, ctx.handles[cand.name], rows, records))
    return out
