"""A fragile recommendation does not look like a solid one (issue 26, point 2): the recommendation says how reliable
it is in words wherever it appears, reads as tentative below the config's recommendation_tentative_below (0.8) and
names what would settle it; the exit code does not change unless a gate asks for stability; with several
benchmarks, each benchmark's own pick stands beside the overall one."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.config import GateConfig, load_config
from harness.errors import ConfigError
from harness.gates.check import check, per_benchmark
from harness.results.finish import conclude
from harness.results.model import Results
from harness.storage.tracking import _reliability_tags
from reports.html import render_html
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.terminal import render_text
from tests.harness.test_stability import GATE, _cand
from tests.reports.sample import sample_results


def fragile() -> tuple[list[dict[str, Any]], list[GateConfig]]:
    """`small` sits on the gate (passes about half the resamples), `big` always passes."""
    return [_cand("small", 1, [1] * 61 + [0] * 39), _cand("big", 9, [1] * 90 + [0] * 10)], [GATE]


def test_a_fragile_recommendation_is_tentative_and_says_what_would_settle_it_but_still_passes():
    cands, gates = fragile()
    verdicts, choice, reason, agreement = conclude(cands, check(cands, gates), gates, 1000, 0)
    assert choice == "small" and agreement.share < 0.8  # the exit code comes from choice: unchanged
    assert agreement.reliability == "tentative" and agreement.tentative_below == 0.8
    assert agreement.settle.startswith("3 training seeds per candidate (recipe.seeds: 3; now 1), or about ")
    assert agreement.settle.endswith(" t test items instead of 100")
    sure = [_cand("sure", 1, [1] * 95 + [0] * 5)]
    assert conclude(sure, check(sure, gates), gates, 1000, 0)[3].reliability == "reliable"
    lax = conclude(cands, check(cands, gates), gates, 1000, 0, tentative_below=0.3)[3]  # the config's threshold
    assert lax.reliability == "reliable" and lax.settle == ""


def test_the_threshold_is_a_config_key():
    assert load_config(None, []).recommendation_tentative_below == 0.8
    assert load_config(None, ["recommendation_tentative_below=0.9"]).recommendation_tentative_below == 0.9
    assert load_config(None, ["recommendation_tentative_below=0.9"]).hash() != load_config(None, []).hash()
    with pytest.raises(ConfigError, match="recommendation_tentative_below must be in"):
        load_config(None, ["recommendation_tentative_below=0"])


def tentative_results() -> Results:
    raw = copy.deepcopy(sample_results())
    raw["recommendation_stability"] = 0.57
    raw["recommendation_agreement"] = {
        "share": 0.57, "held_fixed": [], "deciding_gate": "support_intents.accuracy >= 0.7", "margin_se": 0.2,
        "reliability": "tentative", "tentative_below": 0.8,
        "settle": "3 training seeds per candidate (recipe.seeds: 3; now 1), or about 4,020 support_intents test "
                  "items instead of 228",
        "per_benchmark": [{"benchmark": "support_intents", "candidate": "minilm-l6", "metric": "accuracy",
                           "value": 0.8289, "params": 22_792_334},
                          {"benchmark": "nli", "candidate": "gpt2-small", "metric": "accuracy", "value": 0.923,
                           "params": 124_439_808}]}
    return Results.from_json(raw)


SAYS = "tentative: recommended in only 57% of resamples of training seeds and test items (below 80%); to settle it: "


def test_every_report_says_a_recommendation_is_tentative_and_what_would_settle_it():
    results = tentative_results()
    line = next(x for x in render_text(results).splitlines() if x.startswith("Recommendation ["))
    assert line.startswith("Recommendation [PASS]: minilm-l6")
    text = " ".join(render_text(results).split())
    assert SAYS + "3 training seeds per candidate" in text and "about 4,020 support_intents test items" in text
    assert ("each benchmark alone would pick support_intents: minilm-l6 (accuracy 82.9, 22.8M); "
            "nli: gpt2-small (accuracy 92.3, 124.4M)") in text
    assert SAYS in render_markdown(results)
    html = render_html(results)
    assert '<div class="verdict pass tentative"><strong>PASS</strong>Recommendation: minilm-l6 (tentative)' in html
    junit = render_junit(results)
    assert 'name="recommendation_reliability" value="tentative: recommended in only 57%' in junit
    assert 'name="recommendation_per_benchmark" value="each benchmark alone would pick' in junit
    assert _reliability_tags(results) == {
        "sftbench.recommendation_reliability": "tentative (57% bootstrap agreement)",
        "sftbench.recommendation_settle": results.recommendation_agreement["settle"]}


def test_a_solid_recommendation_says_reliable():
    raw = tentative_results().to_json()
    raw["recommendation_stability"] = 0.96
    raw["recommendation_agreement"] |= {"share": 0.96, "reliability": "reliable", "settle": ""}
    results = Results.from_json(raw)
    assert "[reliable: recommended in 96% of resamples of training seeds and test items; deciding gate" in " ".join(
        render_text(results).split())
    assert '<div class="verdict pass"><strong>PASS</strong>Recommendation: minilm-l6 (reliable)' in render_html(results)
    assert _reliability_tags(results) == {"sftbench.recommendation_reliability": "reliable (96% bootstrap agreement)"}


def _two(name: str, params: int, t: list[int], u: list[int]) -> dict[str, Any]:
    cand = _cand(name, params, t)
    other = copy.deepcopy(cand["benchmarks"][0]) | {"benchmark": "u"}
    other["scores"]["test"]["accuracy"] |= {"value": sum(u) / len(u), "per_item": u}
    cand["benchmarks"].append(other)
    return cand


def test_each_benchmark_shows_its_own_pick_beside_the_overall_one():
    """The issue's trial: the small model fails the first task's gate and is clearly best on the second."""
    small = _two("small", 1, [1] * 40 + [0] * 60, [1] * 92 + [0] * 8)
    big = _two("big", 9, [1] * 80 + [0] * 20, [1] * 86 + [0] * 14)
    gates = [GATE, GateConfig(metric="u.accuracy", op=">=", value=0.6)]
    verdicts, choice, _, agreement = conclude([small, big], check([small, big], gates), gates, 200, 0)
    assert choice == "big"
    assert [(p["benchmark"], p["candidate"], p["value"]) for p in agreement.per_benchmark] == [
        ("t", "big", 0.8), ("u", "small", 0.92)]
    assert per_benchmark([small], check([small], gates), gates)[0]["candidate"] is None
    assert per_benchmark(*fragile()[:1], check(*fragile()), fragile()[1]) == []  # one benchmark: nothing beside
