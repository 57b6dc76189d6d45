"""Adaptive seeds in the config (`recipe.seeds: {min, max, stability}`, `budget: {units: N}`) and `sftbench plan`
(harness/results/forecast.py): bad input is one line naming the key, exit 2, before any model loads."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.config import AdaptiveSeeds, load_config
from harness.errors import ConfigError
from harness.results.forecast import forecast

DEMO_SEEDS = ["recipe.seeds={min: 2, max: 5}", "sweep.learning_rate=[1e-3, 3e-3]"]


def test_seeds_as_a_mapping_are_adaptive_and_counts_and_lists_keep_their_meaning():
    cfg = load_config(None, ["recipe.seeds={min: 2, max: 5, stability: 0.9}", "budget={units: 12}"])
    assert cfg.recipe.adaptive == AdaptiveSeeds(2, 5, 0.9) and cfg.budget.units == 12
    assert cfg.recipe.seed_values == [0, 1, 2, 3, 4]  # the full grid; an adaptive run trains a prefix per arm
    assert load_config(None, ["recipe.seeds=3"]).recipe.seed_values == [0, 1, 2]
    assert load_config(None, ["recipe.seeds=[4, 7]"]).recipe.seed_values == [4, 7]
    assert load_config(None, ["recipe.seeds=3"]).recipe.adaptive is None
    assert load_config(None, []).hash() == load_config(None, ["budget={}"]).hash()  # no budget: the old hash
    adaptive = load_config(None, ["recipe.seeds={min: 2, max: 5}", "budget={units: 12}"])
    hours = load_config(None, ["recipe.seeds={min: 2, max: 5}", "budget={units: 12, device_hours: 1.5}"])
    assert hours.budget.device_hours == 1.5 and hours.hash() != adaptive.hash()


@pytest.mark.parametrize("override, message", [
    ("recipe.seeds={min: 1}", "recipe.seeds.min must be at least 2"),
    ("recipe.seeds={min: 4, max: 3}", "recipe.seeds.max must be at least recipe.seeds.min"),
    ("recipe.seeds={stability: 1.5}", "recipe.seeds.stability must be in (0, 1)"),
    ("recipe.seeds={mn: 2}", "unknown key 'mn' in recipe.seeds"),
    ("budget={units: 10}", "budget.units needs adaptive seeds"),
    ("budget={units: 0}", "budget.units must be at least 1"),
    ("budget={device_hours: 0}", "budget.device_hours must be above 0"),
    ("budget={device_hours: 2}", "budget.device_hours needs adaptive seeds"),
    ("budget={gpu_hours: 2}", "unknown key 'gpu_hours' in budget"),
])
def test_a_bad_seeds_or_budget_key_is_one_line_naming_it(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_a_budget_below_the_first_round_is_refused_by_validate_with_exit_2(capsys):
    assert main(["validate", "recipe.seeds={min: 2, max: 5}", "budget={units: 3}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "budget.units 3 is below the first round's 4 fine-tunes" in err[0]


def test_plan_on_the_demo_says_it_trains_the_full_grid_and_why_no_stability(capsys, tmp_path):
    assert main(["plan", "--store", str(tmp_path / "runs.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "expected fine-tunes 2.0 of the full grid's 2" in out
    assert "stability not estimated: with one seed" in out and "assumed values: seed sd 0.05" in out


def test_plan_on_a_config_with_adaptive_seeds_predicts_fewer_fine_tunes_than_the_grid(capsys, tmp_path):
    assert main(["plan", *DEMO_SEEDS, "--store", str(tmp_path / "runs.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "of the full grid's 20" in out and "chance of a stable recommendation (stability >= 0.95" in out
    units = float(out.split("expected fine-tunes ")[1].split()[0])
    assert 8 <= units < 20


def stored_run(levels: dict[str, float], sd: float, sweep: dict[str, list[float]] | None = None,
               did_not_learn: tuple[str, ...] = ()) -> dict:
    """A stored run's results.json: each candidate's test level with 3 seeds; sweep: each candidate's validation mean
    per setting of DEMO_SEEDS' sweep (1e-3, 3e-3)."""
    return {"run_id": "r1", "candidates": [
        {"name": name, "params": params, "did_not_learn": ["support_intents"] if name in did_not_learn else [],
         "benchmarks": [{"benchmark": "support_intents", "status": "ok", "scores": {
             "test": {"accuracy": {"value": value, "seed_sd": sd, "seeds": [value] * 3}}},
             "sweep": [{"learning_rate": lr, "epochs": 1, "seeds": [v] * 3}
                       for lr, v in zip((1e-3, 3e-3), (sweep or {}).get(name, []))]}]}
        for (name, value), params in zip(levels.items(), (135e6, 22e6))]}


def test_plan_reads_levels_and_the_seed_sd_from_the_stored_run():
    cfg = load_config(None, DEMO_SEEDS)
    far = forecast(cfg, {"support_intents": 228}, stored_run({"smollm2-135m": 0.68, "minilm-l6": 0.77}, 0.02))
    assert "run r1: levels smollm2-135m 0.68, minilm-l6 0.77; seed sd 0.02 pooled over 6 stored seeds" in far.source
    # MiniLM, the smaller, passes the 0.6 gate by 17 points: it settles after the first round and SmolLM2 is not
    # needed, so about 8 fine-tunes (2 seeds x 2 settings x 2 candidates)
    assert far.units <= 9 and far.right > 0.95


def test_plan_holds_a_candidate_that_did_not_learn_failing_as_the_run_does():
    """The real run of 7 Dec 2026 (48 training rows): neither model learned, every arm stopped after its 2 seeds, 8
    fine-tunes. The old forecast drew both as learning and predicted 10.8."""
    cfg = load_config(None, DEMO_SEEDS)
    stored = stored_run({"smollm2-135m": 0.45, "minilm-l6": 0.20}, 0.03, did_not_learn=("smollm2-135m", "minilm-l6"))
    far = forecast(cfg, {"support_intents": 228}, stored, trials=20)
    assert far.units == 8.0 and "smollm2-135m did not learn (held failing)" in far.source


def test_plan_reads_each_settings_distance_on_validation_from_the_stored_sweep():
    """A setting far behind on validation leaves the plan after the first round; one level with its best: both go
    on. The assumed gap (4 points) lies between."""
    cfg = load_config(None, [*DEMO_SEEDS, "gates=[{metric: support_intents.accuracy, op: '>=', value: 0.7}]"])
    levels = {"smollm2-135m": 0.72, "minilm-l6": 0.72}
    far = forecast(cfg, {"support_intents": 228}, stored_run(levels, 0.05, {n: [0.72, 0.30] for n in levels}),
                   trials=30)
    near = forecast(cfg, {"support_intents": 228}, stored_run(levels, 0.05, {n: [0.72, 0.72] for n in levels}),
                    trials=30)
    assert "setting gaps on validation from its sweep table" in far.source
    assert far.units + 4 <= near.units, (far.units, near.units)
