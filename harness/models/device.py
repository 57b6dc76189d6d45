"""Devices and precision: where a unit runs (`recipe.device`: auto, cpu, cuda, cuda:N, mps) and in which precision
(`recipe.bf16`), the one resolution every stage reads; what a CPU can do fast (bf16 autocast only where the hardware
has bf16 instructions); memory peaks per unit (resident set, GPU); the process's threads and quiet libraries."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, RunFailure


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


def quiet_libraries() -> None:
    """Library progress bars and deprecation chatter would bury sftbench's own progress and leaderboard: off in the
    CLI's process and in each Ray worker."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*requires_grad=True to a scalar.*")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging  # transformers loads only when a command needs a model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


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
def frozen_linears_in_bf16(model: Any, enabled: bool, dtype: Any = None, trainable: bool = False) -> Any:
    """Inside the block, every frozen fp32 weight and bias of an nn.Linear (a LoRA or IA3 base layer, a
    frozen block under `freeze`, a tied LM head) is a bf16 copy; on exit the original fp32 parameters are put
    back, untouched. `dtype`: the autocast's half precision (bf16, or fp16 on a GPU without bf16). With
    `trainable`, the weights that require grad get copies too: only where no gradient flows (scoring, where
    autocast's cache of casts does not work under inference mode either).

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
                if p is not None and (trainable or not p.requires_grad) and p.dtype == torch.float32:
                    swapped.append((module, name, p))
                    setattr(module, name, torch.nn.Parameter(p.detach().to(dtype or torch.bfloat16),
                                                             requires_grad=False))
    try:
        yield
    finally:
        for module, name, p in swapped:
            setattr(module, name, p)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a unit's model runs and in which precision: one resolution that training, scoring, generation,
    probes and bias all read (accelerate's and torchtune's `get_device` style).

    precision: "fp32", "bf16" (autocast, and bf16 weights for the frozen base of an adapter tuner on GPUs) or
    "fp16" (autocast with a grad scaler, on GPUs without bf16)."""

    device: str = "cpu"  # "cpu", "cuda:N", "mps"
    precision: str = "fp32"

    @property
    def kind(self) -> str:
        return self.device.split(":")[0]

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def accelerated(self) -> bool:
        return self.kind != "cpu"

    def autocast(self) -> Any:
        """Mixed precision on this device (a no-op in fp32)."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.bf16 else torch.float16
        return torch.autocast(self.kind, dtype=dtype)

    def weights_dtype(self, frozen_base: bool) -> Any:
        """The dtype to load weights in (`from_pretrained(dtype=...)`): on an accelerator, the half precision of the
        autocast for an adapter tuner, whose base stays frozen; fp32 where weights train (full, freeze) or on a CPU,
        whose frozen bf16 copies are made per fit (`frozen_linears_in_bf16`) so that scoring stays in fp32."""
        import torch

        if self.accelerated and self.precision != "fp32" and frozen_base:
            return torch.bfloat16 if self.bf16 else torch.float16
        return torch.float32

    def key_fields(self) -> dict[str, str]:
        """What a unit key adds for this placement: nothing on a CPU (its keys are those sftbench always used, with
        `bf16`), the device kind and precision elsewhere (an accelerator's numbers are its own)."""
        return {} if not self.accelerated else {"device": self.kind, "precision": self.precision}


def _cuda_index(device: str) -> int:
    try:
        return int(device.split(":", 1)[1]) if ":" in device else 0
    except ValueError:
        raise ConfigError(f"recipe.device {device!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None


def resolve(device: str = "auto", bf16: str = "auto", gpu_planned: bool = False) -> Placement:
    """The placement `recipe.device` and `recipe.bf16` ask for, here. `auto` picks CUDA when present, then MPS, then
    the CPU; `gpu_planned`: the unit will run where its executor gives it a GPU (a Ray task with `num_gpus`), so
    `auto` means CUDA even on a driver without one. Asking for a device this machine lacks is a ConfigError."""
    import torch

    if device == "auto":
        if torch.cuda.is_available() or gpu_planned:
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
    kind = device.split(":")[0]
    if kind == "cpu":
        return Placement("cpu", "bf16" if use_bf16(bf16) else "fp32")
    if kind == "mps":
        if not _mps_available():
            raise ConfigError("recipe.device is mps, but this machine has no MPS device (Apple silicon)")
        return Placement("mps", "bf16" if bf16 == "on" else "fp32")  # MPS autocast in bf16 only when asked
    if kind != "cuda":
        raise ConfigError(f"recipe.device {device!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    index = _cuda_index(device)
    if not torch.cuda.is_available():
        if not gpu_planned:
            raise ConfigError(f"recipe.device is {device}, but torch sees no CUDA device here "
                              f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})")
        # planned for a GPU worker (Ray num_gpus) from a driver without one: bf16 unless told otherwise; the worker
        # checks its GPU has it (check_here)
        return Placement(f"cuda:{index}", "fp32" if bf16 == "off" else "bf16")
    if index >= torch.cuda.device_count():
        raise ConfigError(f"recipe.device is {device}, but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    has_bf16 = torch.cuda.is_bf16_supported()
    if bf16 == "on" and not has_bf16:
        raise ConfigError(f"recipe.bf16 is on, but {torch.cuda.get_device_name(index)} has no bf16; "
                          "use auto (fp16 with a grad scaler) or off (fp32)")
    precision = "fp32" if bf16 == "off" else ("bf16" if has_bf16 else "fp16")
    return Placement(f"cuda:{index}", precision)


def check_here(placement: Placement) -> Placement:
    """The planned placement, as this process (a Ray worker, maybe) can run it: CUDA index 0 of the GPUs Ray gave
    the task when the plan named none it could know; a RunFailure where this machine cannot."""
    import torch

    if placement.kind == "cuda":
        if not torch.cuda.is_available():
            raise RunFailure(f"the unit was planned on {placement.device}, but this process sees no CUDA device "
                             "(give its executor resources num_gpus, or set recipe.device: cpu)")
        index = _cuda_index(placement.device)
        if index >= torch.cuda.device_count():
            placement = dataclasses.replace(placement, device="cuda:0")
        if placement.bf16 and not torch.cuda.is_bf16_supported():
            raise RunFailure(f"the unit was planned in bf16, but {torch.cuda.get_device_name()} has none "
                             "(set recipe.bf16: off, or plan from a machine with this GPU)")
    if placement.kind == "mps" and not _mps_available():
        raise RunFailure("the unit was planned on mps, but this process sees no MPS device")
    return placement


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def accelerator_peak() -> dict[str, float]:
    """The GPU memory peak since reset_peak_gpu() (torch.cuda.max_memory_allocated), in MB; empty without CUDA."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20}


def reset_peak_gpu() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def model_device(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        import torch

        return torch.device("cpu")
