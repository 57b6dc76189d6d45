"""summary.md as a pull-request comment: one narrow table (candidate, main metric, difference against the baseline
with its adjusted p, forgetting, gate) and the recommendation in view, everything else in <details> blocks; the
whole page equals the golden file (regenerate it deliberately: SFTBENCH_REGOLD=1)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from reports.markdown import render_markdown
from tests.reports.sample import sample_results, typed

GOLDEN = Path(__file__).parent / "golden" / "summary.md"
WIDTH = 120  # a pull-request comment column shows about this many characters without a sideways scroll


def with_baseline_gates() -> dict:
    """The sample run with a non-inferiority gate against a promoted baseline on two candidates."""
    results = sample_results()
    gate = "support_intents.accuracy vs baseline (margin 0.02)"
    results["gates"] += [
        {"candidate": "minilm-l6", "gate": gate, "passed": True, "observed": 0.0132, "message": "non-inferior: ...",
         "p_adjusted": 0.91, "baseline": "minilm-l6 of run 20261120-000000-aaaaaa", "metric": "accuracy"},
        {"candidate": "gpt2-small", "gate": gate, "passed": False, "observed": -0.0614, "message": "regression <x>",
         "p_adjusted": 0.0031, "baseline": "minilm-l6 of run 20261120-000000-aaaaaa", "metric": "accuracy"}]
    return results


def top(md: str) -> str:
    """What a reader sees before opening anything: the page up to the first <details>."""
    return md[:md.index("<details>")]


def test_summary_matches_golden():
    md = render_markdown(typed(with_baseline_gates()))
    if os.environ.get("SFTBENCH_REGOLD"):
        GOLDEN.write_text(md)
    assert md == GOLDEN.read_text()


def test_one_narrow_table_then_the_recommendation_in_view():
    md = render_markdown(typed(with_baseline_gates()))
    shown = top(md)
    table = [line for line in shown.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4 and all(len(line) <= WIDTH for line in table), max(map(len, table))
    assert table[0] == ("| candidate | support\\_intents accuracy % [95% CI] | Δ vs baseline (adj. p) "
                        "| forgetting pts [95% CI] | gate |")
    rows = {line.split(" | ")[0][2:]: line for line in table[2:]}
    assert rows["minilm-l6"].endswith("| 82.9 [77.5, 87.2] | +1.3 pts (p 0.91) "
                                      "| general\\_knowledge: 1.2 [-3.0, 6.0] | pass |")
    assert "| -6.1 pts (p 0.0031) |" in rows["gpt2-small"] and rows["gpt2-small"].endswith("| **FAIL** |")
    assert "| - |" in rows["smollm2-135m"] and rows["broken"].startswith("| broken | failed | - | - | **FAIL** |")
    assert "**Recommendation [PASS]:** minilm-l6 is the smallest candidate" in shown
    assert "train tok/s" not in shown and "Tie groups" not in shown  # the wide table and the notes are collapsed


def test_everything_else_is_in_balanced_details_blocks():
    md = render_markdown(typed(with_baseline_gates()))
    rest = md[len(top(md)):]
    assert md.count("<details>") == md.count("</details>") == 3  # leaderboard, gate verdicts, notes (nothing else)
    summaries = re.findall(r"<details><summary>(.*?)</summary>\n\n", rest)  # blank line: GitHub renders the body
    assert summaries[:2] == ["Full leaderboard: every benchmark, tie groups, shifted split, bias, cost",
                             "Gate verdicts (6, 3 failing)"]
    assert "| candidate | support\\_intents accuracy % [95% CI] | tie group | shifted |" in rest
    assert "- gpt2-small / support\\_intents.accuracy vs baseline (margin 0.02): **FAIL**: regression &lt;x&gt;" in rest
    outside = re.sub(r"<details>.*?</details>", "", rest, flags=re.S).strip()
    assert outside.startswith("config") and "\n" not in outside  # only the provenance line is left in view
