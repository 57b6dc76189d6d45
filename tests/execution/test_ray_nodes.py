"""The `ray` executor when machines die: a worker node removed while it runs a tune unit (a simulated two-node
`ray.cluster_utils.Cluster`, a replacement node added), and the driver killed with SIGKILL mid-run. Both bake-offs
finish with the results of an undisturbed run: Ray reruns the lost tasks (`executor.max_retries`), and the unit
store is the source of truth a second driver resumes from.

Each driver is `sftbench run` in a subprocess with its own process group, as a user runs it; the test process
only owns the cluster (its own, not the session Ray: `own_cluster` shuts that down first) and watches the unit
store and the worker processes' titles (Ray names a busy worker process `ray::<task name>`)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from tests.execution.conftest import require_loopback_only, require_ray, require_ray_executor
from tests.execution.support import Descendants, assert_same_results, kill_all, read_results

pytestmark = pytest.mark.integration

# Long enough tune units (a few seconds each on the tiny models) that a node can be removed while one runs.
CONFIG = """
name: tiny-nodes
candidates:
  - {{model: "{llama}", name: tiny-llama}}
  - {{model: "{bert}", name: tiny-bert, learning_rate: 5e-3}}
recipe: {{epochs: 4, batch_size: 8, max_length: 96, learning_rate: 1e-3, bf16: "off"}}
benchmarks:
  - {{spec: support_intents, max_train: 200, max_validation: 16, max_test: 24}}
probes:
  - {{spec: general_knowledge, max_items: 12}}
  - {{spec: paraphrase_probe, max_items: 12}}
bootstrap_resamples: 200
gates:
  - {{metric: support_intents.accuracy, op: ">=", value: 0.0}}
executor:
  kind: ray
  address: {address}
  units: "{units}"
  resources: {{tune: {{num_cpus: 1}}, score: {{num_cpus: 1}}, probe: {{num_cpus: 1}}}}
  max_retries: 3
"""
DEADLINE_S = 600


def sftbench() -> str:
    return shutil.which("sftbench") or str(Path(sys.executable).parent / "sftbench")


def write_config(tmp_path: Path, llama: Path, bert: Path, address: str | None, units: Path) -> Path:
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(CONFIG.format(llama=llama, bert=bert, address=f'"{address}"' if address else "null", units=units))
    return cfg


def start_driver(cfg: Path, out: Path, log: Path) -> subprocess.Popen:
    """`sftbench run CFG --executor ray` in its own process group (its output to `log`)."""
    with log.open("w") as sink:
        return subprocess.Popen([sftbench(), "run", str(cfg), "--executor", "ray", "--out", str(out)],
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "COLUMNS": "200"})


def kept(units: Path, prefix: str = "") -> list[str]:
    """Units kept whole in the store (a unit is written in a `.tmp-<key>-<hex>` folder, unit.json included, and
    renamed into place when complete: harness/storage/units.py), so a folder still under its temporary name is not
    kept: a driver killed before the rename leaves one, and the resumed run rightly computes that unit again."""
    if not units.exists():
        return []
    return sorted(p.name for p in units.iterdir()
                  if not p.name.startswith(".tmp-") and p.name.startswith(prefix) and (p / "unit.json").exists())


def busy_tasks(root_pid: int) -> list[str]:
    """Titles of the Ray worker processes below `root_pid` that run a task (`ray::<name>`; idle: `ray::IDLE`)."""
    titles = []
    for pid in Descendants(root_pid).pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and title not in ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent"):
            titles.append(title)
    return titles


def wait(proc: subprocess.Popen, log: Path, timeout: float = DEADLINE_S) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the driver did not finish in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def undisturbed(tiny_llama, tiny_bert, tmp_path_factory) -> dict:
    """The same bake-off on the local executor, its own unit cache: computed once for both tests (their configs
    differ only in the executor section, which the local run overrides)."""
    folder = tmp_path_factory.mktemp("undisturbed")
    cfg = write_config(folder, tiny_llama, tiny_bert, None, folder / "store")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("SFTBENCH_UNITS", str(folder / "units-undisturbed"))
        main(["run", str(cfg), "executor.kind=local", "executor.address=null", "executor.units=null",
              "--out", str(folder / "undisturbed"), "--quiet"])
    return read_results(folder / "undisturbed")


def elsewhere(results: dict) -> dict:
    """results.json without the path of its config file: each test writes its own config (they differ in the
    executor section only), the undisturbed run another."""
    return {**results, "config": {**results["config"], "source": None}}


def test_a_node_removed_while_it_tunes(own_cluster, tiny_llama, tiny_bert, undisturbed, tmp_path):
    own_cluster.add_node(num_cpus=0)  # the head: the driver connects here; no task can run on it
    worker = own_cluster.add_node(num_cpus=2)
    units = tmp_path / "store"
    cfg = write_config(tmp_path, tiny_llama, tiny_bert, own_cluster.address, units)
    log = tmp_path / "driver.log"
    proc = start_driver(cfg, tmp_path / "out", log)
    raylet = worker.all_processes["raylet"][0].process.pid
    deadline, seen = time.monotonic() + DEADLINE_S / 2, []
    while time.monotonic() < deadline and proc.poll() is None:
        # a tune task in a worker process of that node, and the driver told (by the worker's progress event) that
        # a unit is training: the node goes while a fine-tune runs, not while a worker starts
        seen = [t for t in busy_tasks(raylet) if "/tune " in t]
        if seen and "tuning on support_intents" in log.read_text():
            break
        time.sleep(0.05)
    assert seen, f"no tune unit was seen running on the worker node:\n{log.read_text()[-3000:]}"
    tunes_kept = kept(units, "tune-")
    own_cluster.remove_node(worker, allow_graceful=False)  # every process of the node, the running unit's included
    own_cluster.add_node(num_cpus=2)
    code = wait(proc, log)
    assert (tmp_path / "out" / "results.json").exists(), f"exit {code}, no results:\n{log.read_text()[-4000:]}"
    results = read_results(tmp_path / "out")
    assert len(kept(units, "tune-")) > len(tunes_kept), "the tune units lost with the node were run again"
    assert code in (0, 1), log.read_text()[-3000:]
    assert [c["status"] for c in results["candidates"]] == ["ok", "ok"], log.read_text()[-3000:]
    assert_same_results(elsewhere(results), elsewhere(undisturbed))


def test_the_driver_killed_resumes_from_the_unit_store(tiny_llama, tiny_bert, undisturbed, tmp_path):
    require_loopback_only()
    require_ray()
    require_ray_executor()
    units = tmp_path / "store"
    cfg = write_config(tmp_path, tiny_llama, tiny_bert, None, units)  # no address: the driver starts its own Ray
    log = tmp_path / "killed.log"
    proc = start_driver(cfg, tmp_path / "killed", log)
    deadline = time.monotonic() + DEADLINE_S / 2
    while time.monotonic() < deadline and proc.poll() is None and not kept(units):
        time.sleep(0.05)
    assert proc.poll() is None, f"the driver ended before a unit was kept:\n{log.read_text()[-3000:]}"
    assert kept(units), f"no unit was kept in {DEADLINE_S / 2:.0f} s:\n{log.read_text()[-3000:]}"
    left = kill_driver(proc)
    assert not left, f"processes of the killed driver still alive: {sorted(left)}"
    before = kept(units)
    assert not (tmp_path / "killed" / "results.json").exists()

    log = tmp_path / "resumed.log"
    proc = start_driver(cfg, tmp_path / "resumed", log)
    code = wait(proc, log)
    assert (tmp_path / "resumed" / "results.json").exists(), f"exit {code}, no results:\n{log.read_text()[-4000:]}"
    resumed = read_results(tmp_path / "resumed")
    assert code in (0, 1), log.read_text()[-3000:]
    assert resumed["units"]["reused"] >= len(before) > 0
    assert_same_results(elsewhere(resumed), elsewhere(undisturbed))


def kill_driver(proc: subprocess.Popen) -> set[int]:
    """SIGKILL the driver, its process group and every process it started (the local Ray's GCS, raylet, workers,
    reaper), each by its id: the driver's tree is frozen with SIGSTOP first, so no new process escapes the count.
    The pids still alive after 20 s."""
    tree = Descendants(proc.pid)
    frozen: set[int] = set()
    for _ in range(5):  # until no new process appears below the frozen ones
        found = tree.pids() | {p for pid in frozen for p in Descendants(pid).pids()}
        for pid in found - frozen:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        if found <= frozen:
            break
        frozen |= found
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its process group: what the test is about
    proc.wait(timeout=30)
    return kill_all(frozen)
