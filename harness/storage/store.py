"""The run store: every results.json in one SQLite file, queryable by run, candidate, metric and probe,
plus named baselines that later bake-offs are gated against.

Default path `.sftbench/runs.sqlite` under the working directory; `SFTBENCH_STORE` or an explicit path
overrides it. A run is written in one transaction, so a crash mid-write leaves no trace of it, under a file lock
(`runs.sqlite.lock`), so concurrent runs' writes queue and all land. The full
results dict is kept as a JSON blob (what `get` returns); the other tables are an index over it for SQL.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, RunFailure
from harness.storage.locks import FileLock

SCHEMA_VERSION = 1
DEFAULT_PATH = Path(".sftbench") / "runs.sqlite"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL, config_hash TEXT, git_sha TEXT,
        packages TEXT, config TEXT, passed INTEGER NOT NULL, recommendation TEXT, results TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS candidates (
        run_id TEXT NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, model TEXT, status TEXT, reason TEXT,
        kind TEXT, architecture TEXT, revision TEXT, weights_sha TEXT, params INTEGER, trainable_params INTEGER,
        train_seconds REAL, latency_ms_per_item REAL, peak_rss_mb REAL, PRIMARY KEY (run_id, name))""",
    """CREATE TABLE IF NOT EXISTS scores (
        run_id TEXT NOT NULL REFERENCES runs(run_id), candidate TEXT NOT NULL, benchmark TEXT NOT NULL,
        split TEXT NOT NULL, metric TEXT NOT NULL, value REAL, ci_low REAL, ci_high REAL, n INTEGER,
        version TEXT, data_sha256 TEXT, per_item TEXT,
        PRIMARY KEY (run_id, candidate, benchmark, split, metric))""",
    """CREATE TABLE IF NOT EXISTS probes (
        run_id TEXT NOT NULL REFERENCES runs(run_id), candidate TEXT NOT NULL, benchmark TEXT NOT NULL,
        probe TEXT NOT NULL, version TEXT, data_sha256 TEXT, before REAL, after REAL, forgetting REAL,
        ci_low REAL, ci_high REAL, per_item TEXT, PRIMARY KEY (run_id, candidate, benchmark, probe))""",
    """CREATE TABLE IF NOT EXISTS baselines (
        name TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), candidate TEXT NOT NULL,
        promoted_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS scores_metric ON scores (benchmark, split, metric)",
)


def default_path() -> Path:
    return Path(os.environ.get("SFTBENCH_STORE") or DEFAULT_PATH)


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def check_path(path: Path) -> None:
    """A store path must be a SQLite file, or nothing yet (an empty file too: SQLite makes it a database). A folder
    or another kind of file is a mistake in --store or SFTBENCH_STORE: said in one line, the file left untouched."""
    if path.is_dir():
        raise ConfigError("the run store is a folder; --store (or SFTBENCH_STORE) names a SQLite file, e.g. "
                          f"{path / DEFAULT_PATH.name}", path)
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:
            if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise ConfigError("not a SQLite database, so not a run store; --store (or SFTBENCH_STORE) names "
                                  "a run store file, or a new path for one", path)


class Store:
    """`Store()` opens (creating if needed) the default store; `Store(path)` a specific file."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        check_path(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():  # switching a new file to WAL fails, not waits, while another process does the same
                self.conn = sqlite3.connect(self.path, timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor see half a run
            self.conn.execute("PRAGMA foreign_keys=ON")
            with self._transaction():
                for statement in SCHEMA:
                    self.conn.execute(statement)
                row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
                if row[0] is None:
                    self.conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        except (sqlite3.Error, OSError) as err:
            raise RunFailure(f"cannot open the run store: {err}", self.path) from None
        if row[0] is not None and row[0] > SCHEMA_VERSION:
            raise ConfigError(f"store schema version {row[0]} is newer than this sftbench's ({SCHEMA_VERSION}); "
                              "upgrade sftbench", self.path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> FileLock:
        return FileLock(self.path.with_name(self.path.name + ".lock"))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # A file lock beside the store queues writers of every process for as long as they take (SQLite's own busy
        # timeout gives up after 30 s); BEGIN IMMEDIATE takes SQLite's write lock up front all the same.
        with self._lock(), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            yield

    def save(self, results: dict[str, Any]) -> str:
        """Store one results dict (the JSON form of harness/results/model.py) in one transaction; returns its run_id."""
        run_id = results["run_id"]
        try:
            with self._transaction():
                _insert(self.conn, "runs", [_run_row(results)])
                _insert(self.conn, "candidates", [_candidate_row(run_id, c) for c in results["candidates"]])
                _insert(self.conn, "scores", _score_rows(results))
                _insert(self.conn, "probes", _probe_rows(results))
        except sqlite3.IntegrityError as err:
            if self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise ConfigError(f"run {run_id} is already in the store", self.path) from None
            raise RunFailure(f"cannot write run {run_id} to the store: {err}", self.path) from None
        except sqlite3.Error as err:
            raise RunFailure(f"cannot write run {run_id} to the store: {err}", self.path) from None
        return run_id

    def runs(self) -> list[dict[str, Any]]:
        """Stored runs, oldest first, without their results blobs."""
        rows = self.conn.execute(
            "SELECT r.run_id, r.name, r.created, r.config_hash, r.git_sha, r.passed, r.recommendation, "
            "(SELECT count(*) FROM candidates c WHERE c.run_id = r.run_id), "
            "(SELECT group_concat(b.name, ',') FROM baselines b WHERE b.run_id = r.run_id) "
            "FROM runs r ORDER BY r.created, r.rowid").fetchall()
        keys = ("run_id", "name", "created", "config_hash", "git_sha", "passed", "recommendation", "candidates",
                "baseline_of")
        out = [dict(zip(keys, row)) for row in rows]
        for run in out:
            run["passed"] = bool(run["passed"])
            run["baseline_of"] = sorted(run["baseline_of"].split(",")) if run["baseline_of"] else []
        return out

    def resolve(self, run_id: str) -> str:
        """The full run_id for an exact id or a unique prefix of one."""
        if not run_id:
            raise ConfigError("empty run id")
        if self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            return run_id
        matches = [r[0] for r in self.conn.execute(
            "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id", (len(run_id), run_id))]
        if not matches:
            raise ConfigError(f"no run '{run_id}' in the store ({self.path}); `sftbench runs` lists them")
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise ConfigError(f"run id prefix '{run_id}' is ambiguous: {len(matches)} runs match ({shown})")
        return matches[0]

    def get(self, run_id: str) -> dict[str, Any]:
        """The full results dict of a run, by id or unique id prefix."""
        full = self.resolve(run_id)
        (blob,) = self.conn.execute("SELECT results FROM runs WHERE run_id = ?", (full,)).fetchone()
        return json.loads(blob)

    def promote(self, run_id: str, candidate: str | None = None, name: str | None = None) -> dict[str, str]:
        """Make a run's candidate the baseline `name` (default: the run's bake-off name); the candidate defaults
        to the run's recommendation. Replaces any earlier baseline of that name."""
        results = self.get(run_id)
        full = results["run_id"]
        if candidate is None:
            candidate = results.get("recommendation")
            if not candidate:
                raise ConfigError(f"run {full} has no recommendation (no candidate passed every gate); "
                                  "name the candidate to promote explicitly")
        by_name = {c["name"]: c for c in results["candidates"]}
        if candidate not in by_name:
            raise ConfigError(f"run {full} has no candidate '{candidate}'; known: {', '.join(sorted(by_name))}")
        if by_name[candidate]["status"] != "ok":
            raise ConfigError(f"candidate '{candidate}' of run {full} failed ({by_name[candidate]['reason']}); "
                              "a failed candidate cannot be a baseline")
        entry = {"name": name or results["name"], "run_id": full, "candidate": candidate,
                 "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO baselines VALUES (:name, :run_id, :candidate, :promoted_at)",
                              entry)
        return entry

    def latest(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """The newest stored run of bake-off `name`: (run id, its results), or None."""
        runs = [r for r in self.runs() if r["name"] == name]
        return (runs[-1]["run_id"], self.get(runs[-1]["run_id"])) if runs else None

    def baselines(self) -> list[dict[str, str]]:
        """Every promoted baseline (name, run_id, candidate, promoted_at), by name."""
        rows = self.conn.execute("SELECT name, run_id, candidate, promoted_at FROM baselines ORDER BY name")
        return [dict(zip(("name", "run_id", "candidate", "promoted_at"), row)) for row in rows.fetchall()]

    def baseline(self, name: str) -> tuple[dict[str, Any], str] | None:
        """(results dict of the promoted run, promoted candidate name), or None when nothing was promoted."""
        row = self.conn.execute("SELECT run_id, candidate FROM baselines WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return self.get(row[0]), row[1]


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    rows = list(rows)
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def _json(value: Any) -> str:
    return json.dumps(value, default=float)


def _run_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["run_id"], r["name"], r["created"], r.get("config_hash"), r.get("git_sha"), _json(r.get("packages", {})),
            _json(r.get("config", {})), int(bool(r["passed"])), r.get("recommendation"), _json(r))


def _candidate_row(run_id: str, c: dict[str, Any]) -> tuple[Any, ...]:
    cost = c.get("cost") or {}
    return (run_id, c["name"], c.get("model"), c.get("status"), c.get("reason"), c.get("kind"),
            c.get("architecture"), c.get("revision"), c.get("weights_sha"), c.get("params"),
            c.get("trainable_params"), cost.get("train_seconds"), cost.get("latency_ms_per_item"),
            cost.get("peak_rss_mb"))


def _score_rows(r: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    for c in r["candidates"]:
        for b in c["benchmarks"]:
            for split, metrics in (b.get("scores") or {}).items():
                for metric, v in metrics.items():
                    yield (r["run_id"], c["name"], b["benchmark"], split, metric, v.get("value"), v.get("ci_low"),
                           v.get("ci_high"), v.get("n"), b.get("version"), (b.get("data_sha256") or {}).get(split),
                           _json(v.get("per_item", [])))


def _probe_rows(r: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    for c in r["candidates"]:
        for b in c["benchmarks"]:
            for p in b.get("probes") or []:
                f = p["forgetting"]
                yield (r["run_id"], c["name"], b["benchmark"], p["probe"], p.get("version"), p.get("data_sha256"),
                       p["before"]["value"], p["after"]["value"], f["value"], f["ci_low"], f["ci_high"],
                       _json(p.get("per_item", {})))
