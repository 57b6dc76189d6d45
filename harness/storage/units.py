"""Finished units of work, kept as they finish so a killed bake-off resumes where it stopped.

A unit is one piece of work whose result is fully determined by its inputs: tuning one candidate on one
benchmark with one setting, scoring one split, one probe pass on the base or the tuned model. Its key is a
hash of everything that determines it (weights hash, recipe, spec, data hashes, seed, package versions), so
a changed input can never reuse a stale result. Each unit is a folder `<root>/<key>/` holding `unit.json`
and, for tuning, `trainable.safetensors` (every trainable tensor) and, for peft tuners, a standard peft
`adapter/` folder. Folders are written under a temporary name and renamed into place: a SIGKILL at any
moment leaves either the whole unit or nothing. While a unit is computed its lock `<root>/.locks/<key>` is held
(harness/storage/locks.py): a second run sharing the folder waits for it, then finds the unit kept and reuses it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.storage.locks import FileLock

# bump when a change in sftbench alters what a unit computes (2: option scoring; 3: its batching and packed rows,
# Nov 2026)
CACHE_VERSION = 3
PACKAGES = ("sftbench", "torch", "transformers", "peft", "sacrebleu", "rouge-score", "scikit-learn", "numpy")


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine results; recorded in results.json and in every unit key."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def code_identity(package_dirs: tuple[Path, ...] | None = None) -> str:
    """The identity of the code that computes units, in every unit key: a changed line in harness/ or tuners/ never
    reuses a unit the old code kept. An installed release (its packages in site-packages) is its version; a source
    checkout (an editable install, a clone on sys.path) is a hash of its packages' Python files, names and contents."""
    dirs = package_dirs or _PACKAGE_DIRS
    if all(d.parent.name in ("site-packages", "dist-packages") for d in dirs):
        return f"release {_VERSIONS['sftbench']}"
    digest = hashlib.sha256()
    for folder in dirs:
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{folder.name}/{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(path.read_bytes() + b"\0")
    return f"source {digest.hexdigest()[:16]}"


# the packages whose code computes units: harness/ (this package) and tuners/ beside it
_PACKAGE_DIRS = (Path(__file__).resolve().parents[1], Path(__file__).resolve().parents[2] / "tuners")
_VERSIONS = package_versions()
_CODE = code_identity()


def unit_key(unit: str, **inputs: Any) -> str:
    """A stable hash of a unit's kind and every input that determines its result."""
    blob = json.dumps({"unit": unit, "cache_version": CACHE_VERSION, "packages": _VERSIONS, "code": _CODE, **inputs},
                      sort_keys=True, default=str)
    return f"{unit}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


@dataclass
class UnitCache:
    """`root=None` disables caching; `force=True` recomputes every unit (and overwrites what was kept)."""

    root: Path | None
    force: bool = False
    hits: int = 0
    computed: int = 0
    _fresh: set[str] = field(default_factory=set)

    def folder(self, key: str) -> Path | None:
        return self.root / key if self.root else None

    def lock(self, key: str | None) -> FileLock | None:
        """The lock a unit is computed under (None with caching off, or for a unit without a key)."""
        if self.root is None or key is None:
            return None
        return FileLock(lock_path(self.root, key))

    @contextlib.contextmanager
    def computing(self, key: str | None) -> Iterator[dict[str, Any] | None]:
        """Hold the unit's lock while it is computed and kept. Yields its record when a concurrent run kept it while
        this one waited for the lock (reuse it), else None (compute it)."""
        lock = self.lock(key)
        if lock is None or key is None:
            yield None
            return
        with lock:
            yield self.get(key)

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.folder(key)
        if path is None or (self.force and key not in self._fresh):
            return None
        try:
            payload = json.loads((path / "unit.json").read_text())
        except (OSError, ValueError):  # absent, or damaged by hand: recompute
            return None
        with contextlib.suppress(OSError):  # its age is the time since a run last used it (`gc --older-than`)
            os.utime(path / "unit.json")
        self.hits += 1
        return payload

    def put(self, key: str, payload: dict[str, Any], write_files: Callable[[Path], None] | None = None) -> None:
        """Keep a finished unit; `write_files(folder)` adds tensors or adapters before the unit becomes visible."""
        self.computed += 1
        self._fresh.add(key)
        final = self.folder(key)
        if final is None:
            return
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            if write_files:
                write_files(tmp)
            (tmp / "unit.json").write_text(json.dumps(payload, default=float))
            _fsync_tree(tmp)
            if final.exists():  # --force, or a unit written by a concurrent run: the new one wins
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def tensors(self, key: str) -> dict[str, Any]:
        from safetensors.torch import load_file

        path = self.folder(key)
        assert path is not None, "tensors are only read from an enabled cache"
        return load_file(path / "trainable.safetensors")

    def memo(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        payload = self.get(key)
        if payload is None:
            with self.computing(key) as kept:
                payload = kept if kept is not None else compute()
                if kept is None:
                    self.put(key, payload)
        return payload


def lock_path(root: Path, key: str) -> Path:
    return root / ".locks" / key


def _fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())


def default_root(store_path: Path) -> Path:
    """Units live beside the run store (`.sftbench/units`), or in $SFTBENCH_UNITS."""
    return Path(os.environ.get("SFTBENCH_UNITS") or store_path.parent / "units")
