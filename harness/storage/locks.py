"""File locks shared by concurrent runs: one on each unit while it is computed, one on the run store while a run
is written, so that two bake-offs sharing `.sftbench/` never compute the same unit twice or interleave writes.

A lock is `fcntl.flock` on a lock file (Linux, macOS): it waits for the holder, and the OS releases it when the
holder's process exits, a crash or SIGKILL included, so a stale lock never blocks a later run. A lock file may be
removed while it is held (`sftbench gc` does, holding it): a waiter that then wakes on the removed file retries on
the new one, so two holders never coexist.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


class FileLock:
    """An exclusive lock on `path` (created if needed): `with FileLock(p):`, or `acquire()` / `release()`."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: IO[str] | None = None

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock, waiting for its holder when `wait`; False when `wait` is off and it is held elsewhere."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a")  # noqa: SIM115 (held open while the lock is held)
            try:
                if not _flock(handle, wait):
                    handle.close()
                    return False
                if _same_file(handle, self.path):
                    self.handle = handle
                    return True
            except BaseException:
                handle.close()
                raise
            handle.close()  # the file was removed (or replaced) while we waited: lock the current one

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _flock(handle: IO[str], wait: bool) -> bool:
    if not wait:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for %s (held by another run)", handle.name)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return True


def _same_file(handle: IO[str], path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
