"""Kept units of work: a re-run recomputes nothing, a killed run resumes to the same numbers, inputs that change
a result change its key, and kept adapters reload to the model that was trained."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.storage.units import UnitCache, unit_key
from harness.cli import main
from tests.conftest import ROOT, TINY_EXIT


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
    assert code == TINY_EXIT
    return json.loads((out / "results.json").read_text())


def forbid_model_loads(m: pytest.MonkeyPatch) -> None:
    """Make every way to load weights or a tokenizer raise: the harness's loaders and transformers' own."""
    import harness.execution.workspace
    import harness.models.loading
    from transformers import AutoTokenizer, PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded")

    for module in (harness.models.loading, harness.execution.workspace):
        m.setattr(module, "load_model", refuse)
        m.setattr(module, "load_tokenizer", refuse)
    m.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    m.setattr(AutoTokenizer, "from_pretrained", classmethod(refuse))


def test_rerun_reuses_every_unit_with_identical_results(tiny_config, tmp_path, capsys, monkeypatch):
    first = bakeoff(tiny_config, tmp_path / "a")
    assert first["units"]["reused"] == 0 and first["units"]["computed"] > 0
    # every path the config names is recorded as resolved: model folders, specs, data files, the kept adapter
    bench = first["candidates"][0]["benchmarks"][0]
    paths = [first["candidates"][0]["path"], bench["unit"], *bench["files"].values(),
             *bench["probes"][0]["files"].values(), *bench["bias"][0]["files"].values()]
    assert set(bench["files"]) == {"spec", "train", "validation", "test", "shifted"}
    assert all(Path(p).is_absolute() and Path(p).exists() for p in paths), paths
    with monkeypatch.context() as m:  # "running the same command again loads no model": any load would raise
        forbid_model_loads(m)
        second = bakeoff(tiny_config, tmp_path / "b")
    assert second["units"] == first["units"] | {"reused": first["units"]["computed"], "computed": 0}
    assert numbers(second) == numbers(first)
    with monkeypatch.context() as m:  # the guard bites: with nothing kept, the same run must load and fails here
        forbid_model_loads(m)
        assert main(["run", str(tiny_config), "--out", str(tmp_path / "x"), "--quiet", "--no-cache"]) == 3
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


def test_unit_keys_record_real_package_versions():
    from harness.storage.units import PACKAGES, package_versions

    versions = package_versions()
    assert set(versions) == set(PACKAGES) >= {"torch", "transformers", "peft", "sacrebleu", "rouge-score",
                                              "scikit-learn", "numpy"}
    assert "absent" not in versions.values(), versions  # a misspelt distribution name would never change a key


def test_a_changed_line_of_sftbench_changes_every_unit_key(tmp_path):
    """Unit keys hold the identity of the code that computes them: in a source checkout (this one: an editable
    install) a hash of harness/ and tuners/, which one changed line, or a file renamed, changes; a release installed
    in site-packages is its version."""
    from harness.storage import units

    assert units._CODE == units.code_identity() and units._CODE.startswith("source ")  # make install: editable
    copies = []
    for name in ("harness", "tuners"):
        shutil.copytree(ROOT / name, tmp_path / "src" / name, ignore=shutil.ignore_patterns("__pycache__"))
        copies.append(tmp_path / "src" / name)
    dirs = tuple(copies)
    assert units.code_identity(dirs) == units._CODE  # the same files: the same identity, wherever they are
    loop = tmp_path / "src" / "harness" / "training" / "loop.py"
    source = loop.read_text()
    loop.write_text(source.replace("\n", "\n# one changed line\n", 1))
    changed = units.code_identity(dirs)
    assert changed != units._CODE
    loop.write_text(source)
    assert units.code_identity(dirs) == units._CODE
    (tmp_path / "src" / "tuners" / "lora" / "extra.py").write_text("X = 1\n")  # a new module counts too
    assert units.code_identity(dirs) not in (units._CODE, changed)
    release = tuple(tmp_path / "venv" / "site-packages" / d.name for d in dirs)
    assert units.code_identity(release) == f"release {units._VERSIONS['sftbench']}"
    # and the identity is in the key: the same inputs under other code give another key
    key = unit_key("tune", lr=1e-3)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(units, "_CODE", changed)
        assert unit_key("tune", lr=1e-3) != key


SMALL = """
name: keys
candidates: [{{model: "{model}", name: tiny-llama}}]
recipe: {{epochs: 1, batch_size: 8, max_length: 64, learning_rate: 1e-3, bf16: "{bf16}", seed: {seed}}}
benchmarks: [{{spec: "{bench}", max_train: 8, max_validation: 4, max_test: 6}}]
probes: [{{spec: general_knowledge, max_items: 4}}]
bootstrap_resamples: 100
"""
BUNDLED_INTENTS = str(ROOT / "benchmarks" / "support_intents")


def small_run(folder: Path, model: Path, bench: str = BUNDLED_INTENTS, seed: int = 0, bf16: str = "off") -> dict:
    """One candidate, one benchmark, one probe, no bias suite: 5 units (base probe, tune, 2 scored splits,
    tuned probe). The run store (and so the units) live in `folder`."""
    cfg = folder / "keys.yaml"
    cfg.write_text(SMALL.format(model=model, bench=bench, seed=seed, bf16=bf16))
    assert main(["run", str(cfg), "--out", str(folder / "out"), "--store", str(folder / "runs.sqlite"),
                 "--quiet"]) in (0, 1)  # the gate verdict does not matter here
    return json.loads((folder / "out" / "results.json").read_text())


@pytest.fixture(scope="module")
def kept_small_run(tmp_path_factory, tiny_llama) -> Path:
    folder = tmp_path_factory.mktemp("keys-reference")
    assert small_run(folder, tiny_llama)["units"]["computed"] == 5
    return folder


def computed_kinds(before: set[str], units: Path) -> dict[str, int]:
    fresh = [d.name.split("-")[0] for d in units.iterdir() if d.name not in before and not d.name.startswith(".")]
    return {kind: fresh.count(kind) for kind in sorted(set(fresh))}


# latency is measured again whenever the test split's score unit is (its key is that unit's key and the conditions);
# it is kept in the unit store but is not one of the plan's units, so the run's unit counts leave it out
ALL_FIVE = {"latency": 1, "probe": 2, "score": 2, "tune": 1}


@pytest.mark.parametrize("change, expected", [
    ("nothing", {}),
    ("seed", ALL_FIVE),  # the seed shapes the adapter, the batches and every bootstrap interval
    ("bf16", ALL_FIVE),  # precision changes training and every score, base-model probes included
    ("weights", ALL_FIVE),  # another model: nothing of the old one applies
    ("versions", ALL_FIVE),  # a library upgrade may change any number
    ("code", ALL_FIVE),  # sftbench's own code changed (a source checkout's hash, a release's version)
    ("train data", {"latency": 1, "tune": 1, "score": 2, "probe": 1}),  # the base-model probe does not read train data
    ("test data", {"latency": 1, "score": 1}),  # only the test split's scores (and their latency); the rest reused
])
def test_each_input_changes_the_keys_of_the_units_it_determines(kept_small_run, tiny_llama, tmp_path, monkeypatch,
                                                                change, expected):
    import harness.storage.units

    folder = tmp_path / "run"
    shutil.copytree(kept_small_run, folder, ignore=shutil.ignore_patterns("out"))
    model, bench, seed, bf16 = tiny_llama, BUNDLED_INTENTS, 0, "off"
    if change == "seed":
        seed = 1
    elif change == "bf16":
        bf16 = "on"
    elif change == "weights":
        from safetensors.torch import load_file, save_file

        model = tmp_path / "model"
        shutil.copytree(tiny_llama, model)
        tensors = load_file(model / "model.safetensors")
        name = sorted(tensors)[0]
        tensors[name] = tensors[name] + 1e-3
        save_file(tensors, str(model / "model.safetensors"), metadata={"format": "pt"})
    elif change == "versions":
        monkeypatch.setitem(harness.storage.units._VERSIONS, "transformers", "0.0.0-not-this-one")
    elif change == "code":
        monkeypatch.setattr(harness.storage.units, "_CODE", "source 0000000000000000")
    elif change == "nothing" or change.endswith("data"):
        bench = str(tmp_path / "intents")
        shutil.copytree(BUNDLED_INTENTS, bench)  # another folder, same spec: same keys until a row changes
        if change != "nothing":
            data = Path(bench) / ("train.jsonl" if change == "train data" else "test.jsonl")
            first, rest = data.read_text().split("\n", 1)
            row = json.loads(first)
            row["text"] += " Thanks."
            data.write_text(json.dumps(row) + "\n" + rest)
    before = {d.name for d in (folder / "units").iterdir()}
    results = small_run(folder, model, bench, seed, bf16)
    assert computed_kinds(before, folder / "units") == expected
    planned = sum(n for kind, n in expected.items() if kind != "latency")
    assert results["units"]["computed"] == planned
    assert results["units"]["reused"] == 5 - planned


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


def test_kept_peft_adapter_loads_with_peft_and_gives_the_same_logits(tiny_run):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llama = next(c for c in tiny_run.results["candidates"] if c["name"] == "tiny-llama")
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
    import harness.execution.workspace

    loads = []
    real = harness.execution.workspace.load_model
    monkeypatch.setattr(harness.execution.workspace, "load_model", lambda *a, **k: loads.append(a[0].name) or real(*a, **k))
    results = bakeoff(tiny_config, tmp_path / "a", "sweep.learning_rate=[1e-3, 5e-3]", "probes=[]", "bias=[]")
    # one load per candidate and benchmark for all its units, then one more each to time latency alone
    # (harness/execution/latency.py: after the executor, under fixed conditions)
    assert len(set(loads)) == len(results["candidates"]) and all(loads.count(m) == 2 for m in loads)
    for c in results["candidates"]:
        sweep = c["benchmarks"][0]["sweep"]
        assert len(sweep) == 2 and sum(s["chosen"] for s in sweep) == 1


def kept_settings(units: Path) -> dict[str, tuple[dict, dict]]:
    """Every kept tuned setting of a units folder: key -> (unit.json, trainable tensors)."""
    from safetensors.torch import load_file

    return {d.name: (json.loads((d / "unit.json").read_text()), load_file(d / "trainable.safetensors"))
            for d in units.iterdir() if d.name.startswith("tune-")}


def test_each_sweep_setting_starts_from_the_seeded_initial_state(tiny_config, tmp_path, capsys, monkeypatch):
    """The second setting of a two-setting sweep trains after the first in the same process, on the same loaded
    model: it must end with exactly the weights (LoRA and the encoder's new head) and losses of that setting run
    alone. Separate unit folders, so the lone run cannot reuse the sweep's units."""
    off = ("probes=[]", "bias=[]")
    monkeypatch.setenv("SFTBENCH_UNITS", str(tmp_path / "units-sweep"))
    sweep = bakeoff(tiny_config, tmp_path / "sweep", "sweep.learning_rate=[1e-3, 2e-2]", *off)
    assert all([s["learning_rate"] for s in c["benchmarks"][0]["sweep"]] == [1e-3, 2e-2] for c in sweep["candidates"])
    monkeypatch.setenv("SFTBENCH_UNITS", str(tmp_path / "units-alone"))
    bakeoff(tiny_config, tmp_path / "alone", "sweep.learning_rate=[2e-2]", *off)
    swept, alone = kept_settings(tmp_path / "units-sweep"), kept_settings(tmp_path / "units-alone")
    assert len(swept) == 4 and len(alone) == 2 and set(alone) <= set(swept)  # same inputs, same keys
    for key, (record, tensors) in alone.items():
        swept_record, swept_tensors = swept[key]
        assert record["learning_rate"] == 2e-2
        assert swept_record["train"]["train_loss"] == record["train"]["train_loss"]
        assert swept_record["train"]["val_loss"] == record["train"]["val_loss"]
        assert tensors.keys() == swept_tensors.keys()
        for name, tensor in tensors.items():
            assert torch.equal(swept_tensors[name], tensor), name
    heads = [n for _, tensors in alone.values() for n in tensors if "classifier" in n]
    assert heads, "the encoder's new head is part of the restored state"


def test_tuned_tensors_stay_in_memory_only_without_a_cache(tiny_config, tmp_path, capsys, monkeypatch):
    """With a cache the sweep's settings are read back from disk (no second copy in memory), without one they are
    held in memory; both paths score the same numbers."""
    import harness.execution.runner

    held = []  # per tune unit computed: does its output still hold its tensors for the units that read them?
    real = harness.execution.runner.run_unit

    def run_unit(unit, *args):
        out = real(unit, *args)
        if unit.kind == "tune":
            held.append(out.tensors is not None)
        return out

    monkeypatch.setattr(harness.execution.runner, "run_unit", run_unit)
    sweep = ("sweep.learning_rate=[1e-3, 5e-3]", "probes=[]", "bias=[]")
    cached = bakeoff(tiny_config, tmp_path / "a", *sweep)
    assert held == [False] * 4  # two settings of two candidates, each read back from the cache
    held.clear()
    memory = bakeoff(tiny_config, tmp_path / "b", "--no-cache", *sweep)
    assert held == [True] * 4
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
        if units.is_dir() and len([u for u in units.iterdir() if not u.name.startswith(".")]) >= count:
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
    assert resumed.returncode == TINY_EXIT, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["units"]["reused"] >= kill_after
    assert numbers(results) == numbers(reference)


@pytest.mark.integration  # a tiny bake-off in a subprocess, interrupted: a multi-process test, as the SIGKILL one
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tiny_config, tmp_path):
    store = tmp_path / "s" / "runs.sqlite"
    proc = _spawn(tiny_config, tmp_path / "out", store)
    _wait_for_units(store.parent / "units", proc, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
