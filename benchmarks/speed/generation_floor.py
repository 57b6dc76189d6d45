"""Greedy generation's noise floor (not a test): how often HF `generate` agrees with itself when only the batch
changes, beside how often sftbench's shared-prefix path (harness/scoring/lm.py `generate`, share=True) agrees with
it. Greedy decoding follows the argmax; where two tokens are near a tie, a different rounding of the same arithmetic
picks the other one and the rest of the text goes its own way. In bf16 the rounding depends on the shapes of the
matrix products (the batch, its padding, a prefix run as its own pass), so identity with one particular batching of
HF `generate` is only as good as HF `generate`'s identity with itself.

Arms, on ticket_summaries test (70 prompts through SmolLM2's chat template, max_new_tokens 40, its stop string):
HF `generate` one prompt at a time (no padding), 8 a batch (what sftbench ran before issue 29) and 32 a batch;
the shared path at 8 and at its default batch; each under the CPU's bf16 autocast and in fp32. Prints each arm's
seconds (one pass each, not a speed figure: benchmarks/speed/prefix.py races the arms) and, for every pair of arms,
on how many prompts their texts are identical.

    PYTHONPATH=. .venv/bin/python benchmarks/speed/generation_floor.py [--items N] [--precision bf16 fp32]
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see harness/cli.py

from harness.config import BUNDLED_DIR, SuiteRef  # noqa: E402
from harness.data.encode import prompt_ids, uses_chat  # noqa: E402
from harness.data.specs import load_benchmark  # noqa: E402
from harness.models.device import autocast, set_threads  # noqa: E402
from harness.models.loading import load_model, load_tokenizer, resolve  # noqa: E402
from harness.scoring.generation import GREEDY_ROWS, generate  # noqa: E402

MAX_LENGTH = 192  # the demo recipe's max_length
ARMS = {"HF generate, batch 1": (False, 1), "HF generate, batch 8": (False, 8), "HF generate, batch 32": (False, 32),
        "shared, batch 8": (True, 8), f"shared, batch {GREEDY_ROWS}": (True, GREEDY_ROWS)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=None, help="cap the test split (default: all 70 prompts)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    args = parser.parse_args()
    threads = set_threads()
    handle = resolve(args.model)
    model, tok = load_model(handle), load_tokenizer(handle)
    model.eval()
    spec, splits = load_benchmark(SuiteRef("ticket_summaries", max_test=args.items), BUNDLED_DIR)
    prompts = [prompt_ids(tok, ex, uses_chat(tok))[-MAX_LENGTH:] for ex in splits["test"].examples]
    print(f"{args.model}, {len(prompts)} prompts, {threads} threads, attention {model.config._attn_implementation}")
    for precision in args.precision:
        texts = {}
        for name, (share, batch) in ARMS.items():
            start = time.perf_counter()
            with autocast(precision == "bf16"):
                texts[name] = generate(model, tok, prompts, spec.max_new_tokens, batch_size=batch, stop=spec.stop,
                                       share=share)
            print(f"{precision} {name}: {time.perf_counter() - start:.1f} s", flush=True)
        for a, b in itertools.combinations(texts, 2):
            same = sum(x == y for x, y in zip(texts[a], texts[b]))
            print(f"{precision} identical text, {a} vs {b}: {same}/{len(prompts)}", flush=True)


if __name__ == "__main__":
    main()
