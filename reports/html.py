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

from reports.format import (
    BIAS_NOTE,
    bias_measured,
    learning_lines,
    recommendation_text,
    seed_note,
    sweep_lines,
    verdict,
    warning_lines,
)
from reports.plots import FIGURES, main_metrics, metric_scale
from reports.ties import RULE, TieGroups, all_tie_groups, ranked

SAMPLE_PREDICTIONS = 10
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
.probe { color: #57606a; font-size: .75rem; }
.scroll { overflow-x: auto; }
.cards { display: flex; flex-wrap: wrap; gap: 0 2rem; align-items: flex-start; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1rem 2rem; }
figure { margin: 0; }
figure.wide { grid-column: 1 / -1; }
figure svg { width: 100%; height: auto; }
figcaption { font-weight: bold; }
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


def _entry(entry: dict[str, Any] | None, scale: float = 100.0) -> str:
    entry = entry or {}
    return _ci(entry.get("value"), entry.get("ci_low"), entry.get("ci_high"), scale)


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


def _bench_cells(c: dict[str, Any], b: dict[str, Any] | None, metric: str, others: list[str], group: int | None,
                 bias: bool) -> list[str]:
    width = 5 + bool(others) + bias
    if b is None or b.get("status") != "ok":
        status = (b or {}).get("status") or ("failed" if c.get("status") != "ok" else "not run")
        reason = (b or {}).get("reason") or c.get("reason", "")
        return [_td(_e(status), "fail-cell" if status == "failed" else "muted", reason)] + [_td("-")] * (width - 1)
    scale = metric_scale(metric)
    scores = b.get("scores") or {}
    test = scores.get("test") or {}
    cells = [_td(_entry(test.get(metric), scale)), _td(_num(group, "d") if group is not None else "-")]
    if others:
        also = "<br>".join(f"{_e(m)} {_e(_entry(test[m], metric_scale(m)))}" for m in others if m in test)
        cells.append(_td(also or "-"))
    gen = b.get("generalisation") or {}
    probes = b.get("probes") or []
    cells += [_td(_entry((scores.get("shifted") or {}).get(metric), scale)),
              _td(_ci(gen.get("gap"), gen.get("gap_ci_low"), gen.get("gap_ci_high"), scale)),
              _td("<br>".join(_forgetting(p) for p in probes) or "-")]
    if bias:
        cells.append(_td("<br>".join(f'<span class="probe">{_e(r.get("probe", ""))}</span><br>'
                                     f'{_entry(r.get("change"))}' for r in b.get("bias") or []) or "-"))
    return cells


def _forgetting(p: dict[str, Any]) -> str:
    """Probe name, forgetting in points with its interval, items forgotten / gained."""
    return (f'<span class="probe">{_e(p.get("probe", ""))}</span><br>{_entry(p.get("forgetting"))}'
            f" &middot; {_num(p.get('forgotten'))} / {_num(p.get('gained'))}")


def _bench_heads(metric: str, others: bool, bias: bool) -> list[str]:
    unit = "" if metric_scale(metric) == 1.0 else " %"
    return ([f"{_e(metric)}{unit} [95% CI]", "tie group"] + (["other metrics"] if others else []) +
            [f"shifted {_e(metric)}{unit} [95% CI]", "generalisation gap, test - shifted [95% CI]",
             "forgetting pts [95% CI] &middot; items forgotten / gained"] +
            ["bias change, flip pts [95% CI]"] * bias)


def leaderboard(results: dict[str, Any], groups: list[TieGroups]) -> str:
    metrics = main_metrics(results)
    bias = bias_measured(results)
    others: dict[str, list[str]] = {bench: [] for bench in metrics}
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            for m in (b.get("scores") or {}).get("test") or {}:
                if b["benchmark"] in others and m not in others[b["benchmark"]] and m != metrics[b["benchmark"]]:
                    others[b["benchmark"]].append(m)
    top, sub = ['<th rowspan="2">candidate</th>'], []
    for bench, metric in metrics.items():
        heads = _bench_heads(metric, bool(others[bench]), bias)
        top.append(f'<th colspan="{len(heads)}">{_e(bench)}</th>')
        sub += [f"<th>{h}</th>" for h in heads]
    cost = ["params", "trainable params", "train s", "train tokens/s", "latency ms/item", "peak RSS MB"]
    top += [f'<th colspan="{len(cost)}">cost</th>', '<th rowspan="2">gate</th>']
    sub += [f"<th>{h}</th>" for h in cost]
    rows = []
    ties = {t.benchmark: t for t in groups}
    for c in ranked(results, groups):
        cells = [_td(_e(c["name"]), "name", c.get("reason", ""))]
        for bench, metric in metrics.items():
            b = next((x for x in c.get("benchmarks", []) if x.get("benchmark") == bench), None)
            cells += _bench_cells(c, b, metric, others[bench], ties[bench].group.get(c["name"]), bias)
        k = c.get("cost") or {}
        cells += [_td(_count(c.get("params"))), _td(_count(c.get("trainable_params"))),
                  _td(_num(k.get("train_seconds"))), _td(_num(k.get("train_tokens_per_second"))),
                  _td(_num(k.get("latency_ms_per_item"), ".1f")), _td(_num(k.get("peak_rss_mb")))]
        label, detail = verdict(results, c)
        cells.append(_td(_e(label) + (f"<br>{_e(detail)}" if detail else ""),
                         "pass-cell" if label == "pass" else "muted" if label == "reference" else "fail-cell"))
        rows.append(_row(cells, "chosen" if c["name"] == results.get("recommendation") else ""))
    notes = ([RULE] + [f"{t.benchmark}: {n}" for t in groups for n in t.notes] + [seed_note(results)]
             + learning_lines(results))
    notes.append(BIAS_NOTE if bias else "bias change: not measured (no bias suite in the config)")
    return (f'<div class="scroll"><table><thead><tr>{"".join(top)}</tr><tr>{"".join(sub)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>'
            f'<ul class="muted">{"".join(f"<li>{_e(n)}</li>" for n in notes)}</ul>')


def gates(results: dict[str, Any]) -> str:
    verdicts = results.get("gates") or []
    if not verdicts:
        return '<p class="muted">No gates configured: every candidate that ran passes.</p>'
    rows = []
    for v in verdicts:
        observed = v.get("observed")
        cells = [_td(_e(v.get("candidate", "")), "text"), _td(_e(v.get("gate", "")), "text"),
                 _td("pass" if v.get("passed") else "FAIL", "pass-cell" if v.get("passed") else "fail-cell"),
                 _td(_num(observed, ".4g") if _finite(observed) else _e("-" if observed is None else observed)),
                 _td(_e(v.get("message", "")), "text")]
        rows.append(_row(cells))
    return ("<table><thead><tr><th>candidate</th><th>gate</th><th>result</th><th>observed</th><th>message</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def problems(results: dict[str, Any]) -> str:
    """Failed candidates and failed or n/a benchmarks, with the reason each carries."""
    items = []
    for c in results.get("candidates", []):
        if c.get("status") != "ok":
            items.append(f"<li><b>{_e(c['name'])}</b>: {_e(c.get('status', ''))} - {_e(c.get('reason', ''))}</li>")
        for b in c.get("benchmarks", []):
            if b.get("status") != "ok" and (b.get("reason") != c.get("reason") or c.get("status") == "ok"):
                items.append(f"<li><b>{_e(c['name'])}</b> / {_e(b['benchmark'])}: {_e(b.get('status', ''))} - "
                             f"{_e(b.get('reason', ''))}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _svg_width(svg: str) -> float:
    found = re.match(r'<svg[^>]*\swidth="([0-9.]+)pt"', svg)
    return float(found.group(1)) if found else 0.0


def figures(results: dict[str, Any]) -> str:
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


def most_forgotten(results: dict[str, Any]) -> str:
    parts = []
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            for p in b.get("probes") or []:
                items = p.get("most_forgotten") or []
                if not items:
                    continue
                summary = (f"forgot {_num(p.get('forgotten'))}, gained {_num(p.get('gained'))} of {_num(p.get('n'))} "
                           f"items; McNemar p = {_num(p.get('mcnemar_p'), '.3g')}")
                rows = [_row([_td(_e(it.get("prompt", "")), "text"), _td(_e(it.get("answer", "")), "text"),
                              _td(f"{_num(it.get('margin_before'), '.2f')} &rarr; "
                                  f"{_num(it.get('margin_after'), '.2f')}")]) for it in items]
                parts.append(f"<div><h3>{_e(c['name'])} &middot; {_e(b['benchmark'])} &middot; "
                             f'{_e(p.get("probe", ""))}</h3><p class="muted">{summary}</p><table><thead><tr>'
                             "<th>prompt</th><th>answer</th><th>margin before &rarr; after</th></tr></thead>"
                             f"<tbody>{''.join(rows)}</tbody></table></div>")
    if not parts:
        return '<p class="muted">No probe items were forgotten, or no probes ran.</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def _flip_row(label: str, n: Any, before: Any, after: Any, change: str = "") -> str:
    return _row([_td(_e(label), "text"), _td(_num(n)), _td(_entry(before)), _td(_entry(after)), _td(change or "")])


def _bias_card(c: dict[str, Any], b: dict[str, Any], r: dict[str, Any]) -> str:
    """One bias report: overall and per-attribute flip rates before/after, the change, and examples that flip."""
    rows = [_flip_row("all pairs", r.get("n"), r.get("flip_rate_before"), r.get("flip_rate_after"),
                      _entry(r.get("change")))]
    rows += [_flip_row(attr, a.get("n"), a.get("before"), a.get("after"))
             for attr, a in sorted((r.get("per_attribute") or {}).items())]
    summary = (f"{_num(r.get('new_flips'))} pairs started flipping, {_num(r.get('vanished_flips'))} stopped; "
               f"McNemar p = {_num(r.get('mcnemar_p'), '.3g')}")
    examples = [_row([_td(_e(x.get(k, "")), "text") for k in ("attribute", "a", "pred_a", "b", "pred_b", "label")])
                for x in r.get("flipped_examples") or []]
    flipped = ("<table><thead><tr><th>attribute</th><th>input a</th><th>predicted</th><th>input b</th>"
               f"<th>predicted</th><th>gold</th></tr></thead><tbody>{''.join(examples)}</tbody></table>"
               if examples else '<p class="muted">No pair flips after tuning.</p>')
    return (f"<div><h3>{_e(c['name'])} &middot; {_e(b['benchmark'])} &middot; {_e(r.get('probe', ''))}</h3>"
            f'<p class="muted">{summary}</p><table><thead><tr><th>pairs</th><th>n</th>'
            "<th>flip rate before tuning % [95% CI]</th><th>flip rate after tuning % [95% CI]</th>"
            f"<th>change pts [95% CI]</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p>Pairs that flip after tuning ({len(examples)} shown of "
            f"{_num((r.get('flip_rate_after') or {}).get('count'))}):</p>{flipped}</div>")


def bias_section(results: dict[str, Any]) -> str:
    parts = [_bias_card(c, b, r) for c in results.get("candidates", []) for b in c.get("benchmarks", [])
             if b.get("status") == "ok" for r in b.get("bias") or []]
    if not parts:
        return '<p class="muted">No bias probe ran (none in the config, or only encoders, which are skipped).</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def predictions(results: dict[str, Any]) -> str:
    parts = []
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            preds = ((b.get("predictions") or {}).get("test") or [])[:SAMPLE_PREDICTIONS]
            if not preds:
                continue
            rows = [_row([_td(str(i + 1)), _td(_e(p), "text")]) for i, p in enumerate(preds)]
            parts.append(f"<div><h3>{_e(c['name'])} &middot; {_e(b['benchmark'])}</h3><table><thead><tr><th>#</th>"
                         f"<th>prediction (test)</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    if not parts:
        return '<p class="muted">No predictions were stored.</p>'
    return f'<div class="cards">{"".join(parts)}</div>'


def provenance(results: dict[str, Any]) -> str:
    packages = ", ".join(f"{_e(k)} {_e(v)}" for k, v in (results.get("packages") or {}).items())
    config = json.dumps(results.get("config") or {}, indent=1, default=str)
    return (f'<p class="meta">{packages or "package versions not recorded"}</p>'
            f"<details><summary>configuration</summary><pre>{_e(config)}</pre></details>")


def data_warnings(results: dict[str, Any]) -> str:
    lines = warning_lines(results)
    if not lines:
        return "<p>None: the data lint (duplicates, leakage, label balance, lengths) found nothing.</p>"
    return "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in lines) + "</ul>"


def sweeps(results: dict[str, Any]) -> str:
    lines = sweep_lines(results)
    if not lines:
        return "<p>No sweep: every candidate trained with its one configured setting.</p>"
    return "<ul>" + "".join(f"<li>{_e(w)}</li>" for w in lines) + "</ul>"


def render_html(results: dict[str, Any]) -> str:
    """The whole report as one HTML document."""
    name, run_id = results.get("name", ""), results.get("run_id", "")
    passed = bool(results.get("passed"))
    chosen = results.get("recommendation")
    meta = " &middot; ".join(f"{label} <code>{_e(results.get(key) or '-')}</code>" for label, key in
                             (("run", "run_id"), ("config", "config_hash"), ("git", "git_sha"), ("created", "created")))
    verdict = (f'<div class="verdict {"pass" if passed else "fail"}"><strong>{"PASS" if passed else "FAIL"}</strong>'
               f"Recommendation: {_e(chosen) if chosen else 'none'}<br>{_e(recommendation_text(results))}"
               "</div>")
    body = [f"<h1>sftbench &middot; {_e(name)}</h1>", f'<p class="meta">{meta}</p>', verdict,
            "<h2>Leaderboard</h2>", leaderboard(results, all_tie_groups(results)), problems(results),
            "<h2>Gate verdicts</h2>", gates(results),
            "<h2>Data warnings</h2>", data_warnings(results),
            "<h2>Sweep: settings picked on validation</h2>", sweeps(results),
            "<h2>Bias: counterfactual flip rates before and after tuning</h2>", bias_section(results),
            "<h2>Figures</h2>", figures(results),
            "<h2>Most forgotten probe items</h2>", most_forgotten(results),
            f"<h2>Sample predictions (first {SAMPLE_PREDICTIONS} on test)</h2>", predictions(results),
            "<h2>Provenance</h2>", provenance(results)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>sftbench - {_e(name)} - run {_e(run_id)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
