"""The cost column's text, shared by the renderers (terminal, Markdown, HTML, JUnit): parameters trained, the
hardware, how latency was measured, the tokens each candidate ran against those in its data (and which path ran),
and GPU peaks and seconds."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness.results.model import CandidateRow, Results


def params_text(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def trained_by_benchmark(c: CandidateRow) -> dict[str, int]:
    """Each scored benchmark's trained parameters (runs written before they were recorded per benchmark: {})."""
    return {b.benchmark: b.trainable_params for b in c.benchmarks if b.trainable_params is not None}


def trained_text(c: CandidateRow) -> str:
    """The candidate's trained parameters: one count, or the range when its benchmarks train different counts (an
    encoder's new head has as many outputs as the benchmark has labels); params_lines lists them per benchmark."""
    values = sorted(set(trained_by_benchmark(c).values()))
    if len(values) > 1:
        return f"{params_text(values[0])}-{params_text(values[-1])}"
    count = values[0] if values else c.trainable_params or 0
    return params_text(count) if count else "0"  # a row scored as it is trains nothing (not "0.0K")


def params_lines(results: Results) -> list[str]:
    """A line per candidate whose benchmarks train different parameter counts, each benchmark's count."""
    out = []
    for c in results.candidates:
        per = trained_by_benchmark(c)
        if len(set(per.values())) > 1:
            out.append(f"{c.name}: trained parameters per benchmark (each tunes its own head): "
                       + ", ".join(f"{bench} {params_text(n)}" for bench, n in per.items()))
    return out


def hardware_text(hw: dict[str, Any] | None) -> str:
    """One line: 'AMD EPYC (bf16 instructions: yes), x86_64, 2 cores, 2 threads' (+ the GPU)."""
    if not hw:
        return "not recorded (a run written before sftbench recorded it)"
    bf16 = {True: "yes", False: "no"}.get(bool(hw["cpu_bf16"]), "unknown") if "cpu_bf16" in hw else "unknown"
    text = (f"{hw.get('cpu') or 'unknown CPU'} (bf16 instructions: {bf16}), {hw.get('machine') or '?'}, "
            f"{hw.get('cores', '?')} cores, {hw.get('threads', '?')} threads")
    if hw.get("gpu"):
        text += f"; GPU {hw['gpu']} (bf16: {'yes' if hw.get('gpu_bf16') else 'no'})"
    return text + ("; the Ray driver's machine (units may run on other nodes)" if hw.get("executor") == "ray" else "")


def latency_lines(results: Results) -> list[str]:
    """How latency per item was measured (harness/execution/latency.py): one line when every candidate's conditions
    are the same, else one per candidate; and which were not measured, with why."""
    found = {c.name: c.cost.latency_conditions for c in results.candidates if c.cost.latency_conditions}
    out = [f"{name}: latency not measured: {k['not_measured']}" for name, k in found.items() if "not_measured" in k]
    measured = {name: k for name, k in found.items() if "not_measured" not in k}

    def how(k: dict[str, Any]) -> str:
        return (f"measured alone after every unit ran ({'shared node' if k.get('shared') else 'nothing else running'})"
                f", {k.get('items')} test items in one scorer call after an untimed pass over them, "
                f"{k.get('threads')} threads, {k.get('device')} {k.get('precision')}")
    kinds = {json.dumps(k, sort_keys=True, default=str) for k in measured.values()}
    if len(kinds) == 1:
        return [f"latency ms/item: {how(next(iter(measured.values())))}"] + out
    return [f"{name}: latency ms/item {how(k)}" for name, k in measured.items()] + out


def cost_lines(results: Results) -> list[str]:
    """The notes on the cost column: trained parameters per benchmark where they differ, how latency was
    measured, and the tokens each candidate ran against those in its data, with the paths that ran."""
    return params_lines(results) + latency_lines(results) + token_lines(results)


def count_short(n: int) -> str:
    """A token count in at most 4 characters and a suffix: 812, 4.3K, 144K, 2.1M."""
    if n < 1000:
        return str(n)
    v, suffix = (n / 1e6, "M") if n >= 1e6 else (n / 1e3, "K")
    return f"{v:.1f}{suffix}" if round(v, 1) < 100 else f"{v:.0f}{suffix}"


def tokens_text(computed: int | None, data: int | None) -> str:
    """`1.9K/4.3K`: tokens the model ran / tokens in the data; `-` where not recorded."""
    return "-" if computed is None or data is None else f"{count_short(computed)}/{count_short(data)}"


def token_costs(results: Results) -> bool:
    """Whether any candidate carries token counts: the cost tables then show tokens run against tokens in the data."""
    return any(c.cost.train_tokens_computed is not None or c.cost.scoring_tokens_computed is not None
               for c in results.candidates)


TOKEN_COSTS = ("train tok run/data", "score tok run/data")


def token_cells(c: CandidateRow) -> list[str]:
    k = c.cost
    return [tokens_text(k.train_tokens_computed, k.train_tokens_in_data),
            tokens_text(k.scoring_tokens_computed, k.scoring_tokens_in_data)]


TOKEN_NOTE = ("tok run/data = tokens the model ran / tokens in the data (every row as it is): a prompt prefix every "
              "row shares (the chat template's system turn, the instruction) runs once per batch in training and "
              "once per call in scoring, where that pays; scoring counts every split, probe and bias pair scored")


def token_lines(results: Results) -> list[str]:
    """What the token columns mean, and per candidate which path training and scoring took (and why not shared)."""
    if not token_costs(results):
        return []
    return [TOKEN_NOTE] + [f"{c.name}: {'; '.join(paths)}" for c in results.candidates
                           if (paths := _training_paths(c) + _scoring_paths(c))]


def _training_paths(c: CandidateRow) -> list[str]:
    tallies = [b.train["prefix"] for b in c.benchmarks if b.status == "ok" and b.train and b.train.get("prefix")]
    if not tallies:
        return []
    shared, batches = sum(t["shared_batches"] for t in tallies), sum(t["batches"] for t in tallies)
    why: Counter[str] = Counter()
    for t in tallies:
        why.update(t["unshared_why"])
    parts = [f"shared prefix in {shared} of {batches} micro-batches"] if shared else []
    parts += [f"unshared ({reason}) in {n} micro-batch{'es' * (n != 1)}" for reason, n in why.most_common()]
    return ["training: " + ", ".join(parts)]


def _scoring_paths(c: CandidateRow) -> list[str]:
    calls: Counter[str] = Counter()
    for b in c.benchmarks:
        for stage in (b.tokens or {}).values() if b.status == "ok" else ():
            calls.update(stage["paths"])
    if not calls:
        return []
    return ["scoring: " + ", ".join(f"{path} in {n} call{'s' * (n != 1)}" for path, n in calls.most_common())]


def gpu_costs(results: Results) -> bool:
    """Whether any candidate's units ran on a GPU: the cost tables then show its peak and GPU-seconds."""
    return any(c.cost.gpu_seconds is not None for c in results.candidates)


GPU_COSTS = ("peak GPU MB", "GPU-s")


def gpu_cells(c: CandidateRow) -> list[str]:
    k = c.cost
    return ["-" if v is None else f"{v:.0f}" for v in (k.peak_gpu_mb, k.gpu_seconds)]


def optional_columns(results: Results) -> tuple[str, ...]:
    """The cost columns a run has numbers for: GPU peak and seconds where a unit ran on a GPU, tokens run against
    tokens in the data where they were counted."""
    return (GPU_COSTS if gpu_costs(results) else ()) + (TOKEN_COSTS if token_costs(results) else ())


def optional_cells(c: CandidateRow, results: Results) -> list[str]:
    """A candidate's cells under `optional_columns`."""
    return (gpu_cells(c) if gpu_costs(results) else []) + (token_cells(c) if token_costs(results) else [])
