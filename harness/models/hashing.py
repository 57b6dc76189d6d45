"""Content hashes of weights files, computed once per file version rather than on every run.

A weights file's sha256 is kept in a small JSON cache under the sftbench cache dir, keyed by the file's resolved
path and stamped with its size and mtime_ns: a file that is rewritten, touched or resized is hashed again. A file in
the Hugging Face hub cache needs no hashing at all: a snapshot's file links to `blobs/<sha256>` for LFS files (the
weights), so the blob's name is the hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

SHA256 = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """sftbench's cache: the weights hashes (here) and GGUF conversions (harness/models/gguf.py)."""
    return Path(os.environ.get("SFTBENCH_CACHE") or Path.home() / ".cache" / "sftbench")


def hash_cache_path() -> Path:
    return cache_dir() / "weights-hashes.json"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """The file's sha256, read through."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hub_blob_hash(path: Path) -> str | None:
    """The sha256 a hub-cache snapshot file carries in its blob's name (LFS files), else None."""
    if not path.is_symlink():
        return None
    blob = path.resolve()
    if blob.parent.name == "blobs" and SHA256.fullmatch(blob.name):
        return blob.name
    return None


def _read(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or half-written by a process that was killed: start again
        return {}
    return data if isinstance(data, dict) else {}


def _write(cache: Path, entries: dict[str, Any]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(entries, indent=0, sort_keys=True), encoding="utf-8")
    tmp.replace(cache)  # atomic: a reader sees the old cache or the new one, never half of one


def file_hash(path: Path) -> str:
    """The sha256 of a weights file: the hub blob's name, or the cached hash while size and mtime_ns are unchanged."""
    blob = hub_blob_hash(path)
    if blob:
        return blob
    real = path.resolve()
    stat = real.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = hash_cache_path()
    entries = _read(cache)
    entry = entries.get(str(real))
    if isinstance(entry, dict) and {k: entry.get(k) for k in stamp} == stamp and isinstance(entry.get("sha256"), str):
        return str(entry["sha256"])
    digest = sha256_of(real)
    entries = {p: e for p, e in _read(cache).items() if Path(p).exists()}  # re-read: another run may have written
    entries[str(real)] = stamp | {"sha256": digest}
    try:
        _write(cache, entries)
    except OSError:  # a read-only cache dir costs a re-hash next time, nothing more
        pass
    return digest
