"""GGUF files as candidates: converted once (dequantised to fp32 safetensors) into the sftbench cache, keyed by the
file's content hash, with the conversion's progress reported in stages and no library bar of its own."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ModelError
from harness.models.hashing import cache_dir, file_hash

# Share of a conversion's time done after each stage (SmolLM2-135M Q4_1 on 2 CPU cores: tokenizer 13 s, weights
# read and dequantised 37 s, safetensors written 1 s), so a progress bar's ETA means something.
GGUF_STAGES = {"tokenizer": 25, "weights": 97, "saved": 100}


def convert_gguf(gguf: Path, dest: Path, on_step: Any = None) -> Path:
    """Dequantise a GGUF file into a safetensors folder once; later calls reuse the folder.
    on_step(done, 100) after each stage, weighted by GGUF_STAGES."""
    if (dest / "model.safetensors").is_file() and (dest / "sftbench-source.json").is_file():
        return dest
    if not gguf.is_file():
        raise ModelError("GGUF file not found", gguf)
    same = converted(file_hash(gguf))  # the same file, converted under another name (an alias, another path)
    if same is not None:
        return same
    unsupported = gguf_unsupported(gguf)  # from the metadata, before a long load that would fail the same way
    if unsupported:
        raise ModelError(unsupported, gguf)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with library_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            if on_step:
                on_step(GGUF_STAGES["tokenizer"], 100)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            if on_step:
                on_step(GGUF_STAGES["weights"], 100)
    except Exception as err:  # a truncated or foreign file surfaces as many exception types
        raise ModelError(f"cannot read GGUF file: {type(err).__name__}: {err}".splitlines()[0], gguf) from None
    # A GGUF-loaded model refuses save_pretrained while it carries its quantizer; the weights are
    # already dequantised to fp32, so dropping the quantizer config loses nothing.
    # (PreTrainedModel does not declare these two, so mypy types them as nn.Module.__getattr__'s Tensor | Module)
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with library_bars_off():
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    (tmp / "sftbench-source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": file_hash(gguf)}))
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(dest)  # atomic: a killed conversion never leaves a half-written cache
    if on_step:
        on_step(GGUF_STAGES["saved"], 100)
    return dest


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """No tqdm bar from transformers while a GGUF file converts: the caller's on_step reports it. Its GGUF reader draws
    its own bar, which transformers' disable_progress_bar() does not reach, so the name it calls is swapped for a
    disabled bar for the conversion's length."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bar, enabled = gguf_utils.tqdm, hf_logging.is_progress_bar_enabled()
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        if enabled:
            hf_logging.enable_progress_bar()


def converted(sha256: str) -> Path | None:
    """A finished conversion of the GGUF file with this content hash, wherever it is in the cache."""
    for source in sorted((cache_dir() / "models").glob("*/sftbench-source.json")):
        try:
            same = json.loads(source.read_text(encoding="utf-8")).get("sha256") == sha256
        except (OSError, ValueError, AttributeError):
            continue
        if same and (source.parent / "model.safetensors").is_file():
            return source.parent
    return None


def gguf_folder(gguf: Path, on_step: Any = None) -> Path:
    """A GGUF file given as a candidate: converted once into a folder keyed by the file's content hash."""
    return convert_gguf(gguf, cache_dir() / "models" / f"gguf-{file_hash(gguf)[:16]}", on_step)


def gguf_unsupported(gguf: Path) -> str:
    """Why transformers cannot convert this GGUF file's architecture ("" when it can, or the file is unreadable)."""
    try:
        from gguf import GGUFReader
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES, read_field

        arch = str(read_field(GGUFReader(str(gguf)), "general.architecture")[0])
    except Exception:  # not a GGUF file at all: the caller's message says what failed
        return ""
    if arch in GGUF_SUPPORTED_ARCHITECTURES:
        return ""
    import transformers

    return (f"unsupported GGUF architecture '{arch}': transformers {transformers.__version__} converts "
            f"{', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}; convert it to safetensors another way")
