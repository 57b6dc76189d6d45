"""Number formatting shared by the text renderers (terminal, Markdown), so they always agree."""
from __future__ import annotations

from typing import Any

NOT_PERCENT = {"bleu", "chrf", "loss", "perplexity"}  # sacrebleu's 0-100 scale; nats; perplexity


def metric_text(entry: dict[str, Any] | None, pct: bool = True, digits: int = 3) -> str:
    """`81.9 [77.5, 87.2]` for a fraction shown in percent, or the raw value with `digits` decimals."""
    if not entry or entry.get("value") is None or entry["value"] != entry["value"]:
        return "-"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.{digits}f}")
    return f"{f(entry['value'])} [{f(entry['ci_low'])}, {f(entry['ci_high'])}]"


def params_text(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def main_metrics(results: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(benchmark, main metric, other metrics) in the order each benchmark declares them."""
    seen: dict[str, list[str]] = {}
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            if b["scores"].get("test") and b["benchmark"] not in seen:
                seen[b["benchmark"]] = list(b["scores"]["test"])
    return [(bench, names[0], names[1:]) for bench, names in seen.items()]
