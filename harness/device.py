"""What this CPU can do fast: bf16 autocast only where the hardware has bf16 instructions."""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any


@functools.cache
def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(setting: str) -> bool:
    # On CPUs without native bf16, autocast emulates it and is several times slower than fp32.
    return setting == "on" or (setting == "auto" and cpu_has_bf16())


def autocast(enabled: bool) -> Any:
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@functools.cache
def set_threads() -> int:
    import torch

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset_peak_rss() (Linux VmHWM), else since the process started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Restart the peak-memory count (Linux: writing 5 to clear_refs resets VmHWM), so each candidate's peak is
    its own and not the largest candidate's before it. False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
