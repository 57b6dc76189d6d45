"""`sftbench gc` on a real unit store and run store: the plan by default, removal with --yes, the promoted
baseline's units kept, --older-than by last use, units in use and killed runs' leftovers."""
from __future__ import annotations

import os
import time
from pathlib import Path

from harness.cli import main
from harness.storage.locks import FileLock
from harness.storage.prune import parse_age
from harness.storage.store import Store
from harness.storage.units import UnitCache, lock_path

DAY = 86400


def _unit(cache: UnitCache, key: str, size: int = 1000) -> Path:
    cache.put(key, {"x": 1}, lambda folder: (folder / "trainable.safetensors").write_bytes(b"\0" * size))
    assert cache.root is not None
    return cache.root / key


def _results(run_id: str, unit: Path) -> dict:
    bench = {"benchmark": "b", "scores": {}, "probes": [], "unit": str(unit)}
    return {"run_id": run_id, "name": "demo", "created": "2026-12-01T00:00:00", "passed": True,
            "recommendation": "m", "candidates": [{"name": "m", "status": "ok", "benchmarks": [bench]}]}


def _setup(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """A store with two runs, the first promoted; units: each run's tuned setting, and a score unit."""
    store_path = tmp_path / ".sftbench" / "runs.sqlite"
    cache = UnitCache(store_path.parent / "units")
    units = {k: _unit(cache, k) for k in ("tune-promoted", "tune-other", "score-any")}
    with Store(store_path) as store:
        store.save(_results("r1", units["tune-promoted"]))
        store.save(_results("r2", units["tune-other"]))
        store.promote("r1")
    return store_path, store_path.parent / "units", units


def test_gc_prints_the_plan_and_removes_only_with_yes_keeping_the_baseline(tmp_path, capsys):
    store, root, units = _setup(tmp_path)
    assert main(["gc", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "3 kept unit(s)" in out and "would remove 2 unit(s)" in out and "--yes" in out
    assert "promoted baseline 'demo' names: tune-promoted" in out
    assert all(p.exists() for p in units.values())  # a dry run removes nothing
    freed = sum(f.stat().st_size for k in ("tune-other", "score-any") for f in units[k].rglob("*") if f.is_file())
    assert main(["gc", "--store", str(store), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 unit(s)" in out and f"freed {freed / 1024:.1f} KB" in out
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["tune-promoted"]
    assert UnitCache(root).get("tune-promoted") == {"x": 1}  # still whole and readable


def test_older_than_keeps_what_a_run_used_recently(tmp_path, capsys):
    store, root, units = _setup(tmp_path)
    old = time.time() - 40 * DAY
    for path in units.values():
        os.utime(path / "unit.json", (old, old))
    assert UnitCache(root).get("score-any") is not None  # reused today: young again
    assert main(["gc", "--store", str(store), "--older-than", "30d", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 unit(s)" in out and "keeping 1 unit(s) used within 30d" in out
    assert not units["tune-other"].exists() and units["score-any"].exists() and units["tune-promoted"].exists()


def test_a_unit_in_use_stays_and_killed_runs_leftovers_go(tmp_path, capsys):
    store, root, units = _setup(tmp_path)
    held = FileLock(lock_path(root, "score-any"))
    assert held.acquire()  # a bake-off computing or reading it
    leftover = root / ".tmp-tune-killed-0123abcd"
    leftover.mkdir()
    (leftover / "trainable.safetensors").write_bytes(b"\0" * 10)
    try:
        assert main(["gc", "--store", str(store), "--yes"]) == 0
    finally:
        held.release()
    out = capsys.readouterr().out
    assert "keeping 1 unit(s) in use by a running bake-off" in out and "leftover" in out
    assert units["score-any"].exists() and not units["tune-other"].exists() and not leftover.exists()


def test_bad_older_than_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["gc", "--older-than", "thirty days"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--older-than" in err[0] and "30d" in err[0]
    assert parse_age("2w") == 14 * DAY and parse_age("1.5h") == 5400
