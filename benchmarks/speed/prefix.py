"""Speed benchmark (not a test): the shared prompt prefix (harness/models/prefix.py) in scoring, probes, bias pairs
and generation, each against the same code with sharing off, on the same model, items and precision, in one
process. The arms are interleaved (A B, B A, A B ...) `--repeats` times and the median of the per-repeat ratios is
reported, so a shared, noisy machine slows both arms alike.

- scoring: the demo's test split (support_intents test, every item x 7 label options through the chat template).
  Arms: `pipeline`, what a scoring unit runs now (harness/scoring/ranking.py best_continuations: the shared prefix,
  the losing options stopped at a bound; under bf16 every linear weight as a bf16 copy for the unit); `today`, the
  scorer before issue 29 (harness/scoring/lm.py continuation_logprobs with share=False: packed option rows, the
  cost model's batches, autocast re-casting the weights every pass); `session 11` (continuation_logprobs with
  share=True, no copies). Predictions (argmax over the options) must be identical. `--adapter` scores a tuned model.
- probes: general_knowledge (plain-text prompts, no chat template): the same arms, the pipeline's being
  continuation_logprobs with share=True (probes need every option's log-likelihood: the margin).
- bias: intent_bias, both sides of every pair through support_intents' prompt: as probes.
- generation: ticket_summaries test prompts, greedy, max_new_tokens 40: harness/scoring/lm.py generate with
  share=True (the prefix once, then a greedy loop over the KV cache) against share=False (HF `generate` on the
  whole left-padded prompts, 8 a batch, which is what sftbench ran before; `--hf-batch 8 32` adds an arm with HF
  `generate` at the shared path's own 32 a batch). Greedy outputs must be identical (in fp32: under bf16 autocast
  HF `generate` does not agree with itself across batch sizes, benchmarks/speed/generation_floor.py).

    PYTHONPATH=. .venv/bin/python benchmarks/speed/prefix.py [--repeats 3] [--arms scoring probes bias generation]
        [--items N] [--model smollm2-135m] [--adapter FOLDER] [--bf16 auto|on|off] [--hf-batch 8 32]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py

from harness.config import BUNDLED_DIR, SuiteRef  # noqa: E402
from harness.data.encode import prompt_ids, uses_chat  # noqa: E402
from harness.data.specs import load_benchmark, load_benchmark_spec  # noqa: E402
from harness.models.device import autocast, frozen_linears_in_bf16, set_threads, use_bf16  # noqa: E402
from harness.models.loading import load_adapter, load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.bias import load_bias_suite, render_pair_inputs  # noqa: E402
from harness.scoring.generation import generate  # noqa: E402
from harness.scoring.lm import Tokens, continuation_logprobs  # noqa: E402
from harness.scoring.probes import choice_pairs, load_probe  # noqa: E402
from harness.scoring.ranking import best_continuations  # noqa: E402
from harness.scoring.tasks import label_pairs  # noqa: E402

MAX_LENGTH = 192  # the demo recipe's max_length
RESULTS: list[dict[str, Any]] = []  # every race, for --json


def scoring_inputs(tok: Any, examples: list[Any], spec: Any) -> tuple[list[list[int]], list[list[int]], int]:
    """Contexts and continuations as harness/scoring/tasks.py scores a causal classifier; and options per item."""
    contexts, conts = label_pairs(spec, examples, tok, MAX_LENGTH)
    return contexts, conts, len(spec.labels)


def probe_inputs(tok: Any, items: list[Any]) -> tuple[list[list[int]], list[list[int]], int]:
    """As harness/scoring/probes.py scores a multiple-choice probe (every item has 1 + 3 options)."""
    contexts, conts = choice_pairs(items, tok)
    return contexts, conts, 1 + len(items[0].distractors)


def argmax_per_item(scores: list[tuple[float, int]], k: int) -> list[int]:
    return [max(range(k), key=lambda j: scores[i + j][0]) for i in range(0, len(scores), k)]


def race(name: str, arms: dict[str, Callable[[bool], Any]], repeats: int, same: Callable[[Any, Any], str]) -> None:
    """Run the arms interleaved `repeats` times (the order reversed every other repeat); print each time, the median
    per-repeat ratio of every other arm's time to the first arm's, and whether each one's outputs agree with it."""
    names = list(arms)
    for warm_up in arms.values():
        warm_up(True)  # untimed, on a few items: a process's first pass pays for allocations and kernel choices
    times: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, Any] = {}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            outputs[n] = arms[n](False)
            times[n].append(time.perf_counter() - start)
    first = names[0]
    for other in names[1:]:
        ratios = [u / s for u, s in zip(times[other], times[first])]
        agreement = same(outputs[first], outputs[other])
        RESULTS.append({"arm": name, first: times[first], other: times[other], "ratios": ratios,
                        "median_ratio": statistics.median(ratios), "agreement": agreement})
        print(f"{name}: {first} {' '.join(f'{t:.1f}' for t in times[first])} s; {other} "
              f"{' '.join(f'{t:.1f}' for t in times[other])} s; ratio per repeat "
              f"{' '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}x; {agreement}",
              flush=True)


def scoring_race(name: str, model: Any, tok: Any, inputs: tuple[list[list[int]], list[list[int]], int],
                 precision: Callable[[], Any], repeats: int, bf16: bool = False, ranked: bool = False) -> None:
    """The pipeline's scorer against today's (before issue 29: every option of every row, no shared prefix, autocast
    re-casting the weights on every pass), and against the pipeline's without its bf16 weight copies (session 11's
    scorer). The pipeline's: the shared prefix, every linear weight as a bf16 copy for the unit when it scores under
    bf16 (harness/execution/compute.py), and for a classifier's labels (`ranked`) harness/scoring/ranking.py
    (the losing options stop at a bound: only the predictions and the winners' log-likelihoods are compared)."""
    contexts, conts, k = inputs

    def arm(share: bool, copies: bool, rank: bool) -> Callable[[bool], Any]:
        def run(warm: bool) -> Any:
            tokens, n = Tokens(), 4 * k if warm else len(contexts)
            scorer = best_continuations if rank else continuation_logprobs
            with precision(), frozen_linears_in_bf16(model, copies and bf16, trainable=True):
                scores = scorer(model, tok.pad_token_id or 0, contexts[:n], conts[:n], share=share, tokens=tokens)
            return scores, tokens

        return run

    def same(new: Any, old: Any) -> str:
        (s, ts), (p, tp) = new, old
        mine, theirs = argmax_per_item(s, k), argmax_per_item(p, k)
        agree = sum(x == y for x, y in zip(mine, theirs))
        winners = [i * k + j for i, j in enumerate(theirs)] if ranked else range(len(p))
        worst = max(abs(s[i][0] - p[i][0]) for i in winners)
        return (f"same prediction on {agree}/{len(s) // k} items, largest log-likelihood difference "
                f"{'(the winners) ' if ranked else ''}{worst:.2e}; tokens in the data {ts.data}, computed "
                f"{ts.computed} vs {tp.computed}; path {', '.join(ts.paths)}")

    arms = {"pipeline": arm(True, True, ranked), "today": arm(False, False, False)}  # names: see the docstring
    if bf16 or ranked:
        arms["session 11"] = arm(True, False, False)
    race(f"{name} ({len(contexts) // k} items x {k} options)", arms, repeats, same)


def generation_race(model: Any, tok: Any, items: int | None, precision: Callable[[], Any], repeats: int,
                    hf_batches: list[int]) -> None:
    spec, splits = load_benchmark(SuiteRef("ticket_summaries", max_test=items), BUNDLED_DIR)
    chat = uses_chat(tok)
    prompts = [prompt_ids(tok, ex, chat)[-MAX_LENGTH:] for ex in splits["test"].examples]

    def arm(share: bool, batch: int | None = None) -> Callable[[bool], Any]:
        def run(warm: bool) -> Any:
            tokens = Tokens()
            with precision():
                texts = generate(model, tok, prompts[:4] if warm else prompts, 4 if warm else spec.max_new_tokens,
                                 batch_size=batch, stop=spec.stop, share=share, tokens=tokens)
            return texts, tokens

        return run

    def same(shared: Any, plain: Any) -> str:
        (s, ts), (p, tp) = shared, plain
        return (f"identical greedy outputs on {sum(x == y for x, y in zip(s, p))}/{len(s)} prompts; tokens in the "
                f"data {ts.data}, computed {ts.computed} shared vs {tp.computed} unshared; path {', '.join(ts.paths)}")

    race(f"generation ({len(prompts)} prompts, max {spec.max_new_tokens} new tokens)",
         {"shared prefix + greedy loop": arm(True)} | {f"HF generate, {b} a batch": arm(False, b) for b in hf_batches},
         repeats, same)


def synthetic(size: str, device: str) -> tuple[Any, Any, tuple[list[list[int]], list[list[int]], int]]:
    """A Llama-shaped model with random weights built from a config (nothing downloaded; `tiny` for the CPU, `1b` for
    a GPU), a stand-in tokenizer (the pad id), and chat-shaped scoring rows: a 64-token prefix every row shares (the
    template's system turn and the instruction), 16-64 tokens of its own, 7 options of 1-3 tokens."""
    import random
    from types import SimpleNamespace

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = {"tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2),
            "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4)}[size]
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32000, max_position_embeddings=512, **dims)).to(device, dtype)
    model.eval()
    rng = random.Random(0)
    prefix = [rng.randrange(3, 32000) for _ in range(64)]
    options = [[rng.randrange(3, 32000) for _ in range(rng.randint(1, 3))] for _ in range(7)]
    items = 64 if size == "tiny" else 512
    contexts, conts = [], []
    for _ in range(items):
        ctx = prefix + [rng.randrange(3, 32000) for _ in range(rng.randint(16, 64))]
        contexts += [ctx] * len(options)
        conts += options
    return model, SimpleNamespace(pad_token_id=0), (contexts, conts, len(options))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["scoring", "probes", "bias", "generation"])
    parser.add_argument("--items", type=int, default=None, help="cap every split (default: all of it)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--bf16", default="auto", choices=["auto", "on", "off"])
    parser.add_argument("--synthetic", choices=["tiny", "1b"], help="scoring only, on a random Llama-shaped model "
                        "and chat-shaped rows (tools/gpu_check.sh: 1b on CUDA; tiny checks the script on the CPU)")
    parser.add_argument("--device", default="cpu", help="with --synthetic: where the model runs")
    parser.add_argument("--adapter", help="a peft adapter folder on the model (a tuned model, as the pipeline scores "
                        "it: e.g. a kept unit's .sftbench/units/tune-.../adapter)")
    parser.add_argument("--json", help="also write every race's times, ratios and agreement here")
    parser.add_argument("--hf-batch", type=int, nargs="+", default=[8], help="generation: HF generate's prompts a "
                        "batch, one arm each (8: what sftbench ran before issue 29; 32: the shared path's own)")
    args = parser.parse_args()
    threads = set_threads()
    if args.synthetic:
        model, tok, inputs = synthetic(args.synthetic, args.device)
        print(f"synthetic {args.synthetic} on {args.device}, {next(model.parameters()).dtype}, {args.repeats} repeats")
        scoring_race("scoring synthetic", model, tok, inputs, contextlib.nullcontext, args.repeats)
        return write(args.json)
    handle = resolve(args.model, adapter=args.adapter)
    model, tok = load_model(handle), load_tokenizer(handle)
    if handle.adapter:
        model = load_adapter(model, handle)
    bf16 = use_bf16(args.bf16)
    tuned = f" + adapter {handle.adapter}" if handle.adapter else ""
    print(f"{args.model}{tuned}, {'bf16 autocast' if bf16 else 'fp32'}, {threads} threads, {args.repeats} repeats")

    def precision() -> Any:
        return autocast(bf16)

    if "scoring" in args.arms:
        spec, splits = load_benchmark(SuiteRef("support_intents", max_test=args.items), BUNDLED_DIR)
        scoring_race("scoring support_intents test", model, tok, scoring_inputs(tok, splits["test"].examples, spec),
                     precision, args.repeats, bf16, ranked=True)
    if "probes" in args.arms:
        _, items, _ = load_probe(SuiteRef("general_knowledge", max_items=args.items), BUNDLED_DIR)
        scoring_race("probe general_knowledge", model, tok, probe_inputs(tok, items), precision, args.repeats, bf16)
    if "bias" in args.arms:
        suite, pairs, _ = load_bias_suite("intent_bias", BUNDLED_DIR)
        spec = load_benchmark_spec(suite.benchmark, BUNDLED_DIR)
        side_a, side_b = render_pair_inputs(spec, pairs[: args.items])
        scoring_race("bias intent_bias (both sides)", model, tok, scoring_inputs(tok, side_a + side_b, spec),
                     precision, args.repeats, bf16)
    if "generation" in args.arms:
        generation_race(model, tok, args.items, precision, args.repeats, args.hf_batch)
    write(args.json)


def write(path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
