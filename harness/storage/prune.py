"""`sftbench gc`: which kept units of work to remove, and removing them.

A unit is kept for reuse (harness/storage/units.py); removing one only means a later run computes it again. What
is never removed: the tuned settings (trainable tensors and peft adapter) that a promoted baseline's run names in
its results (its candidates' `unit` folders, every seed), a unit used more recently than `--older-than` (its
`unit.json` is touched whenever a run reuses it), and a unit whose lock is held (a bake-off is computing or
reading it now). Each removal happens under the unit's lock. Temporary folders that a killed run left behind, and
lock files of units no longer kept, go too.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.storage.locks import FileLock
from harness.storage.store import Store
from harness.storage.units import lock_path

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` -> seconds; ValueError naming the accepted form otherwise."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not match:
        raise ValueError(f"expected a number and a unit (s, m, h, d, w), e.g. 30d; got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


@dataclass
class Prune:
    """The plan: what would be removed (unit folders and leftovers), and why the rest stays."""

    root: Path
    remove: list[Path] = field(default_factory=list)
    remove_bytes: int = 0
    leftovers: list[Path] = field(default_factory=list)  # temporary folders of killed runs, stale lock files
    kept_baseline: dict[str, list[str]] = field(default_factory=dict)  # baseline name -> its kept unit keys
    kept_recent: int = 0
    kept_busy: int = 0
    total: int = 0
    total_bytes: int = 0


def baseline_units(store: Store | None) -> dict[str, set[str]]:
    """Baseline name -> the unit keys (folder names) its promoted run names anywhere in its results."""
    if store is None:
        return {}
    out: dict[str, set[str]] = {}
    for baseline in store.baselines():
        out[baseline["name"]] = {Path(folder).name for folder in _units_named(store.get(baseline["run_id"]))}
    return out


def _units_named(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "unit" and isinstance(item, str):
                yield item
            else:
                yield from _units_named(item)
    elif isinstance(value, list):
        for item in value:
            yield from _units_named(item)


def plan(root: Path, store: Store | None, older_than: float | None = None, now: float | None = None) -> Prune:
    """What `gc` would remove from the unit store `root`: every unit not needed by a promoted baseline, not in use,
    and (with `older_than`, seconds) not used within that time."""
    now = time.time() if now is None else now
    out = Prune(root)
    protected = baseline_units(store)
    needed = set().union(*protected.values()) if protected else set()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        size = folder_bytes(folder)
        out.total, out.total_bytes = out.total + 1, out.total_bytes + size
        if folder.name in needed:
            for name, keys in protected.items():
                if folder.name in keys:
                    out.kept_baseline.setdefault(name, []).append(folder.name)
        elif older_than is not None and now - _used(folder) < older_than:
            out.kept_recent += 1
        elif _busy(root, folder.name):
            out.kept_busy += 1
        else:
            out.remove.append(folder)
            out.remove_bytes += size
    out.leftovers = _leftovers(root, {f.name for f in folders})
    return out


def _used(folder: Path) -> float:
    """When a run last wrote or reused the unit (its unit.json is touched on reuse)."""
    marker = folder / "unit.json"
    return (marker if marker.exists() else folder).stat().st_mtime


def _busy(root: Path, key: str) -> bool:
    lock = FileLock(lock_path(root, key))
    if not lock.acquire(wait=False):
        return True
    lock.release()
    return False


def _leftovers(root: Path, kept: set[str]) -> list[Path]:
    """Temporary folders whose unit is not being computed (their run was killed), and lock files of units not
    kept that nobody holds."""
    out = []
    if root.is_dir():
        out += [tmp for tmp in sorted(root.glob(".tmp-*")) if not _busy(root, _key_of(tmp))]
    locks = root / ".locks"
    if locks.is_dir():
        out += [p for p in sorted(locks.iterdir()) if p.name not in kept and not _busy(root, p.name)]
    return out


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def apply(prune: Prune) -> tuple[int, int]:
    """Remove what `prune` lists, each unit under its lock (one taken by a run meanwhile is left alone);
    (units removed, bytes freed)."""
    removed, freed = 0, 0
    for folder in prune.remove:
        lock = FileLock(lock_path(prune.root, folder.name))
        if not lock.acquire(wait=False):
            continue
        try:
            size = folder_bytes(folder) if folder.exists() else 0
            shutil.rmtree(folder, ignore_errors=True)
            lock.path.unlink(missing_ok=True)  # held while removed: a waiter then locks a fresh file (locks.py)
        finally:
            lock.release()
        removed, freed = removed + 1, freed + size
    for path in prune.leftovers:
        lock = FileLock(lock_path(prune.root, _key_of(path)))
        if lock.acquire(wait=False):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            lock.release()
    return removed, freed


def _key_of(leftover: Path) -> str:
    """The unit a leftover belongs to: `.tmp-<key>-<8 hex>` or `.locks/<key>`."""
    return leftover.name[len(".tmp-"):].rsplit("-", 1)[0] if leftover.name.startswith(".tmp-") else leftover.name


def describe(prune: Prune, older_than: str | None, done: tuple[int, int] | None = None) -> list[str]:
    """The plan (or, with `done`, what was removed) in a few lines for the terminal."""
    lines = [f"{prune.root}: {prune.total} kept unit(s), {human(prune.total_bytes)}"]
    if done is not None:
        lines.append(f"removed {done[0]} unit(s), freed {human(done[1])}")
    else:
        age = f" not used in {older_than}" if older_than else ""
        lines.append(f"would remove {len(prune.remove)} unit(s){age}, freeing {human(prune.remove_bytes)}")
    for name, keys in sorted(prune.kept_baseline.items()):
        lines.append(f"keeping {len(keys)} unit(s) that promoted baseline '{name}' names: {', '.join(sorted(keys))}")
    if prune.kept_recent:
        lines.append(f"keeping {prune.kept_recent} unit(s) used within {older_than}")
    if prune.kept_busy:
        lines.append(f"keeping {prune.kept_busy} unit(s) in use by a running bake-off")
    if prune.leftovers:
        lines.append(f"{'removed' if done else 'would remove'} {len(prune.leftovers)} leftover(s) of killed runs "
                     "(temporary folders, lock files)")
    if done is None and (prune.remove or prune.leftovers):
        lines.append("nothing removed yet: run again with --yes to remove them")
    return lines


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
