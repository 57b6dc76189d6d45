"""Number formatting and per-candidate summaries shared by the renderers (terminal, Markdown, HTML), so they
always agree."""
from __future__ import annotations

from collections import Counter
from typing import Any

from harness.results.model import BiasRow, CandidateRow, MetricScore, Results, TieGroup

NOT_PERCENT = {"bleu", "chrf", "loss", "perplexity"}  # sacrebleu's 0-100 scale; nats; perplexity
BIAS_NOTE = ("bias change = counterfactual flip rate after tuning minus before, in points (> 0: tuning made "
             "predictions depend more on the attribute); '-' = not measured (encoders are skipped: their new "
             "head has no 'before')")


def metric_text(entry: MetricScore | None, pct: bool = True, digits: int = 3) -> str:
    """`81.9 [77.5, 87.2]` for a fraction shown in percent, or the raw value with `digits` decimals; `81.9 (point
    only)` for a metric without an interval."""
    if entry is None or entry.value is None or entry.value != entry.value:
        return "-"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.{digits}f}")
    if entry.ci_low is None or entry.ci_high is None:
        return f(entry.value)
    if entry.ci_low != entry.ci_low:  # NaN: a metric declared point-only (an evaluate module, interval: none)
        return f"{f(entry.value)} (point only)"
    return f"{f(entry.value)} [{f(entry.ci_low)}, {f(entry.ci_high)}]"


def count_text(n: float | None) -> str:
    """An item count, or a mean of counts over seeds (one decimal)."""
    if n is None:
        return "-"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def mcnemar_text(p: float | None, per_seed: list[float] | None, spec: str = ".3g") -> str:
    """McNemar's p of one tuned model; under seeds, each seed's (the change's interval is the seed-aware test)."""
    if per_seed:
        return "per seed " + ", ".join(format(v, spec) for v in per_seed)
    return "-" if p is None else format(p, spec)


def main_metrics(results: Results) -> list[tuple[str, str, list[str]]]:
    """(benchmark, main metric, other metrics): the stored tie groups' benchmarks and metrics, in column order
    (harness/results/ties.py chose them), and each benchmark's other metrics on test in declared order."""
    out = []
    for ties in results.tie_groups:
        names = next((list(b.scores.get("test") or {}) for c in results.candidates for b in c.benchmarks
                      if b.benchmark == ties.benchmark and b.scores.get("test")), [])
        out.append((ties.benchmark, ties.metric, [n for n in names if n != ties.metric]))
    return out


def main_metric_of(results: Results) -> dict[str, str]:
    """benchmark -> main metric, in column order."""
    return {bench: metric for bench, metric, _ in main_metrics(results)}


def metric_scale(metric: str, results: Results | None = None) -> float:
    """The factor a metric's values are shown with: 100 for shares, shown in percent; 1 for metrics shown as they are
    (BLEU and chrF on sacrebleu's 0-100, loss, perplexity, and a metric a spec declares with a scale other than 1: the
    run's `metric_scales`)."""
    declared = (results.metric_scales or {}) if results is not None else {}
    return float(declared[metric]) if metric in declared else 1.0 if metric in NOT_PERCENT else 100.0


def in_percent(metric: str, results: Results | None = None) -> bool:
    return metric_scale(metric, results) == 100.0


def ranked(results: Results) -> list[CandidateRow]:
    """Candidates in leaderboard order: by the first benchmark's ranking, then everyone it could not rank in
    the results' own order."""
    first = results.tie_groups[0].order if results.tie_groups else []
    by_name = {c.name: c for c in results.candidates}
    return [by_name[n] for n in first] + [c for c in results.candidates if c.name not in first]


def tie_notes(groups: tuple[TieGroup, ...]) -> list[str]:
    return [f"{t.benchmark}: {n}" for t in groups for n in t.notes]


def failing_gates(results: Results, name: str) -> list[str]:
    """The gates this candidate fails, in verdict order (any gate kind: only `passed` and `gate` are read)."""
    return [v.gate for v in results.gates if v.candidate == name and not v.passed]


def gate_failure(results: Results, c: CandidateRow) -> str:
    """Empty when the candidate passes every gate; else what stops it: its own failure or the first failing
    gate, with how many more fail."""
    if c.status != "ok":
        return f"candidate failed: {c.reason}"
    failed = failing_gates(results, c.name)
    if not failed:
        return ""
    return failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")


def verdict(results: Results, c: CandidateRow) -> tuple[str, str]:
    """(label, detail) for a candidate's gate column, keeping apart what a reader must not confuse: a zero-shot
    reference row, a candidate that did not learn (at chance: fix the recipe, not the model choice), one that
    learned but fails a gate (worse), and one that passes. A peft adapter scored as it is is a candidate like a
    tuned row; its detail says it is an adapter."""
    label, detail = _verdict(results, c)
    if c.adapter and c.status == "ok":
        detail = "; ".join(part for part in (detail, "peft adapter, scored as it is") if part)
    return label, detail


def _verdict(results: Results, c: CandidateRow) -> tuple[str, str]:
    failure = gate_failure(results, c)
    if c.status != "ok":
        return "FAIL", failure
    if c.zero_shot:
        return "reference", "zero-shot, untuned" + (f"; fails {failure}" if failure else "; passes every gate")
    if c.did_not_learn:
        return "DID NOT LEARN", ", ".join(c.did_not_learn) + " at chance level"
    return ("FAIL", failure) if failure else ("pass", "")


def base_zero_shot(results: Results, c: CandidateRow) -> CandidateRow | None:
    """The zero-shot reference row of a tuned or adapter candidate's base model: `<name>-zero-shot`, else a
    `tuner: none` row of the same model and revision without an adapter; never the row itself."""
    if c.zero_shot:
        return None
    named = results.candidate(f"{c.name}-zero-shot")
    if named is not None and named.zero_shot:
        return named
    return next((r for r in results.candidates if r.zero_shot and r.adapter is None and r.model == c.model
                 and r.revision == c.revision), None)


def learning_lines(results: Results) -> list[str]:
    """A line per candidate and benchmark that did not learn (with what to try), per candidate and probe whose base
    score is not above chance (uninformative), what tuning bought over each zero-shot reference row, what an
    adapter scores over its base's zero-shot row."""
    out = [f"{c.name} / {b.benchmark}: did not learn: {b.learned_reason or ''}"
           for c in results.candidates for b in c.benchmarks if b.learned is False and not c.zero_shot]
    seen = set()
    for c in results.candidates:
        for b in c.benchmarks:
            for p in b.probes if b.status == "ok" else []:
                if p.informative is False and (c.name, p.probe) not in seen and p.before and p.after:
                    seen.add((c.name, p.probe))  # the base model's score is the same after every benchmark
                    out.append(f"{c.name} / {p.probe}: uninformative probe for this model: base "
                               f"{100 * (p.before.value or 0):.1f}% is not above chance {100 * (p.chance or 0):.1f}% "
                               f"(after {100 * (p.after.value or 0):.1f}% on {b.benchmark}); its forgetting says "
                               "little")
    mains = {name: metric for name, metric, _ in main_metrics(results)}
    for tuned in results.candidates:
        ref = base_zero_shot(results, tuned)
        if ref is None:  # a reference row, or no zero-shot row of this model: nothing to compare with
            continue
        for b in ref.benchmarks:
            metric = mains.get(b.benchmark, "")
            zero = b.score("test", metric)
            t = tuned.benchmark(b.benchmark)
            after = t.score("test", metric) if t else None
            if zero and after and zero.value is not None and after.value is not None:
                scale = metric_scale(metric, results)
                bought = scale * (after.value - zero.value)
                amount = f"{bought:+.1f} {'' if scale == 1 else 'points of '}{metric}"
                what = (f"the adapter scores {amount} over its base's zero-shot row {ref.name}" if tuned.adapter
                        else f"tuning bought {amount} over zero-shot")
                out.append(f"{tuned.name} / {b.benchmark}: {what} "
                           f"({scale * zero.value:.1f} -> {scale * after.value:.1f})")
    return out + setting_lines(results)


def setting_lines(results: Results) -> list[str]:
    """The setting each candidate was tuned with, where the candidates' settings differ (a candidate's own learning
    rate, or a sweep that chose differently)."""
    settings = {(c.name, b.benchmark): (b.learning_rate, b.epochs) for c in results.candidates for b in c.benchmarks
                if b.status == "ok" and b.epochs is not None}
    if len(set(settings.values())) < 2:
        return []
    return [f"{name} / {bench}: tuned with lr {lr:g} for {epochs} epoch{'s' if epochs != 1 else ''}"
            for (name, bench), (lr, epochs) in settings.items()]


def reliability(results: Results) -> str | None:
    """"reliable", "tentative" (bootstrap agreement below the config's recommendation_tentative_below, 0.8 by
    default) or None (nothing recommended, or no agreement measured)."""
    share, extra = results.recommendation_stability, results.recommendation_agreement or {}
    if results.recommendation is None or share is None:
        return None
    return extra.get("reliability") or ("reliable" if share >= float(extra.get("tentative_below") or 0.8)
                                        else "tentative")


def reliability_text(results: Results) -> str:
    """How reliable the recommendation is, in words, and for a tentative one what would settle it ("" when
    reliability is None)."""
    word = reliability(results)
    if word is None:
        return ""
    share, extra = results.recommendation_stability or 0.0, results.recommendation_agreement or {}
    where = "of resamples of training seeds and test items"
    if word == "reliable":
        return f"reliable: recommended in {share:.0%} {where}"
    below = float(extra.get("tentative_below") or 0.8)
    return (f"tentative: recommended in only {share:.0%} {where} (below {below:.0%}); to settle it: "
            f"{extra.get('settle') or 'more training seeds per candidate, or more test items'}")


def per_benchmark_text(results: Results) -> str:
    """Each benchmark's own pick beside the overall recommendation ("" with one benchmark)."""
    picks = (results.recommendation_agreement or {}).get("per_benchmark") or []
    parts = []
    for p in picks:
        if p.get("candidate") is None:
            parts.append(f"{p['benchmark']}: none eligible")
            continue
        value = p.get("value")
        score = (f"{p['metric']} {value * metric_scale(p['metric'], results):.1f}, "
                 if value is not None and p.get("metric") else "")
        parts.append(f"{p['benchmark']}: {p['candidate']} ({score}{(p.get('params') or 0) / 1e6:.1f}M)")
    return "each benchmark alone would pick " + "; ".join(parts) if parts else ""


def recommendation_text(results: Results) -> str:
    """The recommendation's reason, how reliable it is in words (its bootstrap agreement under resampled seeds and
    items; tentative below the config's threshold, with what would settle it), the deciding gate's distance from
    its threshold, the gates held fixed (harness/gates/stability.py) and each benchmark's own pick."""
    text = results.recommendation_reason
    stability = results.recommendation_stability
    if stability is None:
        return text
    what = results.recommendation or "no recommendation"
    extra = results.recommendation_agreement or {}
    deciding = (f"; deciding gate '{extra['deciding_gate']}' {extra['margin_se']:.1f} SE past its threshold"
                if extra.get("deciding_gate") and extra.get("margin_se") is not None else "")
    held = f"; held fixed: {', '.join(extra['held_fixed'])}" if extra.get("held_fixed") else ""
    words = reliability_text(results)
    agreement = (f"[{words}{deciding}{held}]" if words else
                 f"[bootstrap agreement: {what} in {stability:.0%} of resamples of training seeds and test items"
                 f"{deciding}{held}]")
    beside = per_benchmark_text(results)
    return f"{text} {agreement}" + (f"; {beside}" if beside else "")


def seed_note(results: Results) -> str:
    """How many training seeds each verdict rests on, said under every leaderboard."""
    counts = {len(b.seeds or []) for c in results.candidates if not c.zero_shot for b in c.benchmarks
              if b.status == "ok"}
    counts.discard(0)  # a stored run from before seeds were recorded
    if not counts or counts == {1}:
        return ("the verdict rests on one training seed per candidate: intervals count test items only, not the "
                "spread between trainings (set recipe.seeds: 3 to measure it)")
    return (f"{'/'.join(map(str, sorted(counts)))} training seeds per candidate: values are means over seeds, "
            "intervals and tests count the seed and the item variance (seed sd under each value)")


def adaptive_lines(results: Results) -> list[str]:
    """Adaptive seeds (results.json `adaptive`): fine-tunes run against the full grid, why the run stopped, the
    rule's stability, and each candidate and setting's seeds and why it stopped. [] without adaptive seeds."""
    ad = results.adaptive
    if not ad:
        return []
    lines = [f"adaptive seeds: {ad['fine_tunes']} of {ad['full_grid']} fine-tunes (the full grid: every candidate and "
             f"setting at {ad['max']} seeds), {ad['rounds']} round{'s' * (ad['rounds'] != 1)}; stopped because "
             f"{ad['stopped_because']}; the rule's stability of "
             f"{'the recommendation' if results.recommendation else 'no recommendation'} {ad['stability']:.0%} "
             f"(target {ad['stability_target']:g})"
             + (f"; {ad['device_hours']:.3g} of the budget's {ad['device_budget_hours']:g} device-hours "
                f"({ad['devices']})" if ad.get("device_budget_hours") is not None else "")]
    for arm in ad["arms"]:
        lines.append(f"  {arm['candidate']} lr {arm['learning_rate']:g}, {arm['epochs']} epoch"
                     f"{'s' * (arm['epochs'] != 1)}: {arm['seeds']} seed{'s' * (arm['seeds'] != 1)}, {arm['stopped']}")
    return lines


def bias_reports(c: CandidateRow) -> list[BiasRow]:
    """Every counterfactual bias report of a candidate, over its benchmarks."""
    return [r for b in c.benchmarks if b.status == "ok" for r in b.bias]


def bias_measured(results: Results) -> bool:
    """Whether the run asked for a bias probe, or any candidate carries one (a stored run without config)."""
    return bool(results.config.get("bias")) or any(bias_reports(c) for c in results.candidates)


LISTED = 5  # data warnings of one kind (and file) listed one by one; the rest are counted in one line
WARNINGS_FILE = "warnings.txt"  # every data warning of a run, beside results.json (reports/data_warnings.py)


def capped(warnings: list[dict[str, Any]], limit: int = LISTED) -> list[dict[str, Any]]:
    """At most `limit` warnings of each kind in each file, in their order; after the last one listed, one warning
    counting the rest (`... and 395 more duplicate rows in train (400 in all)`; never "1 more": it is listed). A
    warning without a kind (one of its kind, or stored by a run before kinds) is always listed."""
    def key(w: dict[str, Any]) -> tuple[str, str, str] | None:
        return (w.get("benchmark") or "", w.get("path") or "", w["kind"]) if w.get("kind") else None

    total = Counter(k for w in warnings if (k := key(w)))
    seen: Counter[tuple[str, str, str]] = Counter()
    out = []
    for w in warnings:
        k = key(w)
        if k is None or total[k] <= limit + 1:
            out.append(w)
            continue
        seen[k] += 1
        if seen[k] <= limit:
            out.append(w)
        if seen[k] == total[k]:
            out.append({"level": w["level"], "path": w.get("path") or "", "line": None,
                        "message": f"... and {total[k] - limit} more {k[2]} ({total[k]} in all)"})
    return out


def warning_line(w: dict[str, Any]) -> str:
    """`path:line: message`."""
    where = f"{w.get('path') or ''}:{w['line']}" if w.get("line") else (w.get("path") or "")
    return f"{where}: {w['message']}" if where else w["message"]


def warning_lines(results: Results, limit: int | None = LISTED) -> list[str]:
    """The data lint's warnings a run stored (`sftbench validate` shows the same), as `path:line: message`: at most
    `limit` of each kind (every one with None), naming the file that lists them all when some were left out."""
    warnings = results.warnings if limit is None else capped(results.warnings, limit)
    lines = [warning_line(w) for w in warnings]
    if len(warnings) < len(results.warnings):
        lines.append(f"all {len(results.warnings)} data warnings: {WARNINGS_FILE}, beside results.json")
    return lines


def score_warnings(results: Results, benchmark: str) -> list[str]:
    """The data warnings that bear on a benchmark's scores (a label in test that train lacks), for beside them."""
    return [w["message"] for w in results.warnings if w.get("scores") and w.get("benchmark") == benchmark]


def sweep_lines(results: Results) -> list[str]:
    """Which sweep setting won for whom, picked on validation: one line per candidate and benchmark."""
    mains = {name: metric for name, metric, _ in main_metrics(results)}
    out = []
    for c in results.candidates:
        for b in c.benchmarks:
            rows = b.sweep or []
            if rows:
                tied = all(r.get("tied") for r in rows)
                tried = "; ".join(f"lr {r['learning_rate']:g}, {r['epochs']} ep -> {r['validation']:.3f}"
                                  + (" (chosen)" if r.get("chosen") and not tied else "") for r in rows)
                verdict = (f" - all {len(rows)} settings tied on validation: none is better, the first was scored"
                           if tied else "")
                out.append(f"sweep {c.name} / {b.benchmark} (validation {mains.get(b.benchmark, '')}): "
                           f"{tried}{verdict}")
    return out
