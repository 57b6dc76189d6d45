"""The Ray executor: every unit of the plan is a Ray task (docs/distributed.md).

Ray does the scheduling: each task asks for its unit's resources (`executor.resources`: tune, score, probe),
its inputs are the ObjectRefs of the units it reads, so Ray starts it when they are done, and `max_retries` has
Ray rerun a unit whose worker process or node died. The driver only submits the plan in its order and collects
the outputs as they finish.

Where outputs go: with a unit store every node mounts (`executor.units`), workers read kept units and write new
ones there themselves, whole or not at all (harness/storage/units.py), and the driver reads the same store. Without one,
a unit's record, tensors and adapter files come back through Ray's object store, and the driver keeps them in
its own unit cache as each unit finishes. Either way a killed driver resumes from the kept units.

Units the driver can already answer are never submitted: a unit whose inputs are known and whose key is kept,
and `select` (a comparison of validation scores), computed here once its tune units are known. The units that
read `select` are submitted after it, with their keys known, so kept ones are reused on a resumed run. Model
weights resolve on the worker from the same alias, folder or hub id, checked against the weights hash the driver
planned with.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from harness import interrupts
from harness.config import ExecutorConfig, UnitResources
from harness.execution import Failure
from harness.execution.compute import Context, Output, Progress, keep, key_of, select
from harness.execution.plan import Plan, Unit
from harness.execution.runner import Runner, failure, usable
from harness.models.device import quiet_libraries, set_threads
from harness.storage.locks import FileLock
from harness.storage.units import UnitCache

log = logging.getLogger(__name__)
STEP_EVERY_S = 0.5  # a worker reports a loop's progress at most this often (and at its end)


class RayExecutor:
    def __init__(self, cfg: ExecutorConfig):
        self.cfg = cfg

    def execute(self, plan: Plan, ctx: Context, cache: UnitCache, progress: Progress) -> dict[str, Output | Failure]:
        with held(self.cfg.address):
            return _Driver(self.cfg, plan, ctx, cache, progress).run()


@contextlib.contextmanager
def held(address: str | None) -> Iterator[None]:
    """Ray connected for the block: started or joined here (and left at the end), or the one already initialised
    (adaptive seeds hold it over every round, so workers stay warm between rounds)."""
    import ray

    started = connect(address)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


# The local Ray this executor starts keeps idle worker processes for 10 minutes instead of Ray's 1 s: a unit's
# worker pays 10-20 s of imports (torch, transformers) on its first task, and with Ray's default a worker left idle
# while the driver selects a setting was killed and a cold one started for the next unit (measured: most units ran
# in a new process; docs/distributed.md). A cluster sets the same with `ray start --system-config`.
LOCAL_SYSTEM_CONFIG = {"idle_worker_killing_time_threshold_ms": 600_000}


def connect(address: str | None) -> bool:
    """Join the cluster at `address` (`auto`, HOST:PORT), or with none start a local Ray for this run (under
    `ray job submit`, RAY_ADDRESS names the job's cluster: that one is joined). True when this run started or
    joined Ray and must disconnect at the end. A Ray already initialised in this process is used as it is."""
    import ray

    if ray.is_initialized():
        return False
    if address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(address="local", log_to_driver=False, include_dashboard=False, configure_logging=False,
                 _system_config=dict(LOCAL_SYSTEM_CONFIG))  # a copy: ray.init adds keys to the dict it is given
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return True


class _Relay:
    """The workers' progress on the driver's display: a queue actor on the driver's own node (a worker node that
    dies must not take it along). Progress is display only: if the queue is lost, the run goes on without live
    progress, and says so once."""

    def __init__(self, progress: Progress):
        import ray
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.events: Any = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self.progress = progress
        self.watching = ""  # the unit whose loop the progress bar shows

    def drain(self) -> None:
        """Forward the workers' progress events to the driver's display."""
        from ray.exceptions import RayError

        if self.events is None:
            return
        try:
            while not self.events.empty():
                for uid, node, candidate, what, done, total, info in \
                        self.events.get_nowait_batch(self.events.qsize()):
                    if what is not None:
                        self.watching = uid
                        self.progress.stage(candidate, f"{what} [{node}]")
                    elif uid == self.watching:
                        self.progress.step(done, total, info)
        except RayError as err:
            log.warning("live progress from the workers is lost (%s); the run goes on without it",
                        str(err).splitlines()[0])
            self.events = None


class _Claims:
    """Without a shared store the driver keeps what its workers compute, so it holds each such unit's lock from
    submit to keep (with one, the workers take it themselves). A claim never waits: a driver holds several locks
    at once, so a unit whose lock a concurrent run holds waits in the plan and is tried again."""

    def __init__(self, cache: UnitCache, shared: bool):
        self.cache, self.shared = cache, shared
        self.locks: dict[str, FileLock] = {}  # unit id -> its lock, held until the driver keeps the unit

    def claim(self, uid: str, key: str) -> bool:
        """False while a concurrent run sharing this unit store holds the unit's lock."""
        lock = None if self.shared else self.cache.lock(key)
        if lock is None:
            return True
        if not lock.acquire(wait=False):
            return False
        self.locks[uid] = lock
        return True

    def held(self, uid: str) -> bool:
        return uid in self.locks

    def release(self, uid: str) -> None:
        if uid in self.locks:
            self.locks.pop(uid).release()

    def release_all(self) -> None:
        for uid in list(self.locks):
            self.release(uid)


class _Driver:
    """Submits the plan in its order and collects the outputs: the units it can answer itself (kept, or `select`)
    are answered here, the others run as Ray tasks once their inputs are known or submitted."""

    def __init__(self, cfg: ExecutorConfig, plan: Plan, ctx: Context, cache: UnitCache, progress: Progress):
        import ray

        self.cfg, self.plan, self.ctx, self.cache = cfg, plan, ctx, cache
        self.shared = cfg.units is not None
        self.known: dict[str, Output | Failure] = {}
        self.refs: dict[str, Any] = {}
        self.relay = _Relay(progress)
        self.claims = _Claims(cache, self.shared)
        self.ctx_ref = ray.put(ctx)
        self.remote = ray.remote(_task)
        self.waiting: list[Unit] = []  # units not submitted yet (advance)
        self.units = plan.by_id()
        self.deferred = 0  # units ready to go, held back while a concurrent run computes them (their lock)

    def run(self) -> dict[str, Output | Failure]:
        self.waiting = list(self.plan.units)
        try:
            self.advance()
            self.collect()
        finally:
            self.claims.release_all()
        return {u.id: self.known[u.id] for u in self.plan.units}

    def advance(self) -> None:
        """Submit, in the plan's order, every waiting unit that can go: its inputs known or submitted. `select`
        waits until its tune units are known (the driver compares their scores), and so do the units reading it,
        so that their keys are known and kept ones are reused rather than recomputed."""
        still = []
        for unit in self.waiting:
            if unit.kind == "select":
                ready = all(i in self.known for i in unit.inputs)
            elif unit.inputs and self.units[unit.inputs[0]].kind == "select":
                ready = unit.inputs[0] in self.known  # and so are its tune units
            else:
                ready = all(i in self.known or i in self.refs for i in unit.inputs)
            if not (ready and self.submit(unit)):
                still.append(unit)
                self.deferred += ready
        self.waiting = still

    def submit(self, unit: Unit) -> bool:
        """Submit the unit, or answer it here; False while a concurrent run holds its lock (try again later)."""
        answer = self.answer(unit)
        if answer is False:
            return False
        if answer is not None:
            self.known[unit.id] = answer
            return True
        log.debug("unit %s: submitted to Ray", unit.id)
        args = [self.refs[i] if i not in self.known else self._send(self.known[i]) for i in unit.inputs]
        self.refs[unit.id] = self.remote.options(name=unit.id, max_retries=self.cfg.max_retries,
                                                 **options(unit, self.cfg)).remote(
            unit, self.ctx_ref, self.cfg.units, self.cache.force, self.relay.events, *args)
        return True

    def answer(self, unit: Unit) -> Output | Failure | Literal[False] | None:
        """The unit's output when the driver knows it without a worker (an input failed, `select`, a kept unit);
        None when it must run; False when a concurrent run holds its lock."""
        inputs = [self.known.get(i) for i in unit.inputs]
        if any(isinstance(i, Failure) for i in inputs):
            return Failure(f"not run: an input of {unit.id} failed")
        if not all(isinstance(i, Output) for i in inputs):  # an input is still running
            return None
        ready = {i: o for i, o in zip(unit.inputs, inputs) if isinstance(o, Output)}
        if unit.kind == "select":
            return Output(select(unit, ready, self.ctx))
        key = key_of(unit, ready, self.ctx)
        record = usable(unit, self.cache.get(key) if key else None)
        if record is None and key is not None:
            if not self.claims.claim(unit.id, key):
                return False
            record = usable(unit, self.cache.get(key)) if self.claims.held(unit.id) else None  # kept meanwhile
            if record is not None:
                self.claims.release(unit.id)
        if record is None:
            return None
        log.debug("unit %s: kept (%s)", unit.id, key)
        return Output(record, key=key, reused=True)

    def _send(self, out: Output | Failure) -> Output | Failure:
        """A kept tune unit travels with its tensors when the workers cannot read the driver's unit store."""
        if isinstance(out, Output) and out.key and out.key.startswith("tune-") and out.tensors is None \
                and not self.shared and self.cache.root is not None:
            return Output(out.record, self.cache.tensors(out.key), key=out.key, reused=True)
        return out

    def collect(self) -> None:
        import ray

        collected: set[str] = set()
        while True:
            pending = {ref: uid for uid, ref in self.refs.items() if uid not in collected}
            if not pending and not self.deferred:
                break
            if not pending:  # only units another run is computing: look again shortly
                time.sleep(0.2)
            done = ray.wait(list(pending), num_returns=1, timeout=0.2)[0] if pending else []
            interrupts.check()
            self.relay.drain()
            for ref in done:
                uid = pending[ref]
                collected.add(uid)
                self.known[uid] = self.finished(uid, ref)
                self.claims.release(uid)
            if (done or self.deferred) and self.waiting:
                self.deferred = 0
                self.advance()
        self.relay.drain()

    def finished(self, uid: str, ref: Any) -> Output | Failure:
        import ray

        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as err:  # the worker or its node died more often than max_retries allows
            return Failure(f"{type(err).__name__}: {str(err).splitlines()[0]} [unit {uid}]")
        log.info("unit %s: %s on a worker (key %s)", uid, "failed" if isinstance(out, Failure) else
                 "reused" if out.reused else "finished", getattr(out, "key", None))
        if isinstance(out, Output) and not out.reused and out.key:
            if self.shared:
                self.cache.computed += 1  # the worker kept it in the shared store
            else:
                keep(self.cache, out.key, out)
        elif isinstance(out, Output) and out.reused:
            self.cache.hits += 1  # read by the worker from the shared store
        return out


def options(unit: Unit, cfg: ExecutorConfig) -> dict[str, Any]:
    """The Ray task options of a unit: its kind's resources from the config (Ray's defaults where unset; a unit
    planned on CUDA asks for one GPU unless told how many, so that Ray gives it one)."""
    wanted: UnitResources = getattr(cfg.resources, unit.resources)
    out: dict[str, Any] = {}
    if wanted.num_cpus is not None:
        out["num_cpus"] = wanted.num_cpus
    if wanted.num_gpus is not None:
        out["num_gpus"] = wanted.num_gpus
    elif unit.placement.kind == "cuda":
        out["num_gpus"] = 1
    return out


class _Events:
    """A worker's progress, sent to the driver: every stage, and each loop's count at most every STEP_EVERY_S."""

    def __init__(self, queue: Any, unit: Unit, node: str):
        self.queue, self.unit, self.node, self.last = queue, unit, node, 0.0

    def stage(self, candidate: str, what: str) -> None:
        self._send((self.unit.id, self.node, candidate, what, 0, 0, None))

    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= STEP_EVERY_S:  # info is cumulative: skipped steps lose nothing
            self.last = now
            self._send((self.unit.id, self.node, self.unit.candidate, None, done, total, info))

    def _send(self, event: tuple[Any, ...]) -> None:
        """Progress is display only: a lost queue (the driver's node gone, or the driver) never fails a unit."""
        from ray.exceptions import RayError

        if self.queue is None:
            return
        try:
            self.queue.put_nowait(event)
        except RayError:
            self.queue = None


def _task(unit: Unit, ctx: Context, units: str | None, force: bool, events: Any, *inputs: Any) -> Output | Failure:
    """One unit on a Ray worker. An error in the unit comes back as a Failure naming the unit and the node (Ray
    retries only lost workers and nodes, not a unit that raised)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = f"node {ray.util.get_node_ip_address()} {node_id[:6]}"  # a simulated cluster's nodes share one IP
    if any(isinstance(i, Failure) for i in inputs):
        return Failure(f"not run: an input of {unit.id} failed")
    quiet_libraries()
    set_threads()
    cache = UnitCache(Path(units), force=force) if units else UnitCache(None)
    try:
        return RUNNER.run(unit, dict(zip(unit.inputs, inputs)), ctx, cache, _Events(events, unit, node))
    except Exception as err:
        RUNNER.release()
        return failure(unit, err, where=f"{node} (pid {os.getpid()})")


def worker_handle(ctx: Context, candidate: str) -> Any:
    """The candidate's model on this node: the driver's folder when this node sees it, else resolved here from
    the same alias, folder or hub id, and checked against the weights the driver planned with."""
    from harness.errors import RunFailure
    from harness.models.loading import resolve

    planned = ctx.handles[candidate]
    if planned.source != "hub" and Path(planned.path).exists():
        return planned
    cand = ctx.candidate(candidate)
    here = resolve(cand.model, cand.revision, cand.trust_remote_code, cand.allow_pickle, adapter=cand.adapter)
    if here.weights_hash != planned.weights_hash:
        raise RunFailure(f"{candidate}: the weights on this node ({here.weights_hash[:12]}) differ from the "
                         f"driver's ({planned.weights_hash[:12]}); give every node the same model")
    return here


# A worker process keeps its last model: the next unit of the same group reuses it (held while the worker idles,
# on the unit's device: a GPU task's model stays on the GPU Ray gave it).
RUNNER = Runner(handle=worker_handle)
