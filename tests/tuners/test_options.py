"""Per-tuner options (issue 28): each tuner declares its own options (tuners/<name>/config.py) and a tune unit's key
hashes only those. LoRA's keys are those of CACHE_VERSION 3, digit for digit; LoRA's r never reaches a full
fine-tune's, freeze's or IA3's key; an option the chosen tuner does not read is one line and exit 2."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

import harness.storage.units as units
from harness.cli import main
from harness.config import BakeoffConfig, RecipeConfig, build, load_config
from harness.errors import ConfigError
from harness.execution.keys import tune_key
from tuners import NoOptions
from tuners.freeze.config import FreezeOptions
from tuners.ia3.config import IA3Options
from tuners.lora.config import LoraOptions

# A tune unit's inputs with the code and package identities pinned, so that the digest is the key format's alone
HANDLE = SimpleNamespace(weights_hash="w" * 64, kind="causal")
SPEC = SimpleNamespace(key_fields=lambda: {"name": "intents", "version": 1, "path": "/x", "splits": {},
                                           "description": "d"})
SPLITS = {"train": SimpleNamespace(sha256="t" * 64), "validation": SimpleNamespace(sha256="v" * 64)}


@pytest.fixture
def pinned(monkeypatch):
    monkeypatch.setattr(units, "_CODE", "source 0123456789abcdef")
    monkeypatch.setattr(units, "_VERSIONS", {"sftbench": "0.1.0", "torch": "2.13.0"})

    def key(recipe: dict) -> str:
        return tune_key(HANDLE, SPEC, build(RecipeConfig, recipe, "recipe"), SPLITS, 1e-3, 2)
    return key


# digests computed with the same pinned inputs on main at 562b607 and again at 0b00eff, before the options were split
KEPT = [
    ({}, "tune-36b984423f0359884745bbde"),
    ({"tuner": "lora", "r": 16, "alpha": 32, "dropout": 0.0, "target_modules": ["q_proj", "k_proj"]},
     "tune-2db6d7b84571340458d697d3"),
    ({"tuner": "qlora"}, "tune-d2594aa359feda0e9818cd50"),
    ({"seeds": 3, "grad_accum": 2}, "tune-40a02f3b85589e2efa29875b"),
]


@pytest.mark.parametrize("recipe, digest", KEPT)
def test_lora_and_qlora_units_keep_the_keys_of_cache_version_3(pinned, recipe, digest):
    assert pinned(recipe) == digest
    # the same recipe written under options: or in a lora: section is the same unit
    options = {k: v for k, v in recipe.items() if k in ("r", "alpha", "dropout", "target_modules")}
    shared = {k: v for k, v in recipe.items() if k not in options}
    assert pinned({**shared, "options": options}) == pinned({**shared, "lora" if not recipe.get("tuner") == "qlora"
                                                             else "qlora": options}) == digest


@pytest.mark.parametrize("recipe, digest", [({"tuner": "lora", "r": 16, "alpha": 32, "epochs": 1}, "f202049d7abe3e19"),
                                            ({"tuner": "qlora", "dropout": 0.1}, "80567a5c956d2c23")])
def test_a_lora_config_keeps_its_hash(recipe, digest):
    raw = {"name": "x", "candidates": ["a"], "benchmarks": ["support_intents"], "recipe": recipe}
    assert build(BakeoffConfig, raw, "").hash() == digest  # computed on main at 0b00eff, before the split


@pytest.mark.parametrize("tuner, own", [("full", {}), ("freeze", {"freeze_keep_last": 3}),
                                        ("ia3", {"target_modules": ["k_proj", "v_proj"]})])
def test_lora_options_never_reach_another_tuners_key(pinned, tuner, own):
    plain = pinned({"tuner": tuner})
    assert pinned({"tuner": tuner, "lora": {"r": 64, "alpha": 128, "dropout": 0.2}}) == plain
    assert not {"r", "alpha", "dropout"} & set(build(RecipeConfig, {"tuner": tuner}, "recipe").key_fields())
    if own:  # the tuner's own options are in its key
        assert pinned({"tuner": tuner, **own}) != plain
    assert pinned({"tuner": "lora", "r": 64}) != pinned({"tuner": "lora"})


@pytest.mark.parametrize("recipe, options", [
    ({}, LoraOptions()),
    ({"tuner": "qlora", "r": 4}, LoraOptions(r=4)),
    ({"tuner": "ia3", "target_modules": "all-linear"}, IA3Options("all-linear")),
    ({"tuner": "freeze", "options": {"freeze_keep_last": 1}}, FreezeOptions(1)),
    ({"tuner": "freeze", "freeze": {"freeze_keep_last": 1}, "lora": {"r": 4}}, FreezeOptions(1)),
    ({"tuner": "full", "epochs": 3}, NoOptions()),
])
def test_the_recipe_holds_its_tuners_options_only(recipe, options):
    read = build(RecipeConfig, recipe, "recipe")
    assert read.options == options
    stored = dataclasses.asdict(read)  # as results.json keeps it: the chosen tuner's options under `options`
    assert stored["options"] == dataclasses.asdict(options) and build(RecipeConfig, stored, "recipe") == read


@pytest.mark.parametrize("recipe, message", [
    ({"tuner": "full", "r": 16}, "recipe.r: tuner full does not read r (an option of lora, qlora); remove it, "
                                 "or keep it in a `lora:` section"),
    ({"tuner": "lora", "freeze_keep_last": 1}, "recipe.freeze_keep_last: tuner lora does not read freeze_keep_last "
                                               "(an option of freeze)"),
    ({"tuner": "ia3", "alpha": 8}, "tuner ia3 does not read alpha (an option of lora, qlora)"),
    ({"tuner": "lora", "rr": 8}, "unknown key 'rr' in recipe; did you mean 'r'? (tuner lora's own options: alpha, "
                                 "dropout, r, target_modules; the shared ones: "),
    ({"tuner": "lora", "lroa": {"r": 8}}, "unknown key 'lroa' in recipe; did you mean 'lora'?"),
    ({"tuner": "full", "learing_rate": 1e-3}, "did you mean 'learning_rate'? (tuner full's own options: none;"),
    ({"tuner": "lora", "r": 8, "lora": {"r": 16}}, "recipe.lora.r is given twice (also as recipe.r); keep one"),
    ({"tuner": "full", "lora": {"rank": 8}}, "unknown key 'rank' in recipe.lora; known: alpha, dropout, r, "),
    ({"tuner": "lora", "r": 0}, "recipe.r must be positive (got 0)"),
    ({"tuner": "lora", "r": "eight"}, "recipe.r must be int, got str 'eight'"),
    ({"tuner": "freeze", "freeze_keep_last": -1}, "recipe.freeze_keep_last must be >= 0 (got -1)"),
    ({"tuner": "magic"}, "unknown tuner 'magic'; known: freeze, full, ia3, lora, qlora"),
])
def test_a_wrong_option_is_one_line_naming_the_key_and_the_tuner(recipe, message):
    with pytest.raises(ConfigError) as err:
        build(RecipeConfig, recipe, "recipe")
    assert message in err.value.message and "\n" not in err.value.message


def test_python_callers_give_options_of_the_chosen_tuner():
    assert RecipeConfig(tuner="freeze", options={"freeze_keep_last": 1}).options == FreezeOptions(1)
    with pytest.raises(ConfigError, match="recipe.options are LoraOptions, not tuner full's NoOptions"):
        dataclasses.replace(RecipeConfig(), tuner="full")
    assert dataclasses.replace(RecipeConfig(), tuner="full", options=None).options == NoOptions()


def test_run_and_validate_stop_on_an_option_the_tuner_does_not_read(tiny_config, capsys):
    """Exit 2 with one line naming the file, the key and the tuner, before any model loads or anything is written."""
    out = tiny_config.parent / "out"
    for argv in (["validate", str(tiny_config)], ["run", str(tiny_config), "--out", str(out)]):
        assert main([*argv, "recipe.tuner=full", "recipe.r=16"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(tiny_config) in err[0], err
        assert "recipe.r: tuner full does not read r" in err[0]
    assert not out.exists()
    # the same recipe with the LoRA options in their section is valid, and switching the tuner by override works
    assert main(["validate", str(tiny_config), "recipe.tuner=full", "recipe.lora.r=16"]) == 0


def test_a_stored_config_reads_back_the_same(tiny_config):
    cfg = load_config(tiny_config, ["recipe.tuner=freeze", "recipe.freeze_keep_last=1"])
    again = build(BakeoffConfig, {k: v for k, v in dataclasses.asdict(cfg).items() if k != "sweep"}, "")
    assert again == cfg and again.hash() == cfg.hash()
