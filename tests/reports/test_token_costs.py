"""Tokens computed beside tokens in the data (issue 29): every scoring unit counts them with the path it took, the
rows and the cost carry them into results.json, and the terminal, Markdown and HTML cost columns show them, with the
paths and why a path was unshared in the notes. Read from the session's tiny bake-off, so these tests add no
bake-off of their own. Its rows are cut from the left to max_length 96 (the tiny tokenizer's support_intents prompts
are 97-354 tokens), so no prefix is shared there and the notes say why; the shared path's counts are
tests/harness/test_lm.py's, and the demo's cost column shows them (tests/integration/test_demo.py)."""
from __future__ import annotations

import io
import json

from rich.console import Console

from harness.execution.merge import merge_prefix, merge_tokens
from harness.results.model import Results
from harness.scoring.lm import ENCODER_PATH, SHARED
from reports.costs import count_short, tokens_text
from reports.terminal import cost_table, leaderboard


def _candidate(results: dict, name: str) -> dict:
    return next(c for c in results["candidates"] if c["name"] == name)


def test_results_json_carries_tokens_computed_beside_tokens_in_the_data(tiny_run):
    llama, bert = _candidate(tiny_run.results, "tiny-llama"), _candidate(tiny_run.results, "tiny-bert")
    for cand in (llama, bert):
        bench, cost = cand["benchmarks"][0], cand["cost"]
        train = bench["train"]
        assert cost["train_tokens_in_data"] == train["tokens"] > 0
        assert cost["train_tokens_computed"] == train["tokens_computed"] > 0
        stages = bench["tokens"]
        assert cost["scoring_tokens_in_data"] == sum(t["data"] for t in stages.values()) > 0
        assert cost["scoring_tokens_computed"] == sum(t["computed"] for t in stages.values()) > 0
    # tiny Llama: its rows, cut from the left, begin differently: every micro-batch and every call ran unshared, and
    # says why; scoring still computes fewer tokens than the data holds (a context runs once for its 7 options)
    train = llama["benchmarks"][0]["train"]
    assert llama["cost"]["train_tokens_computed"] == llama["cost"]["train_tokens_in_data"]
    assert train["prefix"]["shared_batches"] == 0 and list(train["prefix"]["unshared_why"]) == [
        "common prefix too short: it saves less than one forward pass (64 tokens)"]
    stages = llama["benchmarks"][0]["tokens"]
    assert set(stages) == {"score", "probe", "bias"}
    assert stages["score"]["paths"] == {"unshared: the common prefix is 0 tokens (under 4)": 2}  # test, shifted
    assert stages["score"]["computed"] < stages["score"]["data"]
    assert sum(stages["bias"]["paths"].values()) == 4  # both sides of the pairs, before and after tuning
    assert sum(stages["probe"]["paths"].values()) == 2  # general_knowledge before and after; paraphrase counts none
    # tiny BERT: an encoder runs every token of every row; its paraphrase probe (embeddings) counts none
    assert bert["cost"]["train_tokens_computed"] == bert["cost"]["train_tokens_in_data"]
    assert bert["cost"]["scoring_tokens_computed"] == bert["cost"]["scoring_tokens_in_data"]
    assert set(bert["benchmarks"][0]["tokens"]) == {"score"}
    assert set(bert["benchmarks"][0]["tokens"]["score"]["paths"]) == {ENCODER_PATH}


def test_the_cost_column_and_the_reports_show_them(tiny_run):
    results = Results.from_json(tiny_run.results)
    llama = results.candidate("tiny-llama")
    assert llama is not None
    k = llama.cost
    shown = tokens_text(k.train_tokens_computed, k.train_tokens_in_data)
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(leaderboard(results))
    console.print(cost_table(results))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"train tok {shown}" in text and "score tok " in text  # in the leaderboard's cost column
    assert "run/data" in text and shown in text  # and in the narrow console's cost table
    printed = " ".join(tiny_run.stdout.split())  # what `sftbench run` printed, wrapped lines joined
    assert "tok run/data = tokens the model ran / tokens in the data" in printed
    assert "tiny-llama: training: unshared (common prefix too short" in printed
    assert "scoring: unshared: the common prefix is 0 tokens (under 4) in 6 calls" in printed
    assert "tiny-bert: training: unshared (classifier" in printed
    md, page = (tiny_run.out / "report.md").read_text(), (tiny_run.out / "report.html").read_text()
    for rendered in (md, page):
        assert "train tok run/data" in rendered and "score tok run/data" in rendered and shown in rendered


def test_seeds_sum_their_counts_and_older_units_show_none():
    one = {"data": 10, "computed": 4, "paths": {SHARED: 1}}
    other = {"data": 10, "computed": 10, "paths": {"unshared: one prompt": 1}}
    assert merge_tokens([{"score": one}, {"score": other, "probe": one}]) == {
        "score": {"data": 20, "computed": 14, "paths": {SHARED: 1, "unshared: one prompt": 1}},
        "probe": {"data": 10, "computed": 4, "paths": {SHARED: 1}}}
    assert merge_tokens([{"score": one}, None]) is None  # a unit kept before the counts: unknown, never half a sum
    tally = {"path": "shared", "shared_batches": 4, "batches": 4, "mean_prefix_tokens": 10.0, "unshared_why": {}}
    mixed = {"path": "mixed", "shared_batches": 1, "batches": 4, "mean_prefix_tokens": 20.0,
             "unshared_why": {"one row": 3}}
    assert merge_prefix([tally, mixed]) == {"path": "mixed", "shared_batches": 5, "batches": 8,
                                            "mean_prefix_tokens": 12.0, "unshared_why": {"one row": 3}}
    assert merge_prefix([tally, {}]) == {}
    assert [count_short(n) for n in (812, 4328, 143679, 99960, 2_100_000)] == ["812", "4.3K", "144K", "100K", "2.1M"]
    assert tokens_text(None, 5) == "-"


def test_a_run_without_counts_renders_as_before():
    """Runs written before the counts (the golden leaderboard's sample) keep their columns: no token column, no note."""
    from tests.reports.sample import sample_results

    results = Results.from_json(json.loads(json.dumps(sample_results())))
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(cost_table(results))
    assert "run/data" not in console.file.getvalue()  # type: ignore[attr-defined]
