"""The HTML report's figures, drawn with matplotlib and returned as inline SVG text: loss curves, the main metric
on validation during training, the main metric with its interval per candidate, learning versus forgetting,
quality versus cost. Each function returns
None when the results hold nothing to draw; a failed candidate, an n/a benchmark or a missing probe only drops
that element. The output is byte-for-byte repeatable: fixed hash salt for SVG ids, no date in the metadata."""
from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import matplotlib

from harness.results.model import BenchmarkRow, CandidateRow, MetricScore, Results
from reports.format import in_percent, metric_scale
from reports.format import main_metric_of as main_metrics

matplotlib.use("Agg")
from matplotlib.axes import Axes  # imported after the backend is chosen
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# parse_math off: names with "$" stay plain text, never mathtext (a stray "$" or "\\" would not parse); so no
# formatter here may rely on mathtext either (the log axis gets its own).
RC: dict[RcKeyType, Any] = {"svg.hashsalt": "sftbench", "svg.fonttype": "none", "text.parse_math": False}
MARKERS = "osD^vP*X"
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
PANEL = (5.2, 3.6)  # inches per benchmark panel


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _ok(entry: MetricScore | None) -> bool:
    return entry is not None and _finite(entry.value)


def _score(b: BenchmarkRow, split: str, metric: str) -> MetricScore | None:
    """The metric entry on that split, or None when it is missing or not a finite number."""
    entry = b.score(split, metric)
    return entry if _ok(entry) else None


def _unit(metric: str, results: Results) -> str:
    return " (%)" if in_percent(metric, results) else ""


def _interval(entry: MetricScore, scale: float) -> tuple[float, float]:
    """Whisker lengths below and above the value; zero where the interval is missing."""
    v = entry.value if entry.value is not None else math.nan
    low, high = entry.ci_low, entry.ci_high
    below = v - low if isinstance(low, (int, float)) and math.isfinite(low) else 0.0
    above = high - v if isinstance(high, (int, float)) and math.isfinite(high) else 0.0
    return max(0.0, scale * below), max(0.0, scale * above)


def _ok_benches(results: Results, bench: str) -> Iterator[tuple[CandidateRow, BenchmarkRow]]:
    """(candidate, benchmark entry) for every candidate whose run of this benchmark finished."""
    for c in results.candidates:
        if c.status != "ok":
            continue
        b = next((x for x in c.benchmarks if x.benchmark == bench and x.status == "ok"), None)
        if b is not None:
            yield c, b


def _colours(results: Results) -> dict[str, str]:
    """One colour per candidate, the same in every figure."""
    return {c.name: f"C{i % 10}" for i, c in enumerate(results.candidates)}


def _panels(n: int, extra_height: float = 0.0) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(PANEL[0] * min(n, 2), PANEL[1] * math.ceil(n / 2) + extra_height), layout="constrained")
    axes = fig.subplots(math.ceil(n / 2), min(n, 2), squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _svg(fig: Figure, key: str) -> str:
    """The figure as an <svg> element for inlining: no XML prolog, ids prefixed so several figures can share
    one page. Only tags are rewritten; text content is already escaped by matplotlib and left alone."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata=NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    refs = re.compile(r'(\bid="|url\(#|href="#)')
    return re.sub(r"<[^>]*>", lambda tag: refs.sub(lambda m: m.group(1) + key + "-", tag.group(0)), text)


def _count(n: float) -> str:
    return f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}K" if n >= 1e3 else f"{n:g}"


def _short(name: str, limit: int = 28) -> str:
    """Figure labels are cut to keep the axes readable; the tables carry the full names."""
    return name if len(name) <= limit else name[:limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _label(ax: Axes, text: str, x: float, y: float, colour: str) -> None:
    ax.annotate(_short(text), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8, color=colour)


def _loss_points(train: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(training, validation) loss as (optimizer step, loss): training at every logged step (`step_loss`), else at
    each evaluation of the curve, else at each epoch's end; validation at every evaluation (step 0 = before
    training), else after each epoch (a run stored before step-level curves)."""
    curve, steps = train.get("curve") or [], train.get("steps") or 0
    tl, vl = train.get("train_loss") or [], train.get("val_loss") or []
    logged = [(s, v) for s, v in train.get("step_loss") or [] if _finite(v)]
    logged = logged or [(p["step"], p["train_loss"]) for p in curve if _finite(p.get("train_loss"))]
    logged = logged or [(steps * (i + 1) / len(tl), v) for i, v in enumerate(tl) if _finite(v)]
    val = [(p["step"], p["val_loss"]) for p in curve if _finite(p.get("val_loss"))]
    val = val or [(steps * i / max(len(vl) - 1, 1), v) for i, v in enumerate(vl) if _finite(v)]
    return logged, val


def loss_curves(results: Results) -> str | None:
    """Training loss at every logged optimizer step and validation loss at every evaluation, per candidate and
    benchmark, on one step axis."""
    curves: dict[str, list[tuple[str, list[tuple[float, float]], list[tuple[float, float]]]]] = {}
    for c in results.candidates:
        for b in c.benchmarks:
            tl, vl = _loss_points(b.train or {})
            if tl or vl:
                curves.setdefault(b.benchmark, []).append((c.name, tl, vl))
    if not curves:
        return None
    colours = _colours(results)
    names = list(dict.fromkeys(name for runs in curves.values() for name, _, _ in runs))
    with matplotlib.rc_context(RC):
        fig, axes = _panels(len(curves), extra_height=0.25 * math.ceil((len(names) + 2) / 4))  # legend rows
        for ax, (bench, runs) in zip(axes, curves.items()):
            for name, tl, vl in runs:
                colour = colours.get(name, "C0")
                if tl:  # many logged steps: a line; a few: markers too
                    ax.plot([s for s, _ in tl], [v for _, v in tl], "-", color=colour, lw=1.2,
                            marker="o" if len(tl) <= 40 else None, ms=3)
                if vl:
                    ax.plot([s for s, _ in vl], [v for _, v in vl], "--s", color=colour, ms=4, mfc="white")
            ax.set_title(bench)
            ax.set_xlabel("optimizer step (0 = before training)")
            ax.set_ylabel("loss")
            if isinstance(locator := ax.xaxis.get_major_locator(), MaxNLocator):  # a linear axis's AutoLocator
                locator.set_params(integer=True)
            ax.grid(alpha=0.3)
        # one legend for every panel, under them: colour = candidate, line style = split
        handles = [Line2D([], [], color=colours.get(n, "C0"), lw=2, label=_short(n)) for n in names]
        handles += [Line2D([], [], color="black", ls="-", lw=1.2, label="train (logged steps)"),
                    Line2D([], [], color="black", ls="--", marker="s", ms=4, mfc="white", label="validation")]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
        return _svg(fig, "loss")


def _entries_per_benchmark(results: Results, entry: Any) -> list[tuple[str, str, list[tuple]]]:
    """(benchmark, main metric, entries) per benchmark with at least one entry; `entry(candidate, benchmark dict,
    metric)` gives a candidate's plotted tuple, or None when it has nothing to plot there."""
    panels = []
    for bench, metric in main_metrics(results).items():
        entries = [e for c, b in _ok_benches(results, bench) if (e := entry(c, b, metric)) is not None]
        if entries:
            panels.append((bench, metric, entries))
    return panels


def metric_curves(results: Results) -> str | None:
    """The main metric on validation at every evaluation during training (step 0 = before training), per candidate
    and benchmark, where the run evaluated it (recipe.eval_metric); the best evaluation by recipe.monitor is ringed
    (its weights are the ones kept when recipe.restore_best)."""
    def line(c: CandidateRow, b: BenchmarkRow, metric: str) -> tuple | None:
        train = b.train or {}
        points = [(p["step"], p["val_metric"]) for p in train.get("curve") or [] if _finite(p.get("val_metric"))]
        return (c.name, points, train.get("best_step")) if points else None

    panels = _entries_per_benchmark(results, line)
    if not panels:
        return None
    colours = _colours(results)
    with matplotlib.rc_context(RC):
        fig, axes = _panels(len(panels))
        for ax, (bench, metric, lines) in zip(axes, panels):
            scale = metric_scale(metric, results)
            for name, points, best in lines:
                colour = colours.get(name, "C0")
                ax.plot([s for s, _ in points], [scale * v for _, v in points], "-o", color=colour, ms=3,
                        label=_short(name))
                ax.plot([s for s, _ in points if s == best], [scale * v for s, v in points if s == best], "o",
                        ms=10, mfc="none", color=colour)
            ax.plot([], [], "o", ms=10, mfc="none", color="black", label="best evaluation")
            ax.set_title(bench)
            ax.set_xlabel("optimizer step (0 = before training)")
            ax.set_ylabel(f"validation {metric}{_unit(metric, results)}")
            if isinstance(locator := ax.xaxis.get_major_locator(), MaxNLocator):  # a linear axis's AutoLocator
                locator.set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        return _svg(fig, "valmetric")


def metric_bars(results: Results) -> str | None:
    """Main metric per candidate with its 95% interval, test and shifted side by side, one panel per benchmark."""
    def row(c: CandidateRow, b: BenchmarkRow, metric: str) -> tuple | None:
        test, shifted = _score(b, "test", metric), _score(b, "shifted", metric)
        return (c.name, test, shifted) if test or shifted else None

    panels = _entries_per_benchmark(results, row)
    if not panels:
        return None
    with matplotlib.rc_context(RC):
        fig, axes = _panels(len(panels))
        for ax, (bench, metric, rows) in zip(axes, panels):
            scale, width = metric_scale(metric, results), 0.38
            for offset, split, colour in ((-width / 2, "test", "C0"), (width / 2, "shifted", "C1")):
                xs, ys, errs = [], [], []
                for i, item in enumerate(rows):
                    entry = item[1] if split == "test" else item[2]
                    if entry is not None:
                        xs.append(i + offset)
                        ys.append(scale * entry.value)
                        errs.append(_interval(entry, scale))
                if xs:
                    ax.bar(xs, ys, width, color=colour, label=split,
                           yerr=[[e[0] for e in errs], [e[1] for e in errs]], capsize=3, ecolor="black")
            ax.set_xticks(range(len(rows)), [_short(r[0]) for r in rows], rotation=20, ha="right", fontsize=8)
            pad = max(0.0, (3 - len(rows)) / 2)  # a lone candidate keeps a bar of normal width, centred
            ax.set_xlim(-0.6 - pad, len(rows) - 0.4 + pad)
            ax.margins(y=0.2)  # headroom for the legend
            ax.set_title(bench)
            ax.set_ylabel(f"{metric}{_unit(metric, results)}, 95% interval")
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8)
        return _svg(fig, "bars")


def learning_forgetting(results: Results) -> str | None:
    """x: test score on the benchmark, y: forgetting on each candidate's first probe (before - after, points),
    with intervals. Candidates may be probed on different suites (a probe may not apply to an encoder), so the
    marker shape names the probe."""
    def point(c: CandidateRow, b: BenchmarkRow, metric: str) -> tuple | None:
        test = _score(b, "test", metric)
        probe = b.probes[0] if b.probes else None
        ok = test and probe is not None and _ok(probe.forgetting)
        return (c.name, test, probe.forgetting, str(probe.probe or "probe")) if ok and probe else None

    panels = _entries_per_benchmark(results, point)
    if not panels:
        return None
    colours = _colours(results)
    with matplotlib.rc_context(RC):
        fig, axes = _panels(len(panels))
        for ax, (bench, metric, points) in zip(axes, panels):
            scale = metric_scale(metric, results)
            probes = list(dict.fromkeys(p[3] for p in points))
            for name, test, forgetting, probe in points:
                x, y = scale * test.value, 100 * forgetting.value
                xerr, yerr = _interval(test, scale), _interval(forgetting, 100)
                colour = colours.get(name, "C0")
                ax.errorbar([x], [y], xerr=[[xerr[0]], [xerr[1]]], yerr=[[yerr[0]], [yerr[1]]], ls="none",
                            marker=MARKERS[probes.index(probe) % len(MARKERS)], color=colour, capsize=3)
                _label(ax, name, x, y, colour)
            for i, probe in enumerate(probes):  # legend entries for the probes, in black
                ax.plot([], [], ls="none", marker=MARKERS[i % len(MARKERS)], color="black", label=probe)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(bench)
            # the base model's task score is not in results.json, so x is the raw score, not a gain
            ax.set_xlabel(f"task score: test {metric}{_unit(metric, results)} (raw, not gain over base)")
            ax.set_ylabel("forgetting on first probe\n(points lost; > 0 = forgot)")
            ax.legend(title="probe", fontsize=7, title_fontsize=7)
            ax.grid(alpha=0.3)
            ax.margins(x=0.25, y=0.25)
        return _svg(fig, "forget")


def quality_cost(results: Results) -> str | None:
    """x: parameter count (log scale), y: main metric on test with its interval, one labelled point per candidate."""
    def point(c: CandidateRow, b: BenchmarkRow, metric: str) -> tuple | None:
        test = _score(b, "test", metric)
        sized = isinstance(c.params, (int, float)) and c.params > 0
        return (c.name, c.params, test) if test and sized else None

    panels = _entries_per_benchmark(results, point)
    if not panels:
        return None
    colours = _colours(results)
    with matplotlib.rc_context(RC):
        fig, axes = _panels(len(panels))
        for ax, (bench, metric, points) in zip(axes, panels):
            scale = metric_scale(metric, results)
            for name, params, test in points:
                y, yerr = scale * test.value, _interval(test, scale)
                colour = colours.get(name, "C0")
                ax.errorbar([params], [y], yerr=[[yerr[0]], [yerr[1]]], fmt="o", color=colour, capsize=3)
                _label(ax, name, params, y, colour)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _count(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            lo, hi = min(p[1] for p in points), max(p[1] for p in points)
            ax.set_xlim(lo / 2, hi * 3)  # room for the labels, and a range even for a single candidate
            ax.set_title(bench)
            ax.set_xlabel("parameters (log scale)")
            ax.set_ylabel(f"test {metric}{_unit(metric, results)}")
            ax.grid(alpha=0.3, which="both")
            ax.margins(y=0.25)
        return _svg(fig, "cost")


FIGURES = (("Training loss per logged step and validation loss", loss_curves),
           ("Main metric on validation during training", metric_curves),
           ("Main metric per candidate, test and shifted (95% intervals)", metric_bars),
           ("Learning versus forgetting", learning_forgetting),
           ("Quality versus cost", quality_cost))
