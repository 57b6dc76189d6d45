"""Forgetting is measured, not assumed: SmolLM2-135M knows real facts (known_1000, Meng et al.'s ROME
set), an aggressive recipe on a narrow task makes it forget them, a gentle one barely does.

The probe: 4-way multiple choice built from ../shared/data/knowns/known_1000.json. Each fact's `prompt`
is the context, its `attribute` the answer, and three distractors are attributes of other facts with the
SAME relation_id (so "... is located in the continent of" is answered with continents only). The 127
facts whose relation has fewer than three other distinct attributes are skipped (1,082 remain); a fixed
seed picks 200. Both runs go through the real pipeline (`sftbench run`) on the bundled support_intents
benchmark, capped small. About 6 to 8 minutes on 2 CPU cores.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import shared_data

pytestmark = pytest.mark.integration

N_ITEMS = 200
SEED = 0
# Full fine-tuning at a high learning rate: every weight moves, and fast.
AGGRESSIVE = "tuner: full, learning_rate: 1e-3, epochs: 1"
# The README's default kind of recipe, at a low learning rate: only q/v LoRA adapters move, slowly.
GENTLE = "tuner: lora, learning_rate: 1e-4, epochs: 1"


def knowns_items(path: Path, n: int, seed: int) -> list[dict]:
    facts = json.loads(path.read_text())
    by_relation: dict[str, set[str]] = {}
    for fact in facts:
        by_relation.setdefault(fact["relation_id"], set()).add(fact["attribute"])
    rng = random.Random(seed)
    items = []
    for fact in facts:
        pool = sorted(by_relation[fact["relation_id"]] - {fact["attribute"]})  # sorted: set order is not stable
        if len(pool) < 3:
            continue
        items.append({"prompt": fact["prompt"], "answer": fact["attribute"], "distractors": rng.sample(pool, 3),
                      "relation_id": fact["relation_id"]})
    return rng.sample(items, n)


@pytest.fixture(scope="module")
def knowns_probe(tmp_path_factory) -> Path:
    source = shared_data("knowns", "known_1000.json")
    folder = tmp_path_factory.mktemp("knowns")
    items = knowns_items(source, N_ITEMS, SEED)
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (folder / "probe.yaml").write_text("name: knowns\nversion: 1\nkind: multiple_choice\ndata: items.jsonl\n")
    return folder / "probe.yaml"


def run_recipe(folder: Path, probe: Path, name: str, recipe: str) -> dict:
    """One real bake-off of SmolLM2 with `recipe`; returns the benchmark entry of results.json."""
    cfg = folder / f"{name}.yaml"
    # bf16 off: the pipeline's "before" must equal a plain fp32 score on any CPU
    cfg.write_text(f"""
name: forgetting-{name}
candidates: [{{model: smollm2-135m}}]
recipe: {{{recipe}, batch_size: 8, max_length: 128, seed: 0, bf16: "off"}}
benchmarks:
  - {{spec: support_intents, max_train: 64, max_validation: 16, max_test: 24}}
probes: ["{probe}"]
bootstrap_resamples: 200
""")
    code = main(["run", str(cfg), "--out", str(folder / name), "--quiet"])
    results = json.loads((folder / name / "results.json").read_text())
    bench = results["candidates"][0]["benchmarks"][0]
    # At these caps (120 rows, 24 test items) a recipe may stay at chance on the task: the run then says "did not
    # learn" and exits 1 with no recommendation. This test is about forgetting, which is measured either way.
    assert code == (0 if bench["learned"] else 1) and bench["status"] == "ok", (code, bench["reason"],
                                                                                bench["learned_reason"])
    return bench


@pytest.fixture(scope="module")
def aggressive(knowns_probe, tmp_path_factory) -> dict:
    return run_recipe(tmp_path_factory.mktemp("aggressive"), knowns_probe, "aggressive", AGGRESSIVE)


@pytest.fixture(scope="module")
def gentle(knowns_probe, tmp_path_factory) -> dict:
    return run_recipe(tmp_path_factory.mktemp("gentle"), knowns_probe, "gentle", GENTLE)


def test_items_are_four_way_within_one_relation(knowns_probe):
    items = [json.loads(line) for line in (knowns_probe.parent / "items.jsonl").read_text().splitlines()]
    assert len(items) == N_ITEMS and len({i["prompt"] for i in items}) == N_ITEMS
    for item in items:
        assert len(set(item["distractors"])) == 3 and item["answer"] not in item["distractors"]
    assert items == knowns_items(shared_data("knowns", "known_1000.json"), N_ITEMS, SEED)  # deterministic


@pytest.fixture(scope="module")
def base_score(knowns_probe):
    from harness.config import SuiteRef
    from harness.models.loading import load_model, load_tokenizer, resolve
    from harness.scoring.probes import load_probe, score_probe

    spec, items, _ = load_probe(SuiteRef(str(knowns_probe)), knowns_probe.parent)
    handle = resolve("smollm2-135m")
    return score_probe(spec, items, load_model(handle), load_tokenizer(handle))


def test_base_model_knows_the_facts(base_score):
    # measured 0.725 (145/200); chance is 0.25
    assert base_score.accuracy > 0.55, base_score.accuracy


def test_aggressive_recipe_forgets(aggressive, base_score):
    probe = aggressive["probes"][0]
    assert probe["probe"] == "knowns" and probe["n"] == N_ITEMS
    # the pipeline's "before" is the untouched base model
    assert probe["per_item"]["before"] == base_score.correct
    forgetting = probe["forgetting"]
    # measured 0.305 [0.245, 0.375]: 66 facts forgotten, 5 gained
    assert forgetting["value"] > 0.15 and forgetting["ci_low"] > 0, forgetting
    assert probe["forgotten"] > probe["gained"] and probe["mcnemar_p"] < 0.01


def test_gentle_recipe_forgets_less(aggressive, gentle):
    strong, mild = aggressive["probes"][0]["forgetting"], gentle["probes"][0]["forgetting"]
    assert gentle["probes"][0]["per_item"]["before"] == aggressive["probes"][0]["per_item"]["before"]
    # measured 0.0 [0.0, 0.0] against 0.305
    assert mild["value"] < strong["value"] - 0.1, (mild, strong)
    assert mild["ci_high"] < strong["ci_low"], (mild, strong)
