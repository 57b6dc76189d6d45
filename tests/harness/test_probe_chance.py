"""A probe whose base score does not beat its chance is flagged as uninformative for that model (issue 26, point 3):
chance beside before and after in the reports, and a forgetting cap that reads it says so."""
from __future__ import annotations

import copy

from harness.gates.check import check_cap
from harness.results.model import Results
from harness.scoring.probes import ProbeItem, ProbeScore, ProbeSpec, forgetting_report, probe_chance
from reports.format import learning_lines
from tests.harness.test_gate import gate
from tests.harness.test_store import make_results

SPEC = ProbeSpec("paraphrase_probe", "1", "paraphrase", "p.yaml", "p.jsonl")


def items(n: int, distractors: int = 3) -> list[ProbeItem]:
    return [ProbeItem(f"q{i}", "a", tuple(f"d{j}" for j in range(distractors))) for i in range(n)]


def test_chance_is_a_uniform_guess():
    assert probe_chance(items(10, 3)) == 0.25 and probe_chance(items(4, 1)) == 0.5
    assert probe_chance(items(5, 0)) == 0.0  # a cloze: free generation


def test_a_base_model_below_chance_makes_the_probe_uninformative():
    """The issue's MiniLM: 26 of 166 right before (15.7%, chance 25%), none after."""
    n = 166
    before = ProbeScore([1] * 26 + [0] * (n - 26), [0.0] * n)
    after = ProbeScore([0] * n, [0.0] * n)
    report = forgetting_report(SPEC, items(n), before, after, "h")
    assert report["chance"] == 0.25 and report["informative"] is False
    knows = ProbeScore([1] * 131 + [0] * (n - 131), [0.0] * n)  # 79%: SmolLM2's knowledge probe
    assert forgetting_report(SPEC, items(n), knows, after, "h")["informative"] is True
    near = ProbeScore([1] * 45 + [0] * (n - 45), [0.0] * n)  # 27%: above chance, not shown above it
    assert forgetting_report(SPEC, items(n), near, after, "h")["informative"] is False


def uninformative_results() -> dict:
    results = make_results(accuracies={"small": 0.8}, n=40)
    probe = results["candidates"][0]["benchmarks"][0]["probes"][0]
    probe |= {"before": {"value": 0.157, "ci_low": 0.11, "ci_high": 0.22}, "after": {"value": 0.0, "ci_low": 0.0,
                                                                                    "ci_high": 0.02},
              "forgetting": {"value": 0.157, "ci_low": 0.1, "ci_high": 0.21}, "chance": 0.25, "informative": False}
    return results


def test_a_forgetting_cap_on_an_uninformative_probe_says_so_without_changing_its_verdict():
    cand = uninformative_results()["candidates"][0]
    for raw, passed in (({"forgetting": "*", "max": 0.2}, True), ({"forgetting": "general_knowledge", "max": 0.1},
                                                                    False)):
        v = check_cap(cand, gate(**raw))
        assert v.passed is passed and v.observed == 0.157
        assert v.message.endswith("; intents/general_knowledge is uninformative for small: base 15.7% is not above "
                                  "chance 25.0% (after 0.0%)")
    informative = copy.deepcopy(cand)
    informative["benchmarks"][0]["probes"][0]["informative"] = True
    assert "uninformative" not in check_cap(informative, gate(forgetting="*", max=0.2)).message


def test_the_reports_show_chance_beside_before_and_after():
    lines = learning_lines(Results.from_json(uninformative_results()))
    assert ("small / general_knowledge: uninformative probe for this model: base 15.7% is not above chance 25.0% "
            "(after 0.0% on intents); its forgetting says little") in lines
