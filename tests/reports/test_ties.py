"""Tie groups: sorted by the main metric in its own direction, a candidate joins the current group only when
it is not significantly different from that group's leader (not from its neighbour), and whatever cannot be
paired gets a group of its own with the reason."""
from __future__ import annotations

from harness.stats import mcnemar_exact
from reports.ties import ALPHA, all_tie_groups, ranked, tie_groups
from tests.reports.sample import sample_results

N = 400


def right_on(*spans: tuple[int, int]) -> list[float]:
    return [float(any(a <= i < b for a, b in spans)) for i in range(N)]


def results_with(per_item: dict[str, list[float]], metric: str = "accuracy", shas: dict[str, str] | None = None,
                 values: dict[str, float] | None = None) -> dict:
    cands = []
    for name, items in per_item.items():
        value = (values or {}).get(name, sum(items) / max(len(items), 1))
        entry = {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05, "n": len(items),
                 "per_item": items}
        cands.append({"name": name, "status": "ok", "benchmarks": [
            {"benchmark": "b", "status": "ok", "data_sha256": {"test": (shas or {}).get(name, "t")},
             "scores": {"test": {metric: entry}}}]})
    return {"candidates": cands, "config": {"bootstrap_resamples": 500, "recipe": {"seed": 0}}}


def test_sample_groups_and_order():
    results = sample_results()
    (ties,) = all_tie_groups(results)
    assert (ties.benchmark, ties.metric) == ("support_intents", "accuracy")
    assert ties.order == ["minilm-l6", "gpt2-small", "smollm2-135m"]  # the failed candidate has no score
    assert ties.group == {"minilm-l6": 1, "gpt2-small": 1, "smollm2-135m": 2}
    assert ties.notes == []
    assert [c["name"] for c in ranked(results, [ties])] == ["minilm-l6", "gpt2-small", "smollm2-135m", "broken"]


def test_a_candidate_is_tested_against_the_group_leader_not_its_neighbour():
    a, b, c = right_on((0, 240)), right_on((0, 200), (300, 325)), right_on((0, 160), (300, 325), (330, 355))
    assert mcnemar_exact(a, b)[2] > ALPHA and mcnemar_exact(b, c)[2] > ALPHA  # each ties with its neighbour
    assert mcnemar_exact(a, c)[2] < ALPHA  # but c is worse than the leader
    ties = tie_groups(results_with({"c": c, "a": a, "b": b}), "b", "accuracy")
    assert ties.order == ["a", "b", "c"]
    assert ties.group == {"a": 1, "b": 1, "c": 2}


def test_lower_is_better_sorts_ascending():
    rng_items = {"low": [1.0 + 0.01 * (i % 7) for i in range(N)], "high": [3.0 + 0.01 * (i % 5) for i in range(N)]}
    ties = tie_groups(results_with(rng_items, metric="loss"), "b", "loss")
    assert ties.order == ["low", "high"]
    assert ties.group == {"low": 1, "high": 2}
    assert ties.notes == ["loss: groups compare the unweighted per-item mean, not the loss shown"]


def test_corpus_metric_is_compared_on_sentence_scores_and_says_so():
    per_item = {"x": [20.0 + (i % 3) for i in range(N)], "y": [20.0 + (i % 4) for i in range(N)]}
    ties = tie_groups(results_with(per_item, metric="bleu", values={"x": 25.0, "y": 24.0}), "b", "bleu")
    assert ties.order == ["x", "y"]  # sorted by the corpus score shown, not the sentence mean
    assert ties.notes == ["bleu: groups compare the mean of sentence-level bleu, not the bleu shown"]


def test_what_cannot_be_paired_gets_its_own_group_with_the_reason():
    same = right_on((0, 200))
    ties = tie_groups(results_with({"a": same, "short": same[:300]}, values={"short": 0.4}), "b", "accuracy")
    assert ties.group == {"a": 1, "short": 2}
    assert "not paired" in ties.notes[0] and "300" in ties.notes[0]
    ties = tie_groups(results_with({"a": same, "other": list(same)}, shas={"other": "u"}), "b", "accuracy")
    assert ties.group == {"a": 1, "other": 2}
    assert ties.notes == ["other was scored on other test data than a: not paired, own group"]
    ties = tie_groups(results_with({"a": same, "twin": list(same)}), "b", "accuracy")
    assert ties.group == {"a": 1, "twin": 1}  # identical items: the same group


def test_a_metric_no_longer_registered_ranks_nothing_and_says_why():
    ties = tie_groups(results_with({"a": right_on((0, 9))}, metric="retired"), "b", "retired")
    assert (ties.order, ties.group) == ([], {}) and "no longer a registered metric" in ties.notes[0]


def test_empty_results():
    assert all_tie_groups({"candidates": []}) == []
    assert ranked({"candidates": []}, []) == []
