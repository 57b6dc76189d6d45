"""Speed benchmark (not a test): a bake-off on the `ray` executor (a local Ray, `ray.init(num_cpus=2)`) against
the `local` executor, in one process, each arm from an empty unit cache of its own, so every unit is computed.
Needs the `ray` extra (`make install` has it). Run it in a loopback-only network namespace, as the Ray tests
(docs/distributed.md):

    sudo unshare -n bash -c 'ip link set lo up && RAY_USAGE_STATS_ENABLED=0 \\
        .venv/bin/python benchmarks/speed/distributed.py [CONFIG] [key=value ...] [--order lrrl] [--noop 200]'

CONFIG defaults to the bundled demo. Printed:
- each arm's wall time (harness.run.execute, the planning and the assembly included; the Ray arm with Ray already
  started as the executor starts it, `LOCAL_SYSTEM_CONFIG` included: `ray init` is printed on its own, a one-off
  cost per run of `sftbench run --executor ray`);
- the ratio ray / local (the issue's target: at most 1.10x), without and with Ray's start;
- the dispatch overhead per unit, two ways: (ray wall - local wall) / units computed, and the round trip of N
  no-op tasks submitted with a unit's options (num_cpus=1), one at a time (latency) and all at once (throughput);
- whether both arms give the same scores (every candidate's every split and metric).
`--order` interleaves the arms (l = local, r = ray; default `lr`) so drift on a shared machine hits both; with
more than one run of an arm its times are averaged.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from harness.config import ExecutorConfig, load_config  # noqa: E402
from harness.execution.ray_tasks import LOCAL_SYSTEM_CONFIG  # noqa: E402
from harness.run import execute  # noqa: E402
from harness.storage.units import UnitCache  # noqa: E402


def scores(bakeoff: Any) -> dict[str, Any]:
    """Every candidate's scores (split -> metric -> value), status and reason: what must not depend on the arm."""
    out = {}
    for cand in bakeoff.candidates:
        out[cand.name] = (cand.status, cand.reason, [(b.benchmark, b.status, {
            split: {m: (v.value, v.ci_low, v.ci_high) for m, v in metrics.items()}
            for split, metrics in b.scores.items()}) for b in cand.benchmarks])
    return out


def arm(cfg: Any, kind: str, root: Path) -> tuple[float, int, dict[str, Any]]:
    """One bake-off from an empty unit cache: wall seconds, units computed, scores."""
    cache = UnitCache(root / f"units-{kind}-{time.monotonic_ns()}")
    start = time.perf_counter()
    bakeoff = execute(dataclasses.replace(cfg, executor=ExecutorConfig(kind=kind)), cache=cache)
    return time.perf_counter() - start, cache.computed, scores(bakeoff)


def noop_overhead(n: int) -> tuple[float, float]:
    """Seconds per no-op task with a unit's options (num_cpus=1): one at a time, and n submitted at once."""
    import ray

    @ray.remote(num_cpus=1, max_retries=3)
    def noop(x: int) -> int:
        return x

    ray.get([noop.remote(i) for i in range(4)])  # workers started and warm
    start = time.perf_counter()
    for i in range(n):
        ray.get(noop.remote(i))
    serial = (time.perf_counter() - start) / n
    start = time.perf_counter()
    ray.get([noop.remote(i) for i in range(n)])
    return serial, (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default=None, help="bake-off YAML (default: the bundled demo)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, as for sftbench run")
    parser.add_argument("--order", default="lr", help="arms in order: l = local, r = ray (e.g. lrrl)")
    parser.add_argument("--noop", type=int, default=200, help="no-op tasks timed for the dispatch overhead")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()
    import ray

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config:  # an override, not a file: the bundled demo with overrides (as sftbench run)
        config, overrides = None, [config, *overrides]
    cfg = load_config(config, overrides)
    print(f"{cfg.name}: {len(cfg.candidates)} candidates ({', '.join(c.name for c in cfg.candidates)}); "
          f"{platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    start = time.perf_counter()
    # the local Ray as `sftbench run --executor ray` starts it (its system config included), with num_cpus
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             address="local", _system_config=dict(LOCAL_SYSTEM_CONFIG))  # a copy: ray.init adds to the dict
    init_s = time.perf_counter() - start
    print(f"  ray init: {init_s:.1f} s (ray {ray.__version__}, num_cpus={args.cpus}, {LOCAL_SYSTEM_CONFIG})",
          flush=True)
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    units: dict[str, int] = {}
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for letter in args.order:
            kind = {"l": "local", "r": "ray"}[letter]
            wall, computed, got = arm(cfg, kind, Path(tmp))
            walls[kind].append(wall)
            units[kind], results[kind] = computed, got
            print(f"  ran {kind}: {wall:.1f} s, {computed} units computed", flush=True)
    serial, batched = noop_overhead(args.noop)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} (other jobs on the machine slow both arms)")
    ray.shutdown()
    local, distributed = (sum(w) / len(w) for w in (walls["local"], walls["ray"]))
    print(f"local: {local:.1f} s; ray: {distributed:.1f} s (+ {init_s:.1f} s ray init)")
    print(f"ray / local: {distributed / local:.2f}x ({(distributed + init_s) / local:.2f}x with ray init); "
          "target <= 1.10x")
    print(f"dispatch overhead per unit: {(distributed - local) / units['ray']:.2f} s "
          f"((ray - local) / {units['ray']} units); no-op task round trip {serial * 1e3:.2f} ms one at a time, "
          f"{batched * 1e3:.2f} ms each with {args.noop} in flight")
    print(f"same scores on both executors: {'yes' if results['local'] == results['ray'] else 'NO'}")


if __name__ == "__main__":
    main()
