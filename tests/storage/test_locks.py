"""File locks on units and on the run store (harness/storage/locks.py), with real concurrent processes: two runs
sharing a unit store compute a unit once and both get its result; concurrent store writes all land; a killed
holder's lock is released by the OS."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.storage.locks import FileLock
from harness.storage.store import Store
from harness.storage.units import UnitCache, lock_path
from tests.conftest import ROOT

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters, as two `sftbench run` commands would be


def _memo(root: str, log: str, barrier: Any, results: Any) -> None:
    def compute() -> dict[str, Any]:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough that the other process asks for the unit while this one computes it
        return {"pid": os.getpid()}

    barrier.wait()
    results.put(UnitCache(Path(root)).memo("score-abc", compute))


def test_two_processes_compute_a_shared_unit_once_and_both_get_it(tmp_path):
    log, barrier, results = tmp_path / "computed.txt", SPAWN.Barrier(2), SPAWN.Queue()
    procs = [SPAWN.Process(target=_memo, args=(str(tmp_path / "units"), str(log), barrier, results)) for _ in "ab"]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(log.read_text().split()) == 1  # computed exactly once
    assert got[0] == got[1] == json.loads((tmp_path / "units" / "score-abc" / "unit.json").read_text())


def _save(path: str, who: str, barrier: Any, n: int) -> None:
    barrier.wait()
    with Store(path) as store:
        for i in range(n):
            store.save({"run_id": f"{who}-{i}", "name": "t", "created": f"2026-12-01T00:00:0{i}", "passed": True,
                        "candidates": []})


def test_concurrent_store_writes_all_land(tmp_path):
    path, barrier = tmp_path / "runs.sqlite", SPAWN.Barrier(2)
    procs = [SPAWN.Process(target=_save, args=(str(path), who, barrier, 8)) for who in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with Store(path) as store:
        assert sorted(r["run_id"] for r in store.runs()) == sorted(f"{w}-{i}" for w in "ab" for i in range(8))


# `[12:00:01] tiny-llama: tuning on support_intents 1/1 (100%), loss 4.1234, 850 tokens/s, done in 0s`
TRAIN_LINE = r"\] tiny-llama: tuning on \S+ \d+/\d+ \(\d+%\), loss \d+\.\d{4}, \d+ tokens/s, (ETA|done in) "
UNIT_LINE = r"(?:DEBUG|INFO) harness\.execution\.runner: unit (.+?): (?:kept|started) .*(?:score|tune|probe)-\w{24}"
STAMPED = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO sftbench.progress: tiny-llama: resolving model$"
HOLD = "import sys, time; from pathlib import Path; from harness.storage.locks import FileLock; " \
       "lock = FileLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)"


def test_a_killed_holder_releases_its_lock(tmp_path):
    path = lock_path(tmp_path, "tune-abc")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.acquire(wait=False)  # held by the other process
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert lock.acquire(wait=False)  # released by the OS, no stale lock left to clean up
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_waiter_on_a_removed_lock_file_locks_the_new_one(tmp_path):
    """`sftbench gc` removes a unit's lock file while holding it. A run already waiting on that file must not
    wake up holding a lock nobody else sees: it locks the file now at that path, and waits for its holder."""
    path = tmp_path / "k"
    gc_lock = FileLock(path)
    assert gc_lock.acquire()
    waiter, acquired = FileLock(path), threading.Event()
    thread = threading.Thread(target=lambda: (waiter.acquire(), acquired.set()))
    thread.start()
    time.sleep(0.2)  # the waiter has opened the old file and waits on it
    path.unlink()
    newcomer = FileLock(path)
    assert newcomer.acquire(wait=False)  # a new file: free
    gc_lock.release()
    assert not acquired.wait(0.5)  # the waiter woke on the removed file, and now waits for the newcomer
    newcomer.release()
    assert acquired.wait(10)
    waiter.release()
    thread.join()


def test_two_bakeoffs_sharing_sftbench_compute_each_unit_once(tmp_path, tiny_llama):
    """Two `sftbench run` processes on one config and one `.sftbench/`: every unit is computed by one of them
    (the other waits for its lock, then reuses it), both report the same numbers, and both runs are stored. Their
    stderr is a pipe, not a terminal: progress comes as plain lines (reports/progress.py LineProgress)."""
    from tests.harness.test_cache import BUNDLED_INTENTS, SMALL, numbers  # here: the spawned processes above skip it

    cfg = tmp_path / "keys.yaml"
    cfg.write_text(SMALL.format(model=tiny_llama, bench=BUNDLED_INTENTS, seed=0, bf16="off"))
    env = os.environ | {"SFTBENCH_STORE": str(tmp_path / ".sftbench" / "runs.sqlite"), "OMP_WAIT_POLICY": "PASSIVE",
                        "HF_HUB_OFFLINE": "1"}
    flags = {"a": ["--verbose", "--log-file", str(tmp_path / "a.log")], "b": []}
    procs = [subprocess.Popen([sys.executable, "-c", "from harness.cli import entry; entry()", "run", str(cfg),
                               "--out", str(tmp_path / name), *flags[name]], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for name in "ab"]
    logs = []
    for p in procs:
        logs.append(p.communicate(timeout=300)[1])
        assert p.returncode in (0, 1), logs[-1]
    train = [line for line in "".join(logs).splitlines() if re.search(TRAIN_LINE, line)]
    # one run trained (the other reused its unit): one line for the loop of 1 step (8 rows, batch 8), its last
    assert len(train) == 1 and " 1/1 (100%), " in train[0] and "done in" in train[0], "".join(logs)[-3000:]
    a, b = (json.loads((tmp_path / name / "results.json").read_text()) for name in "ab")
    # --verbose shows run a's units on its terminal, with keys; --log-file keeps them, timestamped, with every
    # progress line and the results line
    assert re.search(r"unit .+: (started|kept)", logs[0]) and not re.search(r"unit .+: (started|kept)", logs[1])
    kept = (tmp_path / "a.log").read_text()
    assert len(set(re.findall(UNIT_LINE, kept))) == 5, kept  # each of the five units, computed or reused
    assert re.search(STAMPED, kept, re.M)
    assert f"INFO sftbench: results: {tmp_path / 'a' / 'results.json'}" in kept and "exit code" in kept
    assert a["units"]["computed"] + b["units"]["computed"] == 5  # the five units of SMALL, each computed once
    assert a["units"]["reused"] + b["units"]["reused"] == 5
    assert numbers(a) == numbers(b)
    with Store(tmp_path / ".sftbench" / "runs.sqlite") as store:
        assert {r["run_id"] for r in store.runs()} == {a["run_id"], b["run_id"]}
