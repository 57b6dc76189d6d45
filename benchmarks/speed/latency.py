"""Speed benchmark (not a test): latency per item on the `local` and the `ray` executor, in one process, each arm
from an empty unit cache of its own (issue 26, point 4). Run it in a loopback-only network namespace, as the Ray
tests (docs/distributed.md):

    sudo unshare -n bash -c 'ip link set lo up && RAY_USAGE_STATS_ENABLED=0 \\
        .venv/bin/python benchmarks/speed/latency.py [CONFIG] [key=value ...] [--order lrrl] [--cpus 2]'

CONFIG defaults to the bundled demo (SmolLM2-135M and MiniLM-L6); the numbers in docs/distributed.md used it capped
with the overrides of tests/execution/test_ray_executor.py's real-model test. Printed per candidate and arm:
- `scoring units`: what the test split's score unit timed while it scored (the figure results.json reported before
  issue 26: on Ray the units run beside each other on the same cores);
- `latency_ms_per_item`: what results.json reports now, measured by harness/execution/latency.py alone after
  every unit, with its conditions;
- the ratio ray / local of each (the issue's target for the reported figure: within 1.5x).
`--order` interleaves the arms (l = local, r = ray) so drift on a shared machine hits both; with more than one run
of an arm its figures are averaged.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import harness.run  # noqa: E402
from harness.config import ExecutorConfig, load_config  # noqa: E402
from harness.execution.compute import Output  # noqa: E402
from harness.execution.ray_tasks import LOCAL_SYSTEM_CONFIG  # noqa: E402
from harness.storage.units import UnitCache  # noqa: E402

SCORING: dict[tuple[str, str], float] = {}  # (candidate, benchmark) -> the test score unit's own timing
_measure = harness.run.measure


def _capture(plan: Any, outputs: Any, *args: Any) -> Any:
    """harness.run.measure, noting first what each test score unit timed while the executor ran it."""
    for bp in plan.benches:
        test = dict(bp.scores[0]).get("test") if bp.scores else None
        if test and isinstance(outputs.get(test), Output):
            SCORING[(bp.candidate, bp.benchmark)] = outputs[test].record["latency_ms"]
    return _measure(plan, outputs, *args)


harness.run.measure = _capture  # type: ignore[assignment]


def arm(cfg: Any, kind: str, root: Path) -> dict[str, tuple[float, float, dict[str, Any]]]:
    """One bake-off from an empty unit cache: candidate -> (scoring units' ms/item, reported ms/item, conditions)."""
    SCORING.clear()
    bakeoff = harness.run.execute(dataclasses.replace(cfg, executor=ExecutorConfig(kind=kind)),
                                  cache=UnitCache(root / f"units-{kind}-{time.monotonic_ns()}"))
    out = {}
    for cand in bakeoff.candidates:
        b = next(b for b in cand.benchmarks if b.latency_ms is not None)
        out[cand.name] = (SCORING[(cand.name, b.benchmark)], b.latency_ms, b.latency_conditions or {})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("args", nargs="*", help="[CONFIG] key=value ...: a bake-off YAML (default: the bundled demo) "
                                                "and overrides, as for sftbench run")
    parser.add_argument("--order", default="lr", help="arms in order: l = local, r = ray (e.g. lrrl)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    opts = parser.parse_args()
    import ray

    files = [a for a in opts.args if "=" not in a]
    cfg = load_config(files[0] if files else None, [a for a in opts.args if "=" in a])
    print(f"{cfg.name}: {', '.join(c.name for c in cfg.candidates)}; {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}", flush=True)
    ray.init(address="local", num_cpus=opts.cpus, _system_config=dict(LOCAL_SYSTEM_CONFIG), log_to_driver=False,
             include_dashboard=False, configure_logging=False)
    runs: dict[str, list[dict[str, tuple[float, float, dict[str, Any]]]]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for letter in opts.order:
            kind = {"l": "local", "r": "ray"}[letter]
            runs[kind].append(arm(cfg, kind, Path(tmp)))
            print(f"  ran {kind}: " + "; ".join(f"{name} scoring units {old:.1f}, reported {new:.1f} ms/item"
                                               for name, (old, new, _) in runs[kind][-1].items()), flush=True)
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")
    ray.shutdown()

    def mean(kind: str, name: str, i: int) -> float:
        return sum(r[name][i] for r in runs[kind]) / len(runs[kind])

    for name in runs["local"][0]:
        old = mean("ray", name, 0) / mean("local", name, 0)
        new = mean("ray", name, 1) / mean("local", name, 1)
        same = all(r[name][2] == runs["local"][0][name][2] for kind in runs for r in runs[kind])
        print(f"{name}: scoring units local {mean('local', name, 0):.1f}, ray {mean('ray', name, 0):.1f} ms/item "
              f"(ray/local {old:.2f}x); reported local {mean('local', name, 1):.1f}, ray {mean('ray', name, 1):.1f} "
              f"ms/item (ray/local {new:.2f}x, target <= 1.5x); same conditions on both: {'yes' if same else 'NO'}")
    print(f"conditions: {runs['local'][0][next(iter(runs['local'][0]))][2]}")


if __name__ == "__main__":
    main()
