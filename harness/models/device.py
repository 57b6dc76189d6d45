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


@contextlib.contextmanager
def frozen_linears_in_bf16(model: Any, enabled: bool) -> Any:
    """Inside the block, every frozen fp32 weight and bias of an nn.Linear (a LoRA or IA3 base layer, a
    frozen block under `freeze`, a tied LM head) is a bf16 copy; on exit the original fp32 parameters are put
    back, untouched.

    Autocast rounds the same weights to bf16 for every matmul anyway, but it caches those casts only for
    parameters that require grad: frozen ones are re-cast on every forward, a pass over all frozen weights
    each step. The copy gives the same bf16 values once. Embeddings and norms are not touched (autocast keeps
    them in fp32), and a head tied to the embedding gets its own copy, so the embedding's output stays fp32.
    """
    if not enabled:
        yield
        return
    import torch

    swapped = []  # (module, attribute, original parameter)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            for name in ("weight", "bias"):
                p = getattr(module, name)
                if p is not None and not p.requires_grad and p.dtype == torch.float32:
                    swapped.append((module, name, p))
                    setattr(module, name, torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False))
    try:
        yield
    finally:
        for module, name, p in swapped:
            setattr(module, name, p)
