"""Kept units of work: a re-run recomputes nothing, a killed run resumes to the same numbers, inputs that change
a result change its key, and kept adapters reload to the model that was trained."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cache import UnitCache, unit_key
from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def numbers(results: dict) -> str:
    """Everything a run measured about quality (not wall-clock costs), in a comparable form."""
    out = []
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            out.append({"candidate": c["name"], "scores": b["scores"], "predictions": b["predictions"],
                        "probes": [p["per_item"] | {"forgetting": p["forgetting"]} for p in b["probes"]],
                        "bias": b["bias"], "train_loss": b["train"]["train_loss"], "val_loss": b["train"]["val_loss"],
                        "learning_rate": b["learning_rate"]})
    return json.dumps(out, sort_keys=True)


def bakeoff(cfg: Path, out: Path, *extra: str) -> dict:
    code = main(["run", str(cfg), "--out", str(out), "--quiet", *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_rerun_reuses_every_unit_with_identical_results(tiny_config, tmp_path, capsys):
    first = bakeoff(tiny_config, tmp_path / "a")
    assert first["units"]["reused"] == 0 and first["units"]["computed"] > 0
    # every path the config names is recorded as resolved: model folders, specs, data files, the kept adapter
    bench = first["candidates"][0]["benchmarks"][0]
    paths = [first["candidates"][0]["path"], bench["unit"], *bench["files"].values(),
             *bench["probes"][0]["files"].values(), *bench["bias"][0]["files"].values()]
    assert set(bench["files"]) == {"spec", "train", "validation", "test", "shifted"}
    assert all(Path(p).is_absolute() and Path(p).exists() for p in paths), paths
    second = bakeoff(tiny_config, tmp_path / "b")
    assert second["units"] == first["units"] | {"reused": first["units"]["computed"], "computed": 0}
    assert numbers(second) == numbers(first)
    # costs are part of the kept units too: a resumed run reports what the run that did the work measured
    assert [c["cost"] for c in second["candidates"]] == [c["cost"] for c in first["candidates"]]
    forced = bakeoff(tiny_config, tmp_path / "c", "--force")
    assert forced["units"]["reused"] == 0 and forced["units"]["computed"] == first["units"]["computed"]
    assert numbers(forced) == numbers(first)  # seeded: recomputing gives the same numbers


def test_scores_from_kept_tensors_equal_the_freshly_trained_model(tiny_config, tmp_path, capsys):
    first = bakeoff(tiny_config, tmp_path / "a")
    root = Path(first["units"]["root"])
    tuned = {d.name for d in root.iterdir() if d.name.startswith("tune-")}
    assert len(tuned) == 2
    for unit in root.iterdir():  # keep only the tuned settings: everything else is rescored from their tensors
        if unit.name not in tuned:
            for f in sorted(unit.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            unit.rmdir()
    second = bakeoff(tiny_config, tmp_path / "b")
    assert second["units"]["reused"] == 2  # the two tune units: nothing was retrained
    assert numbers(second) == numbers(first)


def test_a_changed_input_changes_only_the_units_it_determines(tiny_config, tmp_path, capsys):
    first = bakeoff(tiny_config, tmp_path / "a")
    second = bakeoff(tiny_config, tmp_path / "b", "recipe.warmup_ratio=0.1")
    # probes and bias on the base models do not depend on the recipe: reused; tuning and all after it: recomputed
    base_units = sum(len(b["probes"]) + len(b["bias"]) for c in first["candidates"] for b in c["benchmarks"])
    assert second["units"]["reused"] == base_units
    assert second["units"]["computed"] == first["units"]["computed"] - base_units


def test_unit_keys_cover_their_inputs():
    assert unit_key("tune", lr=1e-3, data="a") == unit_key("tune", data="a", lr=1e-3)
    assert unit_key("tune", lr=1e-3, data="a") != unit_key("tune", lr=2e-3, data="a")
    assert unit_key("tune", lr=1e-3) != unit_key("score", lr=1e-3)


def test_a_damaged_unit_is_recomputed_and_force_never_reads(tmp_path):
    cache = UnitCache(tmp_path)
    assert cache.memo("k", lambda: {"x": 1}) == {"x": 1} and cache.computed == 1
    assert cache.memo("k", lambda: {"x": 2}) == {"x": 1} and cache.hits == 1
    (tmp_path / "k" / "unit.json").write_text('{"x": ')  # damaged by hand
    assert cache.memo("k", lambda: {"x": 3}) == {"x": 3}
    forced = UnitCache(tmp_path, force=True)
    assert forced.memo("k", lambda: {"x": 4}) == {"x": 4}
    assert forced.memo("k", lambda: {"x": 5}) == {"x": 4}  # what this run computed is reused within it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_kept_peft_adapter_loads_with_peft_and_gives_the_same_logits(tiny_config, tmp_path, capsys):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results = bakeoff(tiny_config, tmp_path / "a")
    llama = next(c for c in results["candidates"] if c["name"] == "tiny-llama")
    unit = Path(llama["benchmarks"][0]["unit"])
    assert (unit / "adapter" / "adapter_model.safetensors").is_file()
    kept = load_file(unit / "trainable.safetensors")
    assert kept and all("lora_" in name for name in kept)
    base = AutoModelForCausalLM.from_pretrained(llama["path"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, unit / "adapter").eval()
    loaded = dict(model.named_parameters())
    for name, tensor in kept.items():
        torch.testing.assert_close(loaded[name], tensor)
    ids = AutoTokenizer.from_pretrained(llama["path"])("Where is my refund?", return_tensors="pt")["input_ids"]
    with torch.no_grad(), model.disable_adapter():
        plain = model(input_ids=ids).logits
    assert not torch.allclose(model(input_ids=ids).logits, plain)  # the adapter changes the model


def test_a_sweep_scores_every_setting_against_one_loaded_base(tiny_config, tmp_path, capsys, monkeypatch):
    import harness.units

    loads = []
    real = harness.units.load_model
    monkeypatch.setattr(harness.units, "load_model", lambda *a, **k: loads.append(a[0].name) or real(*a, **k))
    results = bakeoff(tiny_config, tmp_path / "a", "sweep.learning_rate=[1e-3, 5e-3]", "probes=[]", "bias=[]")
    assert len(loads) == len(set(loads)) == len(results["candidates"])  # one load per candidate and benchmark
    for c in results["candidates"]:
        sweep = c["benchmarks"][0]["sweep"]
        assert len(sweep) == 2 and sum(s["chosen"] for s in sweep) == 1


def test_tuned_tensors_stay_in_memory_only_without_a_cache(tiny_config, tmp_path, capsys, monkeypatch):
    """With a cache the sweep's settings are read back from disk (no second copy in memory), without one they are
    held in memory; both paths score the same numbers."""
    import harness.run
    import harness.units

    held = []
    real = harness.units.keep_setting

    def keep(bench, key, payload):
        real(bench, key, payload)
        held.append(len(bench.kept))

    monkeypatch.setattr(harness.run, "keep_setting", keep)
    sweep = ("sweep.learning_rate=[1e-3, 5e-3]", "probes=[]", "bias=[]")
    cached = bakeoff(tiny_config, tmp_path / "a", *sweep)
    assert held and set(held) == {0}
    held.clear()
    memory = bakeoff(tiny_config, tmp_path / "b", "--no-cache", *sweep)
    assert held and max(held) == 2  # both settings of a candidate's sweep, until the best is chosen
    assert numbers(memory) == numbers(cached)


def _default_sigint() -> None:
    # A test run started in the background (`make test &`, nohup) inherits SIGINT ignored, and Python then keeps
    # ignoring it; the child here is a foreground run that a Ctrl-C reaches.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(cfg: Path, out: Path, store: Path) -> subprocess.Popen:
    env = os.environ | {"SFTBENCH_STORE": str(store), "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", "from harness.cli import entry; entry()", "run", str(cfg), "--out",
                             str(out), "--quiet"], preexec_fn=_default_sigint, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_units(units: Path, proc: subprocess.Popen, count: int) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if units.is_dir() and len([u for u in units.iterdir() if not u.name.startswith(".tmp")]) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"the run ended (or stalled) before {count} units were kept: {proc.poll()}")


@pytest.mark.integration  # three tiny bake-offs in subprocesses: about a minute
@pytest.mark.parametrize("kill_after", [1, 7])
def test_sigkill_then_rerun_finishes_with_the_same_numbers(tiny_config, tmp_path, capsys, kill_after):
    reference = bakeoff(tiny_config, tmp_path / "reference", "--no-cache", "--no-store")
    store = tmp_path / "killed" / "runs.sqlite"
    proc = _spawn(tiny_config, tmp_path / "out", store)
    _wait_for_units(store.parent / "units", proc, kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = _spawn(tiny_config, tmp_path / "out", store)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["units"]["reused"] >= kill_after
    assert numbers(results) == numbers(reference)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tiny_config, tmp_path):
    store = tmp_path / "s" / "runs.sqlite"
    proc = _spawn(tiny_config, tmp_path / "out", store)
    _wait_for_units(store.parent / "units", proc, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
