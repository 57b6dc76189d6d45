"""The plan of units and the local executor (no Ray): what units a bake-off is made of, in which order, with which
inputs and keys; a failing unit fails its candidate's benchmark only; an executor is one registration."""
from __future__ import annotations

import dataclasses

import pytest

from harness.storage.units import UnitCache
from harness.config import ExecutorConfig, load_config
from harness.models.device import resolve
from harness.errors import ConfigError
from harness.execution import EXECUTORS, Failure, executor_for
from harness.execution.compute import QUIET, Context
from harness.execution.local import LocalExecutor
from harness.execution.plan import plan
from harness.execution.suites import load_suites, resolve_all
from harness.run import candidates


def planned(cfg_path, *overrides):
    cfg = load_config(cfg_path, list(overrides))
    suites = load_suites(cfg)
    handles = resolve_all(cfg, QUIET)
    return cfg, Context(cfg, suites, handles), plan(cfg, suites, handles, resolve("cpu", cfg.recipe.bf16))


def test_a_sweep_under_two_seeds_is_one_tune_unit_per_setting_and_seed(tiny_config):
    cfg, _, p = planned(tiny_config, "sweep.learning_rate=[1e-3, 5e-3]", "recipe.seeds=2", "bias=[]")
    llama = [u for u in p.units if u.candidate == "tiny-llama"]
    kinds = [u.kind for u in llama]
    # the base model's probe first, then 2 settings x 2 seeds, one select, then per seed: 2 splits + 1 probe
    assert kinds == ["probe", "tune", "tune", "tune", "tune", "select", "score", "score", "probe", "score", "score",
                     "probe"]
    tunes = [u for u in llama if u.kind == "tune"]
    assert [(u.seed, u.learning_rate) for u in tunes] == [(0, 1e-3), (0, 5e-3), (1, 1e-3), (1, 5e-3)]
    assert len({u.key for u in tunes}) == 4 and all(u.key and u.key.startswith("tune-") for u in tunes)
    select = next(u for u in llama if u.kind == "select")
    assert select.inputs == tuple(u.id for u in tunes) and select.key is None
    for u in (u for u in llama if u.kind in ("score", "probe") and u.tuned):
        # it reads the select unit and its own seed's settings; its key comes from the setting selected
        assert u.inputs[0] == select.id and u.key is None
        assert {t.seed for t in tunes if t.id in u.inputs[1:]} == {u.seed}
    base = llama[0]
    assert base.kind == "probe" and not base.tuned and base.key and not base.inputs
    assert len({u.id for u in p.units}) == len(p.units)  # ids are unique


def test_a_tune_key_does_not_depend_on_the_sweep_around_it(tiny_config):
    """The same setting is the same unit alone and inside a sweep (kept units are shared between the two)."""
    _, _, alone = planned(tiny_config, "sweep.learning_rate=[2e-2]")
    _, _, swept = planned(tiny_config, "sweep.learning_rate=[1e-3, 2e-2]")
    assert {u.key for u in alone.units if u.kind == "tune"} < {u.key for u in swept.units if u.kind == "tune"}


def test_zero_shot_rows_and_encoders_plan_what_applies(tiny_config):
    _, _, p = planned(tiny_config, "zero_shot=true", "bias=[]")
    zero = [u for u in p.units if u.candidate == "tiny-llama-zero-shot"]
    assert [u.kind for u in zero] == ["probe", "zero-shot", "score", "score"]  # its "after" is its "before"
    assert all(u.key for u in zero)  # nothing is selected: every key is known when planned
    bert_zero = next(b for b in p.benches if b.candidate == "tiny-bert-zero-shot")
    assert "n/a for an encoder" in bert_zero.na and not [u for u in p.units if u.candidate == "tiny-bert-zero-shot"]


def test_the_plan_carries_each_units_recipe_suite_and_key(tiny_config):
    """What a unit needs is in the plan: its seed's recipe, its suite, its key when the plan knows it; a benchmark
    plan names each unit by the suite or split it scores, and lists only the suites that apply to the model."""
    from harness.execution.plan import scoring_unit_key
    from harness.execution.plan import group_recipe

    cfg, ctx, p = planned(tiny_config, "recipe.seeds=2")
    units = p.by_id()
    for u in p.units:
        assert u.recipe == group_recipe(cfg, ctx.candidate(u.candidate), u.seed) and u.recipe.seed == u.seed
    llama = next(b for b in p.benches if b.candidate == "tiny-llama")
    assert [r.seed for r in llama.recipes] == [0, 1]
    assert list(llama.base_probes) == ["general_knowledge"]  # the causal LM's probe; paraphrase is an encoder's
    assert list(llama.base_bias) == ["intent_bias"] and all(list(b) == ["intent_bias"] for b in llama.bias)
    for suite, uid in [*llama.base_probes.items(), *llama.base_bias.items()]:
        unit = units[uid]
        assert unit.suite == suite and not unit.tuned
        assert unit.key == scoring_unit_key(unit, ctx.handles["tiny-llama"].weights_hash, ctx.suites,
                                            cfg.bootstrap_resamples)
    for seed, per_split in zip((0, 1), llama.scores):
        assert list(per_split) == ["test", "shifted"]
        assert all(units[i].split == s and units[i].seed == seed and units[i].key is None for s, i in per_split.items())
    bert = next(b for b in p.benches if b.candidate == "tiny-bert")
    assert list(bert.base_probes) == ["paraphrase_probe"] and not bert.base_bias and bert.bias == ({}, {})


def test_a_suite_listed_twice_is_an_error_naming_it(tiny_config):
    with pytest.raises(ConfigError, match="probe 'general_knowledge' is listed twice"):
        planned(tiny_config, "probes=[general_knowledge, general_knowledge]")


def test_a_failing_unit_fails_its_benchmark_names_the_unit_and_skips_the_rest(tiny_config, monkeypatch):
    import harness.execution.compute as compute

    cfg, ctx, p = planned(tiny_config, "probes=[]", "bias=[]")
    real = compute.fit

    def fit(model, train, val, recipe, learning_rate, *args, **kwargs):
        if learning_rate == 1e-3:  # tiny-llama's setting (tiny-bert tunes at 5e-3)
            raise RuntimeError("loss became nan")
        return real(model, train, val, recipe, learning_rate, *args, **kwargs)

    monkeypatch.setattr(compute, "fit", fit)
    outputs = LocalExecutor().execute(p, ctx, UnitCache(None), QUIET)
    llama = [u for u in p.units if u.candidate == "tiny-llama"]
    tune = next(u for u in llama if u.kind == "tune")
    assert isinstance(outputs[tune.id], Failure)
    assert "loss became nan" in outputs[tune.id].message and tune.id in outputs[tune.id].message
    after = llama[llama.index(tune) + 1:]
    assert after and all(isinstance(outputs[u.id], Failure) and "not run" in outputs[u.id].message for u in after)
    results = {c.name: c for c in candidates(p, outputs, ctx, UnitCache(None))}
    assert results["tiny-llama"].status == "failed" and tune.id in results["tiny-llama"].reason
    assert results["tiny-bert"].status == "ok"  # the other candidate is untouched


def test_an_executor_is_one_registration(tiny_config):
    from harness.execution.ray_tasks import RayExecutor

    assert set(EXECUTORS) == {"local", "ray"}
    assert isinstance(executor_for(ExecutorConfig()), LocalExecutor)
    assert isinstance(executor_for(ExecutorConfig(kind="ray")), RayExecutor)  # Ray itself loads when it runs
    with pytest.raises(ConfigError, match="executor.kind must be one of local, ray"):
        executor_for(ExecutorConfig(kind="slurm"))


def test_the_executor_is_not_part_of_the_config_hash(tiny_config):
    cfg = load_config(tiny_config)
    moved = dataclasses.replace(cfg, executor=ExecutorConfig(kind="ray", address="auto", units="/shared/units"))
    assert moved.hash() == cfg.hash()
    with pytest.raises(ConfigError, match="num_gpus must be zero or more"):
        load_config(tiny_config, ["executor.resources.tune.num_gpus=-1"])
