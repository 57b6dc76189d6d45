"""The hardware a run's numbers came from: CPU model and whether it has bf16 instructions (bf16 kernels differ
between CPUs, so scores computed with them can differ in the last digits from one machine to another), GPU name,
core and thread counts. Recorded in results.json (`hardware`), shown by every report, and compared by `sftbench
compare`; latency's measuring conditions name it too (harness/execution/latency.py)."""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

from harness.models.device import cpu_has_bf16

# the fields that make two machines compute differently; `executor` only says how the run was placed
SAME_HARDWARE = ("cpu", "cpu_bf16", "gpu", "machine", "threads")


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what the platform reports; "unknown" without either)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return line.split(":", 1)[1].strip() or "unknown"
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(executor: str = "local") -> dict[str, Any]:
    """This machine: cpu, cpu_bf16, machine, cores (usable by this process), threads (torch's), gpu and gpu_bf16
    (None without CUDA), and `executor`: under Ray this is the driver's machine, and units may run on other nodes."""
    import torch

    cuda = torch.cuda.is_available()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"cpu": cpu_model(), "cpu_bf16": cpu_has_bf16(), "machine": platform.machine(), "cores": cores,
            "threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_bf16": bool(torch.cuda.is_bf16_supported()) if cuda else None, "executor": executor}


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """What differs between two recorded machines ('cpu AMD EPYC vs Intel Xeon'); [] when the same or unknown."""
    if not a or not b:
        return []
    return [f"{k} {a.get(k)} vs {b.get(k)}" for k in SAME_HARDWARE if a.get(k) != b.get(k)]


def latency_comparable(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """"" when two latencies were measured under the same conditions (harness/execution/latency.py), else why they
    cannot be compared."""
    if not a or not b or "not_measured" in a or "not_measured" in b:
        return ("no fixed measuring conditions recorded on both sides (a run written before latency was measured "
                "alone, whose scoring units' time depends on the executor, or a latency that was not measured)")
    differ = [f"{k} {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "measured under different conditions: " + "; ".join(differ) if differ else ""
