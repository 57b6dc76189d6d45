"""The leaderboard rendered into a fixed-width, colourless console equals the golden text; it stays ASCII and
within the console width, moves cost to a table of its own when narrow, names failing gates of any kind, and
prints data as data (never as rich markup)."""
from __future__ import annotations

import copy
import io
import os
from pathlib import Path

from rich.console import Console

from reports.terminal import render
from tests.reports.sample import sample_results, typed

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.txt"


def rendered(width: int, results: dict | None = None) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    render(typed(results or sample_results()), console)
    return console.file.getvalue()


def test_leaderboard_matches_golden_text():
    text = rendered(120)
    if os.environ.get("SFTBENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_plain_ascii_and_width_aware():
    for width in (60, 80, 120, 200):
        text = rendered(width)
        assert text.isascii(), "box characters must survive CI logs"
        assert max(len(line) for line in text.splitlines()) <= width
    wide, narrow = rendered(200), rendered(120)
    assert "cost\n+" not in wide and "| 134.5M params |" in wide  # one table, cost in a column
    assert "\ncost" in narrow and "| smollm2-135m | 134.5M |    0.5M |" in narrow  # cost in a table of its own


def test_rows_follow_the_tie_groups_with_a_rule_between_groups():
    lines = rendered(200).splitlines()
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and line.split("|")[1].strip()]
    assert rows[1:] == ["minilm-l6", "gpt2-small", "smollm2-135m", "broken"]  # rows[0] is the header
    rules = [i for i, line in enumerate(lines) if line.startswith("+-")]
    starts = {name: next(i for i, line in enumerate(lines) if line.startswith(f"| {name} ")) for name in rows[1:]}
    assert any(starts["gpt2-small"] < r < starts["smollm2-135m"] for r in rules)  # group 1 | group 2
    assert not any(starts["minilm-l6"] < r < starts["gpt2-small"] for r in rules)  # same group, no rule
    text = "\n".join(lines)
    assert text.count("group 1") == 2 and text.count("group 2") == 1
    assert "not significant at 0.05" in text and "McNemar exact" in text  # the rule is stated


def test_bias_change_column_and_note():
    text = rendered(200)
    assert "bias change" in text and "intent_bias:" in text
    assert "2.5 [-1.6, 6.6]" in text and "-0.8 [-4.1, 2.5]" in text
    assert "encoders are skipped" in text
    results = sample_results()
    results["config"]["bias"] = []
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            b["bias"] = []
    quiet = rendered(200, results)
    assert "bias change: not measured (no bias suite in the config)" in quiet and "flip pts" not in quiet


def test_gate_column_names_the_failing_gate_of_any_kind():
    results = sample_results()
    results["gates"] += [{"candidate": "smollm2-135m", "gate": "forgetting <= 2 pts", "passed": False,
                          "observed": 0.05, "message": "forgetting 5.0 pts exceeds the cap"}]
    text = rendered(200, results)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| smollm2-135m"))
    assert [lines[at].split("|")[-2].strip(), lines[at + 1].split("|")[-2].strip()] == \
        ["FAIL", "support_intents.accuracy >= 0.7 (+1 more)"]  # the first failing gate, and how many more
    assert "smollm2-135m: FAIL forgetting <= 2 pts (forgetting 5.0 pts exceeds the cap)" in text
    assert "run failed" in text  # the crashed candidate says why it cannot pass


def test_no_candidate_passes_says_so_and_why():
    results = sample_results()
    results.update(passed=False, recommendation=None,
                   recommendation_reason="no candidate passes every gate: minilm-l6: bias <= 0 (flip rate up)")
    text = rendered(120, results)
    assert text.rstrip().endswith("Recommendation [FAIL]: no candidate passes every gate: minilm-l6: bias <= 0 (flip "
                                  "rate up)")


def test_names_are_data_not_markup():
    results = copy.deepcopy(sample_results())
    results["candidates"][1]["name"] = "[bold red]x[/] <b>"
    results["recommendation_reason"] = "[/] is not a tag"
    text = rendered(200, results)
    assert "[bold red]x[/] <b>" in text and "[/] is not a tag" in text


def test_the_setting_each_candidate_was_tuned_with_is_shown_where_they_differ():
    """BenchmarkRow.epochs (the worked example of adding a field: the model, assemble, reports/format.py)."""
    import copy

    from reports.format import setting_lines
    from tests.reports.sample import sample_results, typed

    d = copy.deepcopy(sample_results())
    assert setting_lines(typed(d)) == []  # a run written before the field: nothing to say
    for i, c in enumerate(d["candidates"]):
        c["benchmarks"][0] |= {"learning_rate": 1e-3, "epochs": 1 + i}
    lines = setting_lines(typed(d))
    assert lines[0] == f"{d['candidates'][0]['name']} / support_intents: tuned with lr 0.001 for 1 epoch"
    assert lines[1].endswith("tuned with lr 0.001 for 2 epochs")
    assert len(lines) == sum(c["benchmarks"][0]["status"] == "ok" for c in d["candidates"])
