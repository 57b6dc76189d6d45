"""What the executor tests share besides fixtures: results.json compared without what differs between two runs of
one bake-off, and the processes a killed driver leaves behind, found and ended by their ids."""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What results.json holds that differs between two runs of the same bake-off and is not a result: the run's id and
# date, where its units were kept and how many were reused, its executor section, and what was measured about the
# machine rather than computed (seconds, speed, memory). Every score, prediction, interval, verdict stays.
VOLATILE = {"run_id", "created", "timings", "unit", "units", "executor", "peak_rss_mb",
            "seconds", "train_seconds", "tokens_per_second", "train_tokens_per_second", "latency_ms_per_item"}


def comparable(results: dict[str, Any]) -> Any:
    """results.json without what differs between two runs of one bake-off (VOLATILE), for an equality check."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(results)


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values first differ (a readable assertion message rather than a 10,000-line diff)."""
    if type(a) is not type(b):
        return f"{path or '.'}: {type(a).__name__} {str(a)[:200]} != {type(b).__name__} {str(b)[:200]}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'the first' if key in a else 'the second'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {str(a)[:200]} != {str(b)[:200]}"


def assert_same_results(got: dict[str, Any], expected: dict[str, Any]) -> None:
    difference = first_difference(comparable(got), comparable(expected))
    assert difference is None, difference


def read_results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


@dataclass
class Descendants:
    """Every process below a pid, read from /proc (Linux): the Ray processes a killed driver leaves behind are
    ended by their own ids, never by name."""

    root: int

    def pids(self) -> set[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        found, todo = set(), [self.root]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found


def kill_all(pids: set[int], timeout: float = 20.0) -> set[int]:
    """SIGKILL each pid; wait until they are gone; the pids still alive after `timeout`."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _alive(pid)}
        time.sleep(0.2)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
