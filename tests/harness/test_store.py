"""The SQLite run store: round trip, id prefixes, baselines, and that a write is all-or-nothing."""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.storage import store as store_module
from harness.config import GateConfig
from harness.errors import ConfigError
from harness.gates.check import check, recommend
from harness.storage.store import Store

TABLES = ("runs", "candidates", "scores", "probes", "baselines")


def make_results(run_id: str = "20260101-000000-aaaaaa", name: str = "nightly",
                 accuracies: dict[str, float] | None = None, n: int = 40, seed: int = 0, gate_value: float = 0.5,
                 test_sha: str = "t" * 64, version: str = "1") -> dict[str, Any]:
    """A schema-version-1 results dict (harness/results/finish.py) with seeded per-item scores, built without a run."""
    rng = np.random.Generator(np.random.PCG64(seed))  # a named bit generator: see tests/harness/test_coverage.py
    candidates = []
    for i, (cand, acc) in enumerate((accuracies or {"small": 0.8, "large": 0.7}).items()):
        correct = (rng.random(n) < acc).astype(float).tolist()
        before, after = (rng.random(n) < 0.7).astype(int).tolist(), (rng.random(n) < 0.65).astype(int).tolist()
        score = {"value": float(np.mean(correct)), "ci_low": 0.0, "ci_high": 1.0, "n": n, "ci_method": "wilson",
                 "per_item": correct}
        probe = {"probe": "general_knowledge", "version": "1", "kind": "multiple_choice", "n": n,
                 "data_sha256": "p" * 64, "before": {"value": float(np.mean(before)), "ci_low": 0.5, "ci_high": 0.9},
                 "after": {"value": float(np.mean(after)), "ci_low": 0.5, "ci_high": 0.9},
                 "forgetting": {"value": float(np.mean(before) - np.mean(after)), "ci_low": -0.1, "ci_high": 0.2},
                 "forgotten": 3, "gained": 1, "mcnemar_p": 0.6, "most_forgotten": [],
                 "per_item": {"before": before, "after": after}}
        bench = {"benchmark": "intents", "version": version, "task": "classification", "status": "ok", "reason": "",
                 "learning_rate": 1e-3, "data_sha256": {"train": "r" * 64, "test": test_sha},
                 "scores": {"test": {"accuracy": score}}, "train": None, "latency_ms_per_item": 1.0,
                 "probes": [probe], "predictions": {}, "generalisation": {}}
        candidates.append({"name": cand, "model": cand, "status": "ok", "reason": "", "source": "local",
                           "path": f"/m/{cand}", "architecture": "X", "kind": "causal", "revision": "local",
                           "weights_sha": f"{i:016x}", "params": (i + 1) * 1_000_000, "trainable_params": 1000,
                           "cost": {"train_seconds": 10.0 * (i + 1), "train_tokens_per_second": 100.0,
                                    "latency_ms_per_item": 1.0, "peak_rss_mb": 500.0},
                           "benchmarks": [bench]})
    verdicts = check(candidates, [GateConfig("intents.accuracy", ">=", gate_value)])
    choice, reason = recommend(candidates, verdicts)
    return {"schema_version": 1, "run_id": run_id, "name": name, "created": "2026-01-01T00:00:00+0000",
            "config_hash": "c" * 16, "config": {"name": name}, "git_sha": "g" * 40, "packages": {"numpy": "2"},
            "passed": choice is not None, "recommendation": choice, "recommendation_reason": reason,
            "gates": [v.to_json() for v in verdicts], "candidates": candidates}


@pytest.fixture()
def store(tmp_path) -> Store:
    with Store(tmp_path / "runs.sqlite") as s:
        yield s


def count_rows(path: Path) -> dict[str, int]:
    """Row counts seen by a fresh connection, i.e. what another process would see."""
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def test_save_and_get_round_trip(store):
    results = make_results()
    assert store.save(results) == results["run_id"]
    assert store.get(results["run_id"]) == results
    (run,) = store.runs()
    assert run == {"run_id": results["run_id"], "name": "nightly", "created": results["created"],
                   "config_hash": "c" * 16, "git_sha": "g" * 40, "passed": True, "recommendation": "small",
                   "candidates": 2, "baseline_of": []}


def test_index_tables_are_queryable(store):
    results = make_results()
    store.save(results)
    rows = store.conn.execute("SELECT candidate, value, n, version, data_sha256, per_item FROM scores "
                              "WHERE benchmark = 'intents' AND split = 'test' AND metric = 'accuracy' "
                              "ORDER BY candidate").fetchall()
    by_name = {c["name"]: c["benchmarks"][0]["scores"]["test"]["accuracy"] for c in results["candidates"]}
    assert [r[0] for r in rows] == ["large", "small"]
    for cand, value, n, version, sha, per_item in rows:
        assert (value, n, version, sha) == (by_name[cand]["value"], 40, "1", "t" * 64)
        assert json.loads(per_item) == by_name[cand]["per_item"]
    probe = store.conn.execute("SELECT probe, before, after, forgetting, per_item FROM probes "
                               "WHERE candidate = 'small'").fetchone()
    assert probe[0] == "general_knowledge" and probe[3] == pytest.approx(probe[1] - probe[2])
    assert set(json.loads(probe[4])) == {"before", "after"}
    cand = store.conn.execute("SELECT params, weights_sha, train_seconds FROM candidates "
                              "WHERE name = 'large'").fetchone()
    assert cand == (2_000_000, f"{1:016x}", 20.0)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("SELECT version FROM schema_version").fetchall() == [(store_module.SCHEMA_VERSION,)]


def test_nan_survives_the_round_trip(store):
    results = make_results()
    results["candidates"][0]["benchmarks"][0]["scores"]["test"]["accuracy"]["ci_low"] = float("nan")
    store.save(results)
    again = store.get(results["run_id"])
    assert math.isnan(again["candidates"][0]["benchmarks"][0]["scores"]["test"]["accuracy"]["ci_low"])


def test_run_id_prefix_unknown_and_ambiguous(store):
    store.save(make_results("20260101-000000-aaaaaa"))
    store.save(make_results("20260101-000000-abbbbb"))
    store.save(make_results("20260202-000000-cccccc"))
    assert store.get("20260202")["run_id"] == "20260202-000000-cccccc"
    assert store.get("20260101-000000-ab")["run_id"] == "20260101-000000-abbbbb"
    with pytest.raises(ConfigError, match="ambiguous: 2 runs match"):
        store.get("20260101")
    with pytest.raises(ConfigError, match="no run '1999' in the store"):
        store.get("1999")
    with pytest.raises(ConfigError, match="no run '%' in the store"):  # not a LIKE pattern
        store.get("%")
    assert [r["run_id"] for r in store.runs()] == ["20260101-000000-aaaaaa", "20260101-000000-abbbbb",
                                                   "20260202-000000-cccccc"]


def test_saving_a_run_twice_is_an_error(store):
    store.save(make_results())
    with pytest.raises(ConfigError, match="already in the store"):
        store.save(make_results())
    assert len(store.runs()) == 1


def test_promote_defaults_to_the_recommendation(store):
    store.save(make_results("run-1"))
    entry = store.promote("run-1")
    assert (entry["name"], entry["run_id"], entry["candidate"]) == ("nightly", "run-1", "small")
    results, candidate = store.baseline("nightly")
    assert results["run_id"] == "run-1" and candidate == "small"
    assert store.runs()[0]["baseline_of"] == ["nightly"]
    assert store.baseline("other") is None
    # a later promotion of the same name replaces the earlier one; an explicit candidate and name are honoured
    store.save(make_results("run-2", seed=1))
    store.promote("run-2", candidate="large")
    store.promote("run-2", name="release")
    assert store.baseline("nightly")[0]["run_id"] == "run-2" and store.baseline("nightly")[1] == "large"
    assert store.baseline("release")[1] == "small"


def test_promote_refuses_without_a_recommendation_or_a_real_candidate(store):
    store.save(make_results("run-1", gate_value=1.01))  # nothing passes the gate
    with pytest.raises(ConfigError, match="has no recommendation"):
        store.promote("run-1")
    with pytest.raises(ConfigError, match="no candidate 'nope'; known: large, small"):
        store.promote("run-1", candidate="nope")
    failed = make_results("run-2")
    failed["candidates"][1] |= {"status": "failed", "reason": "NaN loss"}
    store.save(failed)
    with pytest.raises(ConfigError, match="failed \\(NaN loss\\)"):
        store.promote("run-2", candidate="large")
    assert store.baseline("nightly") is None


def test_default_path_and_env_override(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFTBENCH_STORE", raising=False)
    with Store() as s:
        assert s.path == Path(".sftbench/runs.sqlite")
    assert (tmp_path / ".sftbench" / "runs.sqlite").is_file()
    monkeypatch.setenv("SFTBENCH_STORE", str(tmp_path / "elsewhere" / "x.sqlite"))
    with Store() as s:
        s.save(make_results())
    assert count_rows(tmp_path / "elsewhere" / "x.sqlite")["runs"] == 1
    with Store(tmp_path / "explicit.sqlite") as s:  # an explicit path wins over the environment
        assert s.runs() == []


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99 is newer"):
        Store(path)


def test_a_failure_mid_write_leaves_nothing(store, monkeypatch):
    store.save(make_results("earlier"))
    real = store_module._insert

    def insert(conn, table, rows):
        if table == "probes":  # runs, candidates and scores are already inserted by now
            raise sqlite3.OperationalError("disk I/O error")
        real(conn, table, rows)

    monkeypatch.setattr(store_module, "_insert", insert)
    with pytest.raises(Exception, match="disk I/O error"):
        store.save(make_results("doomed"))
    assert [r["run_id"] for r in store.runs()] == ["earlier"]
    with pytest.raises(ConfigError):
        store.get("doomed")
    assert count_rows(store.path) == {"runs": 1, "candidates": 2, "scores": 2, "probes": 2, "baselines": 0}


def test_a_process_killed_mid_write_leaves_nothing(tmp_path):
    """A real crash: the writing process dies (os._exit, no cleanup) between inserts."""
    path = tmp_path / "runs.sqlite"
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(make_results("killed")))
    script = textwrap.dedent(f"""
        import json, os
        from harness.storage import store
        real = store._insert
        def insert(conn, table, rows):
            real(conn, table, rows)
            if table == "scores":
                os._exit(9)
        store._insert = insert
        store.Store({str(path)!r}).save(json.loads(open({str(results_file)!r}).read()))
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    assert count_rows(path) == dict.fromkeys(TABLES, 0)
    with Store(path) as s:
        assert s.runs() == []
        s.save(make_results("killed"))  # the lock died with the process
        assert s.get("killed")["run_id"] == "killed"
