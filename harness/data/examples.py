"""`sftbench validate --examples N`: the first N rows of every benchmark split exactly as each candidate reads them.

One JSON line per candidate, benchmark, split and row: {"benchmark", "split", "line", "kind", "candidate", "input",
"target"}. `input` is a causal LM's prompt through that candidate's chat template (its tokenizer is loaded, never its
weights), or an encoder's text (a [first, second] list for a text pair). `target` is what training teaches: the
label text a causal LM is tuned to produce (before EOS), the label key an encoder's head predicts, or the reference.
An lm-eval task's rows are lm-eval's own request: its context (no chat template) and the gold choice's continuation.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.config import BakeoffConfig
from harness.data.encode import prompt_text, uses_chat
from harness.data.lmeval import TASK_KIND as LM_EVAL
from harness.data.specs import load_benchmark
from harness.models.loading import load_tokenizer, resolve


def model_inputs(cfg: BakeoffConfig, n: int, progress: Any = None) -> Iterator[dict[str, Any]]:
    """`progress` (stage(candidate, what), step(done, total)) hears of each candidate's resolving: a bundled GGUF
    model's one-time conversion takes about a minute."""
    benchmarks = [load_benchmark(ref, cfg.base_dir) for ref in cfg.benchmarks]
    for cand in cfg.candidates:
        if progress:
            progress.stage(cand.name, "resolving model")
        handle = resolve(cand.model, cand.revision, cand.trust_remote_code, cand.allow_pickle,
                         on_step=progress.step if progress else None)
        tokenizer = load_tokenizer(handle) if handle.kind == "causal" else None
        chat = tokenizer is not None and uses_chat(tokenizer)
        for spec, splits in benchmarks:
            if handle.kind == "encoder" and spec.task in ("generation", LM_EVAL):
                continue  # n/a: an encoder cannot generate or rank choices by likelihood (the run says so too)
            for name, split in splits.items():
                for ex in split.examples[:n]:
                    if handle.kind == "encoder":
                        text: Any = ex.encoder_text if isinstance(ex.encoder_text, str) else list(ex.encoder_text)
                        target = ex.target
                    elif spec.task == LM_EVAL:  # lm-eval's own request: no chat template, the gold continuation
                        text, target = ex.raw["requests"][int(ex.target)]
                    else:
                        text = prompt_text(tokenizer, ex, chat)
                        target = spec.labels[ex.target] if spec.task == "classification" else ex.target
                    yield {"benchmark": spec.name, "split": name, "line": ex.line, "kind": handle.kind,
                           "candidate": cand.name, "input": text, "target": target}
