"""Number formatting and per-candidate summaries shared by the renderers (terminal, Markdown, HTML), so they
always agree."""
from __future__ import annotations

from typing import Any

NOT_PERCENT = {"bleu", "chrf", "loss", "perplexity"}  # sacrebleu's 0-100 scale; nats; perplexity
BIAS_NOTE = ("bias change = counterfactual flip rate after tuning minus before, in points (> 0: tuning made "
             "predictions depend more on the attribute); '-' = not measured (encoders are skipped: their new "
             "head has no 'before')")


def metric_text(entry: dict[str, Any] | None, pct: bool = True, digits: int = 3) -> str:
    """`81.9 [77.5, 87.2]` for a fraction shown in percent, or the raw value with `digits` decimals."""
    if not entry or entry.get("value") is None or entry["value"] != entry["value"]:
        return "-"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.{digits}f}")
    if entry.get("ci_low") is None or entry.get("ci_high") is None:
        return f(entry["value"])
    return f"{f(entry['value'])} [{f(entry['ci_low'])}, {f(entry['ci_high'])}]"


def params_text(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def main_metrics(results: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(benchmark, main metric, other metrics) in the order each benchmark declares them. The main metric is
    the one the run's generalisation gap was computed on (the benchmark's `main_metric:`), else the first."""
    seen: dict[str, list[str]] = {}
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            names = list((b.get("scores") or {}).get("test") or {})
            if names and b["benchmark"] not in seen:
                main = (b.get("generalisation") or {}).get("metric")
                seen[b["benchmark"]] = [main] + [n for n in names if n != main] if main in names else names
    return [(bench, names[0], names[1:]) for bench, names in seen.items()]


def failing_gates(results: dict[str, Any], name: str) -> list[str]:
    """The gates this candidate fails, in verdict order (any gate kind: only `passed` and `gate` are read)."""
    return [v["gate"] for v in results.get("gates", []) if v.get("candidate") == name and not v.get("passed")]


def gate_failure(results: dict[str, Any], c: dict[str, Any]) -> str:
    """Empty when the candidate passes every gate; else what stops it: its own failure or the first failing
    gate, with how many more fail."""
    if c.get("status") != "ok":
        return f"candidate failed: {c.get('reason', '')}"
    failed = failing_gates(results, c["name"])
    if not failed:
        return ""
    return failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")


def verdict(results: dict[str, Any], c: dict[str, Any]) -> tuple[str, str]:
    """(label, detail) for a candidate's gate column, keeping apart what a reader must not confuse: a zero-shot
    reference row, a candidate that did not learn (at chance: fix the recipe, not the model choice), one that
    learned but fails a gate (worse), and one that passes."""
    failure = gate_failure(results, c)
    if c.get("status") != "ok":
        return "FAIL", failure
    if c.get("zero_shot"):
        return "reference", "zero-shot, untuned" + (f"; fails {failure}" if failure else "; passes every gate")
    if c.get("did_not_learn"):
        return "DID NOT LEARN", ", ".join(c["did_not_learn"]) + " at chance level"
    return ("FAIL", failure) if failure else ("pass", "")


def learning_lines(results: dict[str, Any]) -> list[str]:
    """A line per candidate and benchmark that did not learn (with what to try), and what tuning bought over each
    zero-shot reference row."""
    out = [f"{c['name']} / {b['benchmark']}: did not learn: {b.get('learned_reason', '')}"
           for c in results.get("candidates", []) for b in c.get("benchmarks", []) if b.get("learned") is False
           and not c.get("zero_shot")]
    by_name = {c["name"]: c for c in results.get("candidates", [])}
    mains = {name: metric for name, metric, _ in main_metrics(results)}
    for ref in (c for c in results.get("candidates", []) if c.get("zero_shot")):
        tuned = by_name.get(ref["name"].removesuffix("-zero-shot"))
        if tuned is None:  # no tuned row of this model: nothing to compare with
            continue
        for b in ref.get("benchmarks", []):
            metric = mains.get(b["benchmark"], "")
            zero = ((b.get("scores") or {}).get("test") or {}).get(metric)
            t = next((x for x in (tuned or {}).get("benchmarks", []) if x["benchmark"] == b["benchmark"]), None)
            after = ((t or {}).get("scores") or {}).get("test", {}).get(metric) if t else None
            if zero and after:
                scale = 1 if metric in NOT_PERCENT else 100
                bought = scale * (after["value"] - zero["value"])
                out.append(f"{tuned['name']} / {b['benchmark']}: tuning bought {bought:+.1f} "
                           f"{'' if scale == 1 else 'points of '}{metric} over zero-shot "
                           f"({scale * zero['value']:.1f} -> {scale * after['value']:.1f})")
    return out


def recommendation_text(results: dict[str, Any]) -> str:
    """The recommendation's reason, with how stable it is under resampled seeds and items (harness/stability.py)."""
    text = results.get("recommendation_reason", "")
    stability = results.get("recommendation_stability")
    if stability is None:
        return text
    what = results.get("recommendation") or "no recommendation"
    return f"{text} [stability: {what} in {stability:.0%} of resamples of training seeds and test items]"


def seed_note(results: dict[str, Any]) -> str:
    """How many training seeds each verdict rests on, said under every leaderboard."""
    counts = {len(b.get("seeds") or []) for c in results.get("candidates", []) if not c.get("zero_shot")
              for b in c.get("benchmarks", []) if b.get("status") == "ok"}
    counts.discard(0)  # a stored run from before seeds were recorded
    if not counts or counts == {1}:
        return ("the verdict rests on one training seed per candidate: intervals count test items only, not the "
                "spread between trainings (set recipe.seeds: 3 to measure it)")
    return (f"{'/'.join(map(str, sorted(counts)))} training seeds per candidate: values are means over seeds, "
            "intervals and tests count the seed and the item variance (seed sd under each value)")


def bias_reports(c: dict[str, Any]) -> list[dict[str, Any]]:
    """Every counterfactual bias report of a candidate, over its benchmarks."""
    return [r for b in c.get("benchmarks", []) if b.get("status") == "ok" for r in b.get("bias") or []]


def bias_measured(results: dict[str, Any]) -> bool:
    """Whether the run asked for a bias probe, or any candidate carries one (a stored run without config)."""
    return bool((results.get("config") or {}).get("bias")) or any(
        bias_reports(c) for c in results.get("candidates", []))


def warning_lines(results: dict[str, Any]) -> list[str]:
    """The data lint's warnings a run stored (`sftbench validate` shows the same), as `path:line: message`."""
    out = []
    for w in results.get("warnings") or []:
        where = f"{w.get('path') or ''}:{w['line']}" if w.get("line") else (w.get("path") or "")
        out.append(f"{where}: {w['message']}" if where else w["message"])
    return out


def sweep_lines(results: dict[str, Any]) -> list[str]:
    """Which sweep setting won for whom, picked on validation: one line per candidate and benchmark."""
    mains = {name: metric for name, metric, _ in main_metrics(results)}
    out = []
    for c in results.get("candidates", []):
        for b in c.get("benchmarks", []):
            rows = b.get("sweep") or []
            if rows:
                tied = all(r.get("tied") for r in rows)
                tried = "; ".join(f"lr {r['learning_rate']:g}, {r['epochs']} ep -> {r['validation']:.3f}"
                                  + (" (chosen)" if r.get("chosen") and not tied else "") for r in rows)
                verdict = (f" - all {len(rows)} settings tied on validation: none is better, the first was scored"
                           if tied else "")
                out.append(f"sweep {c['name']} / {b['benchmark']} (validation {mains.get(b['benchmark'], '')}): "
                           f"{tried}{verdict}")
    return out
