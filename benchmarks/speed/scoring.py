"""Speed benchmark (not a test): label-option scoring with each prompt run once for all its options (one
packed row, harness/scoring/lm.py) against one padded sequence per option, on the same model, items and precision, in one process. Prints the ratio.

    .venv/bin/python benchmarks/speed/scoring.py [--items 40] [--model smollm2-135m]
"""
from __future__ import annotations

import argparse
import time

import torch

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.models.device import autocast, set_threads, use_bf16
from harness.data.encode import completion_ids, prompt_ids, uses_chat
from harness.scoring.lm import answer_logits, continuation_logprobs, pad
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.config import BUNDLED_DIR


@torch.no_grad()
def one_sequence_per_option(model, pad_id, contexts, conts, batch_size=16):
    """The usual way: every (prompt + option) is its own padded row."""
    out = []
    for s in range(0, len(contexts), batch_size):
        seqs = [list(c) + list(k) for c, k in zip(contexts[s:s + batch_size], conts[s:s + batch_size])]
        targets = [[-100] * len(c) + list(k) for c, k in zip(contexts[s:s + batch_size], conts[s:s + batch_size])]
        ids, mask = pad(seqs, pad_id)
        tgt, _ = pad(targets, -100)
        logits, gold = answer_logits(model, ids, mask, tgt)
        lp = torch.log_softmax(logits, -1).gather(1, gold[:, None])[:, 0]
        out += [float(p.sum()) for p in torch.split(lp, [len(k) for k in conts[s:s + batch_size]])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    set_threads()
    handle = resolve(args.model)
    model, tok = load_model(handle), load_tokenizer(handle)
    spec, splits = load_benchmark(SuiteRef("support_intents", max_test=args.items), BUNDLED_DIR)
    chat = uses_chat(tok)
    options = [completion_ids(tok, spec.labels[k], chat) for k in spec.labels]
    contexts, conts = [], []
    for ex in splits["test"].examples:
        p = prompt_ids(tok, ex.prompt, chat)
        contexts += [p] * len(options)
        conts += options
    bf16 = use_bf16("auto")
    timings = {}
    for name, fn in (("shared prefix", lambda: [s for s, _ in continuation_logprobs(model, tok.pad_token_id, contexts, conts)]),
                     ("one sequence per option", lambda: one_sequence_per_option(model, tok.pad_token_id, contexts, conts))):
        start = time.perf_counter()
        with autocast(bf16):
            scores = fn()
        timings[name] = (time.perf_counter() - start, scores)
    (fast, a), (slow, b) = timings["shared prefix"], timings["one sequence per option"]
    agree = sum(max(range(len(options)), key=lambda j: a[i * len(options) + j]) ==
                max(range(len(options)), key=lambda j: b[i * len(options) + j]) for i in range(args.items))
    print(f"{args.items} items x {len(options)} options, bf16={bf16}: shared prefix {fast:.1f} s, "
          f"one sequence per option {slow:.1f} s, ratio {slow / fast:.1f}x; same prediction on {agree}/{args.items}")


if __name__ == "__main__":
    main()
