"""The HTML report: one self-contained page (inline CSS and SVG, no script, no external resource) rendered from
results.json: recommendation, leaderboard, gate verdicts, the figures, the most forgotten probe items and a
sample of predictions. Every piece of text from the results goes through html.escape, since candidate names,
prompts and model outputs are arbitrary strings."""
from __future__ import annotations

import html
import json
import math
import re
from typing import Any

from harness.results.model import BenchmarkRow, BiasRow, CandidateRow, MetricScore, ProbeRow, Results
from harness.results.render import renderer
from reports.confusion import per_class
from reports.costs import cost_lines, hardware_text, optional_cells, optional_columns, trained_text
from reports.format import (
    BIAS_NOTE,
    adaptive_lines,
    bias_measured,
    count_text,
    in_percent,
    learning_lines,
    main_metric_of,
    mcnemar_text,
    metric_scale,
    ranked,
    recommendation_text,
    reliability,
    score_warnings,
    seed_note,
    sweep_lines,
    tie_notes,
    verdict,
    warning_lines,
)

SAMPLE_PREDICTIONS = 10
# "80.0 [74.7, 85.3]": in the leaderboard the interval may go under its value, never break inside (the page width)
_INTERVAL = re.compile(r"(\d) \[(-?[\d.]+, -?[\d.]+)\]")
WIDE_SVG_PT = 500  # one panel is about 375pt wide; two side by side need a full row of the page

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1f2328;
       margin: 1.5rem auto; max-width: 1600px; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin-bottom: .3rem; }
.meta { color: #57606a; font-size: .9rem; }
.meta code { background: #f6f8fa; padding: 0 .3rem; }
.verdict { font-size: 1.15rem; padding: .8rem 1rem; border-radius: 6px; margin: 1rem 0; border: 2px solid; }
.verdict.pass { background: #dafbe1; border-color: #1a7f37; }
.verdict.fail { background: #ffebe9; border-color: #cf222e; }
.verdict.pass.tentative { background: #fff8c5; border-color: #9a6700; }
.verdict strong { font-size: 1.3rem; margin-right: .5rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; vertical-align: top; }
th { background: #f6f8fa; font-size: .8rem; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.text { max-width: 60rem; overflow-wrap: anywhere; white-space: pre-wrap; }
td.name { white-space: nowrap; }
tr.chosen td:first-child { font-weight: bold; }
tr.chosen td:first-child::before { content: "\\2605  "; color: #9a6700; }
.pass-cell { color: #1a7f37; font-weight: bold; }
.fail-cell { color: #cf222e; font-weight: bold; }
.muted { color: #57606a; }
.warning { background: #fff8c5; border-left: 4px solid #9a6700; padding: .4rem .8rem; margin: .5rem 0; }
.probe { color: #57606a; font-size: .75rem; }
.scroll { overflow-x: auto; max-width: 100%; }
table.leaderboard td.num { white-space: normal; }
table.leaderboard { font-size: .8rem; }
table.leaderboard th, table.leaderboard td { padding: .25rem .35rem; }
table.leaderboard th { max-width: 8rem; }
table.leaderboard td:last-child { min-width: 9rem; overflow-wrap: anywhere; }  /* gate names are long words */
.ci { white-space: nowrap; }
.cards { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1rem 2rem; }
figure { margin: 0; }
figure.wide { grid-column: 1 / -1; }
figure svg { width: 100%; height: auto; }
figcaption { font-weight: bold; }
table.confusion th.gold { text-align: left; white-space: nowrap; }
table.confusion thead th { max-width: 9rem; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ci(value: Any, low: Any, high: Any, scale: float = 100.0) -> str:
    if not _finite(value):
        return "-"
    text = f"{scale * value:.1f}"
    return text + (f" [{scale * low:.1f}, {scale * high:.1f}]" if _finite(low) and _finite(high) else "")


def _entry(entry: MetricScore | None, scale: float = 100.0) -> str:
    entry = entry or MetricScore()
    return _ci(entry.value, entry.ci_low, entry.ci_high, scale)


def _num(v: Any, fmt: str = ".0f") -> str:
    return format(v, fmt) if _finite(v) else "-"


def _count(n: Any) -> str:
    if not _finite(n) or n <= 0:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def _row(cells: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>{''.join(cells)}</tr>"


def _td(markup: str, cls: str = "num", title: str = "") -> str:
    """A cell. markup is HTML the caller built (numbers, or data passed through _e); title is data, escaped here."""
    attr = f' title="{_e(title)}"' if title else ""
    return f'<td class="{cls}"{attr}>{markup}</td>'


def _bench_cells(results: Results, c: CandidateRow, b: BenchmarkRow | None, metric: str, others: list[str],
                 group: int | None, bias: bool) -> list[str]:
    width = 5 + bool(others) + bias
    if b is None or b.status != "ok":
        status = (b.status if b else "") or ("failed" if c.status != "ok" else "not run")
        reason = (b.reason if b else "") or c.reason
        return [_td(_e(status), "fail-cell" if status == "failed" else "muted", reason)] + [_td("-")] * (width - 1)
    scale = metric_scale(metric, results)
    test = b.scores.get("test") or {}
    cells = [_td(_entry(test.get(metric), scale)), _td(_num(group, "d") if group is not None else "-")]
    if others:
        also = "<br>".join(f"{_e(m)} {_e(_entry(test[m], metric_scale(m, results)))}" for m in others if m in test)
        cells.append(_td(also or "-"))
    gen = b.generalisation
    cells += [_td(_entry(b.score("shifted", metric), scale)),
              _td(_ci(gen.gap, gen.gap_ci_low, gen.gap_ci_high, scale)),
              _td("<br>".join(_forgetting(p) for p in b.probes) or "-")]
    if bias:
        cells.append(_td("<br>".join(f'<span class="probe">{_e(r.probe)}</span><br>'
                                     f'{_entry(r.change)}' for r in b.bias) or "-"))
    return cells


def _forgetting(p: ProbeRow) -> str:
    """Probe name, forgetting in points with its interval, items forgotten / gained."""
    return (f'<span class="probe">{_e(p.probe)}</span><br>{_entry(p.forgetting)}'
            f" &middot; {count_text(p.forgotten)} / {count_text(p.gained)}")


def _bench_heads(results: Results, metric: str, others: bool, bias: bool) -> list[str]:
    unit = " %" if in_percent(metric, results) else ""
    return ([f"{_e(metric)}{unit} [95% CI]", "tie group"] + (["other metrics"] if others else []) +
            [f"shifted {_e(metric)}{unit} [95% CI]", "generalisation gap, test - shifted [95% CI]",
             "forgetting pts [95% CI] &middot; items forgotten / gained"] +
            ["bias change, flip pts [95% CI]"] * bias)


def leaderboard(results: Results) -> str:
    groups = results.tie_groups
    metrics = main_metric_of(results)
    bias = bias_measured(results)
    others: dict[str, list[str]] = {bench: [] for bench in metrics}
    for c in results.candidates:
        for b in c.benchmarks:
            for m in b.scores.get("test") or {}:
                if b.benchmark in others and m not in others[b.benchmark] and m != metrics[b.benchmark]:
                    others[b.benchmark].append(m)
    top, sub = ['<th rowspan="2">candidate</th>'], []
    for bench, metric in metrics.items():
        heads = _bench_heads(results, metric, bool(others[bench]), bias)
        top.append(f'<th colspan="{len(heads)}">{_e(bench)}</th>')
        sub += [f"<th>{h}</th>" for h in heads]
    cost = ["params (trained)", "train s", "train tokens/s", "latency ms/item", "peak RSS MB",
            *optional_columns(results)]
    top += [f'<th colspan="{len(cost)}">cost</th>', '<th rowspan="2">gate</th>']
    sub += [f"<th>{h}</th>" for h in cost]
    rows = []
    ties = {t.benchmark: t for t in groups}
    for c in ranked(results):
        cells = [_td(_e(c.name), "name", c.reason)]
        for bench, metric in metrics.items():
            cells += _bench_cells(results, c, c.benchmark(bench), metric, others[bench], ties[bench].group.get(c.name),
                                  bias)
        k = c.cost
        trained = _e(trained_text(c)) if c.trainable_params is not None else "-"
        cells += [_td(_count(c.params) + (f' <span class="ci">({trained})</span>' if trained != "-" else "")),
                  _td(_num(k.train_seconds)), _td(_num(k.train_tokens_per_second)),
                  _td(_num(k.latency_ms_per_item, ".1f")), _td(_num(k.peak_rss_mb))] + \
            [_td(v) for v in optional_cells(c, results)]
        label, detail = verdict(results, c)
        cells.append(_td(_e(label) + (f"<br>{_e(detail)}" if detail else ""),
                         "pass-cell" if label == "pass" else "muted" if label == "reference" else "fail-cell"))
        rows.append(_row(cells, "chosen" if c.name == results.recommendation else ""))
    beside = "".join(f'<p class="warning"><b>Warning, {_e(bench)}:</b> {_e(w)}</p>' for bench in metrics
                     for w in score_warnings(results, bench))
    notes = [results.tie_rule] + tie_notes(groups) + [seed_note(results)] + learning_lines(results)
    notes += cost_lines(results)
    notes.append(BIAS_NOTE if bias else "bias change: not measured (no bias suite in the config)")
    table = (f'<table class="leaderboard"><thead><tr>{"".join(top)}</tr><tr>{"".join(sub)}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    table = _INTERVAL.sub(r'\1 <span class="ci">[\2]</span>', table)
    return (f'<div class="scroll">{table}</div>{beside}'
            f'<ul class="muted">{"".join(f"<li>{_e(n)}</li>" for n in notes)}</ul>')


def gates(results: Results) -> str:
    verdicts = results.gates
    if not verdicts:
        return '<p class="muted">No gates configured: every candidate that ran passes.</p>'
    rows = []
    for v in verdicts:
        observed = v.observed
        cells = [_td(_e(v.candidate), "text"), _td(_e(v.gate), "text"),
                 _td("pass" if v.passed else "FAIL", "pass-cell" if v.passed else "fail-cell"),
                 _td(_num(observed, ".4g") if _finite(observed) else _e("-" if observed is None else observed)),
                 _td(_e(v.message), "text")]
        rows.append(_row(cells))
    return ("<table><thead><tr><th>candidate</th><th>gate</th><th>result</th><th>observed</th><th>message</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def problems(results: Results) -> str:
    """Failed candidates and failed or n/a benchmarks, with the reason each carries."""
    items = []
    for c in results.candidates:
        if c.status != "ok":
            items.append(f"<li><b>{_e(c.name)}</b>: {_e(c.status)} - {_e(c.reason)}</li>")
        for b in c.benchmarks:
            if b.status != "ok" and (b.reason != c.reason or c.status == "ok"):
                items.append(f"<li><b>{_e(c.name)}</b> / {_e(b.benchmark)}: {_e(b.status)} - "
                             f"{_e(b.reason)}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _svg_width(svg: str) -> float:
    found = re.match(r'<svg[^>]*\swidth="([0-9.]+)pt"', svg)
    return float(found.group(1)) if found else 0.0


def figures(results: Results) -> str:
    from reports.plots import FIGURES  # matplotlib loads only when a page is drawn, not with the CLI

    parts = []
    for title, draw in FIGURES:
        try:
            svg = draw(results)
        except Exception as exc:  # noqa: BLE001  (a figure is an extra: the tables must still reach the reader)
            parts.append(f'<p class="fail-cell">{_e(title)}: could not be drawn ({_e(type(exc).__name__)}: '
                         f"{_e(exc)})</p>")
            continue
        if svg is None:
            parts.append(f'<p class="muted">{_e(title)}: no data to plot.</p>')
        else:
            wide = ' class="wide"' if _svg_width(svg) > WIDE_SVG_PT else ""  # several panels: give it a whole row
            parts.append(f"<figure{wide}><figcaption>{_e(title)}</figcaption>{svg}</figure>")
    return f'<div class="figures">{"".join(parts)}</div>'


def most_forgotten(results: Results) -> str:
    parts = []
    for c in results.candidates:
        for b in c.benchmarks:
            for p in b.probes:
                items = p.most_forgotten
                if not items:
                    continue
                seeds = " (means over seeds)" if p.mcnemar_p_per_seed else ""
                summary = (f"forgot {count_text(p.forgotten)}, gained {count_text(p.gained)} of {_num(p.n)} "
                           f"items{seeds}; McNemar p = {mcnemar_text(p.mcnemar_p, p.mcnemar_p_per_seed)}")
                by_seeds = any("forgotten_by" in it for it in items)  # several seeds: how many forgot each item
                rows = [_row([_td(_e(it.get("prompt", "")), "text"), _td(_e(it.get("answer", "")), "text"),
                              _td(f"{_num(it.get('margin_before'), '.2f')} &rarr; "
                                  f"{_num(it.get('margin_after'), '.2f')}")] +
                             [_td(f"{_num(it.get('forgotten_by'))} of {_num(it.get('seeds'))}")] * by_seeds)
                        for it in items]
                parts.append(f"<div><h3>{_e(c.name)} &middot; {_e(b.benchmark)} &middot; "
                             f'{_e(p.probe)}</h3><p class="muted">{summary}</p><table><thead><tr>'
                             "<th>prompt</th><th>answer</th><th>margin before &rarr; after</th>" +
                             "<th>seeds that forgot it</th>" * by_seeds + "</tr></thead>"
                             f"<tbody>{''.join(rows)}</tbody></table></div>")
    if not parts:
        return '<p class="muted">No probe items were forgotten, or no probes ran.</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def _flip_row(label: str, n: Any, before: MetricScore | None, after: MetricScore | None, change: str = "") -> str:
    return _row([_td(_e(label), "text"), _td(_num(n)), _td(_entry(before)), _td(_entry(after)), _td(change or "")])


def _rate(entry: dict[str, Any] | None) -> MetricScore | None:
    """A per-attribute flip rate (a JSON payload of the bias report) as the value-with-interval it is."""
    return MetricScore.from_json(entry) if entry else None


def _bias_card(c: CandidateRow, b: BenchmarkRow, r: BiasRow) -> str:
    """One bias report: overall and per-attribute flip rates before/after, the change, and examples that flip."""
    rows = [_flip_row("all pairs", r.n, r.flip_rate_before, r.flip_rate_after, _entry(r.change))]
    rows += [_flip_row(attr, a.get("n"), _rate(a.get("before")), _rate(a.get("after")))
             for attr, a in sorted(r.per_attribute.items())]
    summary = (f"{count_text(r.new_flips)} pairs started flipping, {count_text(r.vanished_flips)} stopped; "
               f"McNemar p = {mcnemar_text(r.mcnemar_p, r.mcnemar_p_per_seed)}")
    examples = [_row([_td(_e(x.get(k, "")), "text") for k in ("attribute", "a", "pred_a", "b", "pred_b", "label")])
                for x in r.flipped_examples]
    flipped = ("<table><thead><tr><th>attribute</th><th>input a</th><th>predicted</th><th>input b</th>"
               f"<th>predicted</th><th>gold</th></tr></thead><tbody>{''.join(examples)}</tbody></table>"
               if examples else '<p class="muted">No pair flips after tuning.</p>')
    return (f"<div><h3>{_e(c.name)} &middot; {_e(b.benchmark)} &middot; {_e(r.probe)}</h3>"
            f'<p class="muted">{summary}</p><table><thead><tr><th>pairs</th><th>n</th>'
            "<th>flip rate before tuning % [95% CI]</th><th>flip rate after tuning % [95% CI]</th>"
            f"<th>change pts [95% CI]</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p>Pairs that flip after tuning ({len(examples)} shown of "
            f"{_num(r.flip_rate_after.extra.get('count') if r.flip_rate_after else None)}):</p>{flipped}</div>")


def bias_section(results: Results) -> str:
    parts = [_bias_card(c, b, r) for c in results.candidates for b in c.benchmarks if b.status == "ok"
             for r in b.bias]
    if not parts:
        return '<p class="muted">No bias probe ran (none in the config, or only encoders, which are skipped).</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def predictions(results: Results) -> str:
    parts = []
    for c in results.candidates:
        for b in c.benchmarks:
            preds = ((b.predictions or {}).get("test") or [])[:SAMPLE_PREDICTIONS]
            if not preds:
                continue
            rows = [_row([_td(str(i + 1)), _td(_e(p), "text")]) for i, p in enumerate(preds)]
            parts.append(f"<div><h3>{_e(c.name)} &middot; {_e(b.benchmark)}</h3><table><thead><tr><th>#</th>"
                         f"<th>prediction (test)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    if not parts:
        return '<p class="muted">No predictions were stored.</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def provenance(results: Results) -> str:
    packages = ", ".join(f"{_e(k)} {_e(v)}" for k, v in results.packages.items())
    config = json.dumps(results.config, indent=1, default=str)
    return (f'<p class="meta">{packages or "package versions not recorded"}</p>'
            f"<details><summary>configuration</summary><pre>{_e(config)}</pre></details>")


def data_warnings(results: Results) -> str:
    lines = warning_lines(results)
    if not lines:
        return "<p>None: the data lint (duplicates, leakage, label balance, lengths) found nothing.</p>"
    return "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in lines) + "</ul>"


def sweeps(results: Results) -> str:
    lines = sweep_lines(results)
    if not lines:
        return "<p>No sweep: every candidate trained with its one configured setting.</p>"
    return "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in lines) + "</ul>"


def adaptive_section(results: Results) -> str:
    """Adaptive seeds: the summary line, then each candidate and setting's seeds and why it stopped."""
    lines = adaptive_lines(results)
    if not lines:
        return ""
    items = "".join(f"<li>{_e(x.strip())}</li>" for x in lines[1:])
    return f"<h2>Adaptive seeds</h2><p>{_e(lines[0])}</p><ul>{items}</ul>"


@renderer("html", "report.html")
def render_html(results: Results) -> str:
    """The whole report as one HTML document."""
    name, run_id = results.name, results.run_id
    passed = bool(results.passed)
    chosen = results.recommendation
    meta = " &middot; ".join(f"{label} <code>{_e(value or '-')}</code>" for label, value in
                             (("run", results.run_id), ("config", results.config_hash), ("git", results.git_sha),
                              ("created", results.created))
                             + ((("hardware", hardware_text(results.hardware)),) if results.hardware else ()))
    word = reliability(results)  # a tentative recommendation does not look like a solid one
    tentative = " tentative" if word == "tentative" else ""
    verdict = (f'<div class="verdict {"pass" if passed else "fail"}{tentative}"><strong>{"PASS" if passed else "FAIL"}'
               f'</strong>Recommendation: {_e(chosen) if chosen else "none"}{f" ({word})" if word else ""}'
               f"<br>{_e(recommendation_text(results))}</div>")
    body = [f"<h1>sftbench &middot; {_e(name)}</h1>", f'<p class="meta">{meta}</p>', verdict,
            "<h2>Leaderboard</h2>", leaderboard(results), problems(results),
            "<h2>Gate verdicts</h2>", gates(results),
            "<h2>Data warnings</h2>", data_warnings(results),
            "<h2>Sweep: settings picked on validation</h2>", sweeps(results), adaptive_section(results),
            "<h2>Bias: counterfactual flip rates before and after tuning</h2>", bias_section(results),
            "<h2>Figures</h2>", figures(results),
            "<h2>Per-class F1 and confusion matrices (test)</h2>", per_class(results),
            "<h2>Most forgotten probe items</h2>", most_forgotten(results),
            f"<h2>Sample predictions (first {SAMPLE_PREDICTIONS} on test)</h2>", predictions(results),
            "<h2>Provenance</h2>", provenance(results)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>sftbench - {_e(name)} - run {_e(run_id)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
