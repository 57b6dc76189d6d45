"""The HTML report is one self-contained page, escapes every string from the results (names, prompts,
predictions, messages, config), draws every figure when there is data, survives missing data, and renders
the same bytes twice."""
from __future__ import annotations

import copy
import re

import pytest

from reports.html import render_html
from reports.plots import FIGURES
from tests.reports.sample import metric, sample_results, typed

INJECTED = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def bias_report() -> dict:
    """A counterfactual report whose probe name, attribute and example texts carry markup."""
    rate = metric(0.05, 0.02, 0.1)
    return {"probe": f"bias {INJECTED}", "version": "1", "n": 40, "flip_rate_before": rate,
            "flip_rate_after": {**metric(0.1, 0.05, 0.2), "count": 4}, "change": metric(0.05, -0.02, 0.12),
            "new_flips": 3, "vanished_flips": 1, "mcnemar_p": 0.625,
            "per_attribute": {f"attr {INJECTED}": {"n": 40, "before": rate, "after": metric(0.1, 0.05, 0.2)}},
            "flipped_examples": [{"a": f"he {INJECTED}", "b": "she", "attribute": "gender", "label": "x",
                                  "pred_a": "x", "pred_b": f"y {INJECTED}"}]}


def bench(name, value, forgetting=None, *, main="accuracy", task="classification", predictions=None, prompt="Q",
          bias=False):
    probes = [] if forgetting is None else [
        {"probe": "general_knowledge", "version": "1", "kind": "multiple_choice", "n": 300,
         "forgetting": metric(forgetting, forgetting - 0.02, forgetting + 0.02), "forgotten": 9, "gained": 4,
         "mcnemar_p": 0.27, "most_forgotten": [{"prompt": prompt, "answer": "Paris & <b>Lyon</b>",
                                                "margin_before": 0.4, "margin_after": -0.6}]}]
    w = value / 15  # interval half-width, on the metric's own scale (BLEU is 0-100)
    return {"benchmark": name, "version": "1", "task": task, "status": "ok", "reason": "", "learning_rate": 1e-3,
            "data_sha256": {}, "scores": {"test": {main: metric(value, value - w, value + w)},
                                          "shifted": {main: metric(0.8 * value, 0.8 * value - w, 0.8 * value + w)}},
            "train": {"train_loss": [1.2, 0.7, 0.5], "val_loss": [2.0, 1.0, 0.8, 0.75], "seconds": 30.0,
                      "tokens": 9000, "steps": 12, "bf16": False, "tokens_per_second": 300.0, "best_step": 8,
                      "curve": [{"step": s, "val_loss": loss, "val_metric": value * m}
                                for s, loss, m in ((0, 2.0, 0.3), (4, 1.0, 0.8), (8, 0.8, 1.0), (12, 0.75, 0.95))]},
            "latency_ms_per_item": 4.0, "probes": probes, "predictions": {"test": predictions or ["yes"] * 12},
            "generalisation": {"metric": main, "gap": 0.1, "gap_ci_low": 0.02, "gap_ci_high": 0.18},
            "per_class_f1": {}, "bias": [bias_report()] if bias else []}


def cand(name, params, benches, status="ok", reason=""):
    return {"name": name, "model": name, "status": status, "reason": reason, "params": params,
            "trainable_params": params // 100, "benchmarks": benches,
            "cost": {"train_seconds": 60.0, "train_tokens_per_second": 300.0, "latency_ms_per_item": 4.0,
                     "peak_rss_mb": 900.0}}


def full_results() -> dict:
    """Two benchmarks (one a generation task scored in BLEU), train curves, probes, predictions; one candidate
    carries a script in its name, one a script in a probe prompt and a prediction, one is n/a on a benchmark,
    one failed before any benchmark ran."""
    na = {"benchmark": "summaries", "version": "1", "task": "generation", "status": "n/a",
          "reason": "encoders cannot generate", "scores": {}, "train": None, "probes": [], "predictions": {}}
    cands = [cand(INJECTED, 30_000_000, [bench("intents", 0.8, 0.01, prompt=f"What is {INJECTED}?", bias=True),
                                         bench("summaries", 21.0, 0.02, main="bleu", task="generation",
                                               predictions=[f"pred {INJECTED}"] + ["a summary"] * 11)]),
             cand("tiny-bert", 4_000_000, [bench("intents", 0.7, -0.01), na]),
             cand("crashed", 0, [], status="failed", reason="RunFailure: out of memory <oops>")]
    return {"schema_version": 1, "run_id": "20261125-000000-fedcba", "name": "full", "created": "2026-11-25T00:00:00",
            "config_hash": "0123456789abcdef", "git_sha": "deadbeef", "packages": {"torch": "2.13"},
            "config": {"name": "full", "note": INJECTED}, "passed": False, "recommendation": None,
            "recommendation_reason": f"no candidate passes every gate: {INJECTED}: intents.accuracy >= 0.9",
            "gates": [{"candidate": INJECTED, "gate": "intents.accuracy >= 0.9", "passed": False, "observed": 0.8,
                       "message": f"value 0.8 misses >= 0.9 {INJECTED}"},
                      {"candidate": "crashed", "gate": "intents.accuracy >= 0.9", "passed": False, "observed": None,
                       "message": "fails closed"}],
            "candidates": cands}


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """Rendering draws five figures (about a second), so each page is rendered once per module."""
    return {"sample": render_html(typed(sample_results())), "full": render_html(typed(full_results()))}


def test_self_contained_and_no_script(pages):
    for page in pages.values():
        assert page.startswith("<!DOCTYPE html>")
        assert "<script" not in page.lower()
        # only namespace declarations may name a URL; nothing is fetched
        assert re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', page, re.IGNORECASE) == []
        for url in re.findall(r'(\S*)"https?://', page):
            assert url.startswith("xmlns"), url
        assert "@import" not in page and "url(http" not in page


def test_every_figure_when_data_exists(pages):
    page = pages["full"]
    assert page.count("<svg") == len(FIGURES) == 5
    assert "could not be drawn" not in page and "no data to plot" not in page
    for title, _ in FIGURES:
        assert title in page


def test_sample_without_train_curves_still_draws_the_rest(pages):
    page = pages["sample"]
    assert page.count("<svg") == 3  # the sample has no train curves
    assert "Training loss per logged step and validation loss: no data to plot." in page
    assert "Main metric on validation during training: no data to plot." in page
    assert "could not be drawn" not in page


def test_recommendation_and_tables(pages):
    page = pages["sample"]
    assert 'class="verdict pass"' in page
    assert "minilm-l6 is the smallest candidate (22.8M parameters) that passes every gate" in page
    # main metric with CI (the interval may wrap under its value, never inside), params
    assert '82.9 <span class="ci">[77.5, 87.2]</span>' in page and "22.8M" in page
    assert "value 0.6798 misses &gt;= 0.7" in page  # gate message, escaped
    assert "RunFailure: loss became nan" in page  # the failed candidate renders with its reason
    assert 'class="verdict fail"' in pages["full"]
    assert "intents.accuracy &gt;= 0.9" in pages["full"]


def test_every_data_string_is_escaped(pages):
    page = pages["full"]
    assert INJECTED not in page
    assert "<oops>" not in page and "&lt;oops&gt;" in page
    assert "<b>Lyon</b>" not in page and "Paris &amp; &lt;b&gt;Lyon&lt;/b&gt;" in page
    # the name in the tables, the gate table and inside the SVG labels; the prompt; the prediction; config
    assert page.count(ESCAPED) >= 8
    assert f"What is {ESCAPED}?" in page
    assert f"pred {ESCAPED}" in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert any(ESCAPED in svg for svg in svgs)
    # the bias table: probe name, attribute, both inputs and a prediction
    for text in (f"bias {ESCAPED}", f"attr {ESCAPED}", f"he {ESCAPED}", f"y {ESCAPED}"):
        assert text in page


def test_bias_table_and_tie_groups(pages):
    page = pages["sample"]
    section = page[page.index("<h2>Bias"):page.index("<h2>Figures")]
    assert section.count("<h3>") == 2  # smollm2-135m and gpt2-small; the encoder is not probed
    assert "smollm2-135m &middot; support_intents &middot; intent_bias" in section
    cells = '<td class="num">4.1 [1.5, 9.8]</td><td class="num">6.6 [3.1, 12.9]</td><td class="num">2.5 [-1.6, 6.6]</td>'
    assert cells in section  # flip rate before, after, change
    assert "He cannot log in &lt;again&gt;" in section and "<again>" not in page
    assert "<th>tie group</th>" in page and "bias change, flip pts [95% CI]" in page
    assert "not significant at 0.05" in page
    names = re.findall(r'<td class="name"[^>]*>([^<]+)</td>', page)
    assert names == ["minilm-l6", "gpt2-small", "smollm2-135m", "broken"]  # leaderboard rows, best first
    assert "No bias probe ran" in render_html(typed({"candidates": [], "gates": []}))


def test_missing_data_never_crashes():
    results = full_results()
    empty = copy.deepcopy(results)
    for c in empty["candidates"]:
        c["benchmarks"] = []
        c["status"] = "failed"
    variants = [empty, {"candidates": [], "gates": []}]
    odd = copy.deepcopy(results)
    b = odd["candidates"][0]["benchmarks"][0]
    b["train"] = {"train_loss": [], "val_loss": [2.0]}
    b["probes"][0]["forgetting"] = {"value": float("nan")}
    b["scores"]["test"]["accuracy"]["ci_low"] = None
    odd["candidates"][1]["params"] = None
    odd["candidates"][1]["cost"] = {}
    variants.append(odd)
    for v in variants:
        page = render_html(typed(v))
        assert "could not be drawn" not in page
    for v in (empty, {"candidates": [], "gates": []}):
        page = render_html(typed(v))
        assert page.count("<svg") == 0
        assert all(f"{title}: no data to plot." in page for title, _ in FIGURES)
        assert "No predictions were stored." in page and "No probe items were forgotten, or no probes ran." in page
    assert "No gates configured" in render_html(typed({"candidates": [], "gates": []}))
    failed = leaderboard_row(render_html(typed(empty)), "tiny-bert")
    assert failed[:2] == ["tiny-bert", "4.0M (40.0K)"] and failed[-1] == "FAILcandidate failed:"
    odd_row = leaderboard_row(render_html(typed(odd)), ESCAPED)
    assert odd_row[1] == "80.0"  # no lower bound: the value alone, not a broken interval
    assert odd_row[5] == "general_knowledge- &middot; 9 / 4"  # a NaN forgetting shows as '-'
    bert = leaderboard_row(render_html(typed(odd)), "tiny-bert")
    assert bert[13:18] == ["- (40.0K)", "-", "-", "-", "-"]  # no params and no costs recorded: '-', not 0


def test_figure_ids_are_unique_on_the_page(pages):
    ids = re.findall(r'\sid="([^"]+)"', pages["full"])
    assert len(ids) == len(set(ids))


def test_deterministic(pages):
    assert render_html(typed(full_results())) == pages["full"]
    assert render_html(typed(sample_results())) == pages["sample"]


def test_validation_metric_curve_is_drawn_only_where_it_was_evaluated():
    from reports.plots import metric_curves

    results = full_results()
    svg = metric_curves(typed(results))
    assert svg is not None and "validation accuracy (%)" in svg and "validation bleu" in svg
    assert "optimizer step (0 = before training)" in svg and "best evaluation" in svg
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            for point in (b.get("train") or {}).get("curve", []):
                point["val_metric"] = None  # recipe.eval_metric off, or a benchmark where auto skipped it
    assert metric_curves(typed(results)) is None


def leaderboard_row(page: str, name: str) -> list[str]:
    """The text of each cell of the leaderboard row whose first cell is `name` (as it appears, escaped)."""
    table = page[page.index("<h2>Leaderboard"):page.index("<h2>Gate verdicts")]
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no leaderboard row for {name}")


def test_leaderboard_cells_hold_the_numbers(pages):
    """full_results' first candidate: intents accuracy 0.8 with a half-width of 0.8/15, shifted 0.8 x 0.8, gap 0.1
    [0.02, 0.18], forgetting 0.01 +- 0.02 (9 forgotten, 4 gained), bias change 0.05 [-0.02, 0.12], all in points;
    BLEU 21 on its own 0-100 scale, its shifted 16.8; 30M parameters, 0.3M trained, 60 s, 300 tokens/s."""
    row = leaderboard_row(pages["full"], ESCAPED)
    assert row == [ESCAPED, "80.0 [74.7, 85.3]", "1", "64.0 [58.7, 69.3]", "10.0 [2.0, 18.0]",
                   "general_knowledge1.0 [-1.0, 3.0] &middot; 9 / 4", f"bias {ESCAPED}5.0 [-2.0, 12.0]",
                   "21.0 [19.6, 22.4]", "1", "16.8 [15.4, 18.2]", "0.1 [0.0, 0.2]",
                   "general_knowledge2.0 [0.0, 4.0] &middot; 9 / 4", "-",
                   "30.0M (0.3M)", "60", "300", "4.0", "900", "FAILintents.accuracy &gt;= 0.9"]
    bert = leaderboard_row(pages["full"], "tiny-bert")
    assert bert[1:4] == ["70.0 [65.3, 74.7]", "2", "56.0 [51.3, 60.7]"] and bert[7] == "n/a"
    assert '<td class="muted" title="encoders cannot generate">n/a</td>' in pages["full"]
    assert leaderboard_row(pages["full"], "crashed")[1] == "failed"
    assert 'title="RunFailure: out of memory &lt;oops&gt;">crashed</td>' in pages["full"]
    gates = pages["full"][pages["full"].index("<h2>Gate verdicts"):pages["full"].index("<h2>Data warnings")]
    assert '<td class="num">0.8</td>' in gates and f"value 0.8 misses &gt;= 0.9 {ESCAPED}" in gates


def figure_texts(page: str) -> dict[str, list[str]]:
    """Caption -> the <text> labels of that figure's SVG, unescaped."""
    import html

    out = {}
    for fig in re.findall(r"<figure.*?</figure>", page, re.DOTALL):
        caption = re.search(r"<figcaption>(.*?)</figcaption>", fig).group(1)
        labels = [html.unescape(re.sub(r"<[^>]+>", "", t)).strip()
                  for t in re.findall(r"<text[^>]*>.*?</text>", fig, re.DOTALL)]
        out[caption] = [t for t in labels if t]
    return out


def test_figures_show_what_was_measured(pages):
    figures = figure_texts(pages["full"])
    assert list(figures) == [title for title, _ in FIGURES]
    for caption, labels in figures.items():
        assert INJECTED in labels, caption  # the candidate's name, escaped in the SVG and shown as itself
        assert "crashed" not in labels, caption  # a failed candidate has nothing to draw
        assert {"intents", "summaries"} <= set(labels), caption  # one panel per benchmark
    loss = figures["Training loss per logged step and validation loss"]
    assert {"tiny-bert", "train (logged steps)", "validation", "optimizer step (0 = before training)", "loss"} <= set(loss)
    metric = figures["Main metric on validation during training"]
    assert {"validation accuracy (%)", "validation bleu", "best evaluation"} <= set(metric)
    bars = figures["Main metric per candidate, test and shifted (95% intervals)"]
    assert {"accuracy (%), 95% interval", "bleu, 95% interval", "test", "shifted"} <= set(bars)
    assert bars.count("tiny-bert") == 1  # on intents only: it is n/a on summaries
    assert "100" in bars and "25" in bars  # accuracy in percent, BLEU on its 0-100 scale up to its 22.4 bound
    assert "forgetting on first probe" in figures["Learning versus forgetting"]
    assert {"parameters (log scale)", "test accuracy (%)", "test bleu"} <= set(figures["Quality versus cost"])


def test_under_seeds_the_counts_are_means_and_each_item_says_how_many_seeds_forgot_it():
    from reports.html import most_forgotten

    results = full_results()
    probe = results["candidates"][1]["benchmarks"][0]["probes"][0]
    probe |= {"forgotten": 7 / 3, "gained": 2.0, "mcnemar_p": None, "mcnemar_p_per_seed": [0.5, 0.25, 0.031],
              "most_forgotten": [{"item": 4, "prompt": "Capital of <i>France</i>?", "answer": "Paris",
                                  "margin_before": 0.4, "margin_after": -0.6, "forgotten_by": 3, "seeds": 3}]}
    html = most_forgotten(typed(results))
    card = html[html.index("tiny-bert"):]
    assert "forgot 2.3, gained 2 of 300 items (means over seeds); McNemar p = per seed 0.5, 0.25, 0.031" in card
    assert "<th>seeds that forgot it</th>" in card and ">3 of 3</td>" in card
    assert "Capital of &lt;i&gt;France&lt;/i&gt;?" in card
    one_seed = html[:html.index("tiny-bert")]  # the first candidate's card: one seed, no such column
    assert "McNemar p = 0.27" in one_seed and "seeds that forgot it" not in one_seed
