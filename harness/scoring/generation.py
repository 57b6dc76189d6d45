"""Greedy generation: batched, with the KV cache, the prompts' shared prefix run once (harness/models/prefix.py) and
finished rows leaving the batch; HF `generate` where sharing does not apply. Its tokens are the ones HF `generate`
picks (in fp32 on every prompt measured; under bf16 autocast only as often as HF `generate` agrees with itself across
batch sizes: docs/benchmarks.md)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness.models.prefix import MIN_PREFIX, SharedPrefix, common_prefix, run_prefix, run_suffix, why_not
from harness.scoring.lm import NO_CACHE, SHARED, OnStep, Tokens, body_and_head, on_device, pad, unwrap


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             batch_size: int | None = None, stop: Sequence[str] = (), on_step: OnStep | None = None,
             share: bool = True, tokens: Tokens | None = None) -> list[str]:
    """Batched greedy decoding with left padding and the KV cache; on_step(prompts done, total) per batch.

    With `share`, the tokens every prompt begins with run once (harness/models/prefix.py) and `_greedy` decodes
    each batch after them, picking the tokens HF `generate` picks; where sharing does not apply (`_generation_plan`
    says why) HF `generate` runs on the whole prompts. `tokens` adds up what was read and run, and the path."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    body, head = body_and_head(model)
    skip, path = _generation_plan(model, body, prompts) if share else (0, "unshared: not asked to share")
    prefix = run_prefix(body, prompts[order[0]][:skip]) if skip else None
    if skip and prefix is None:
        skip, path = 0, NO_CACHE
    data, computed, ends = 0, skip, _stops(tokenizer, stop)
    batch_size = batch_size or (GREEDY_ROWS if prefix is not None else GENERATE_ROWS)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        if prefix is not None:
            gen: Any = _greedy(body, head, prefix, [prompts[i][skip:] for i in chunk], max_new_tokens,
                               tokenizer.eos_token_id, ends)
        else:
            ids, mask = on_device(model, *pad([prompts[i] for i in chunk], pad_id, left=True))
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id, use_cache=True)
            gen = gen[:, ids.shape[1]:].tolist()
        for i, row in zip(chunk, gen):
            # in the data: the prompt and the tokens up to its end (EOS or a stop); computed: every step run
            data += len(prompts[i]) + _kept(row, tokenizer.eos_token_id, ends)
            computed += len(prompts[i]) - skip + len(row)
            text = tokenizer.decode(row, skip_special_tokens=True)
            for s in stop:
                text = text.split(s)[0]
            out[i] = text.strip()
        if on_step:
            on_step(min(start + batch_size, len(order)), len(order))
    if tokens is not None:
        tokens.ran(path, data, computed)
    return out


# Prompts a batch (unless the caller says): HF `generate` pads every row to the batch's longest and decodes until
# its last row finishes; `_greedy` drops finished rows, so a larger batch costs it no wasted steps.
GENERATE_ROWS, GREEDY_ROWS = 8, 32

# Generation settings that read the whole sequence so far (or change greedy's choice): `_greedy` applies none of
# them, so a model whose generation config sets one decodes with HF `generate`.
_SEQUENCE_PROCESSORS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_repetition_penalty": 1.0,
                        "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                        "forced_bos_token_id": None, "forced_eos_token_id": None, "min_length": 0,
                        "min_new_tokens": None, "sequence_bias": None, "exponential_decay_length_penalty": None}


def _generation_plan(model: Any, body: Any, prompts: Sequence[Sequence[int]]) -> tuple[int, str]:
    """How many leading tokens every prompt shares and will run once, and the path's name (every prompt keeps at
    least its last token: its output picks the first generated one)."""
    if len(prompts) < 2:
        return 0, "unshared: one prompt"
    skip = common_prefix(prompts, limit=min(len(p) for p in prompts) - 1)
    if skip < MIN_PREFIX:
        return 0, f"unshared: the common prefix is {skip} tokens (under {MIN_PREFIX})"
    if reason := why_not(body):
        return 0, f"unshared: {reason}"
    config = getattr(unwrap(model), "generation_config", None)
    for key, default in _SEQUENCE_PROCESSORS.items():
        if getattr(config, key, default) not in (default, None):
            return 0, f"unshared: the generation config sets {key}"
    return skip, SHARED


def _greedy(body: Any, head: Any, prefix: SharedPrefix, suffixes: list[Sequence[int]], max_new_tokens: int,
            eos_id: int | None, ends: Callable[[int], bool] = lambda token: False) -> list[list[int]]:
    """Greedy tokens after each prefix + suffix, the ones HF `generate` picks: a row ends with its EOS (kept), with
    a token `ends` says stops it (kept: a stop string's text is cut there anyway), or after max_new_tokens. A
    finished row leaves the batch, its cache rows with it, so the rest decode without carrying it."""
    device = prefix.keys[0].device
    ids, mask = (t.to(device) for t in pad(suffixes, 0, left=True))  # (b, width)
    positions = (prefix.length + mask.cumsum(1) - 1).clamp(min=prefix.length)  # continuing from the prefix
    out = run_suffix(body, prefix, ids, mask, positions, use_cache=True)
    cache, seen = out.cache, torch.cat([torch.ones(len(suffixes), prefix.length, dtype=mask.dtype, device=device),
                                        mask], dim=1)  # (b, prefix + width): grows by one column a step
    logits = head(out.last_hidden_state[:, -1])  # (b, vocab)
    rows: list[list[int]] = [[] for _ in suffixes]
    live, position = list(range(len(suffixes))), positions[:, -1:]  # live[r]: the suffix batch row r decodes
    for step in range(max_new_tokens):
        token = logits.argmax(-1)  # (b,)
        going = []
        for r, t in enumerate(token.tolist()):
            rows[live[r]].append(t)
            if t != eos_id and not ends(t):
                going.append(r)
        if not going or step == max_new_tokens - 1:
            break
        if len(going) < len(live):
            keep = torch.tensor(going, device=device)
            cache.batch_select_indices(keep)
            seen, position, token, live = seen[keep], position[keep], token[keep], [live[r] for r in going]
        seen, position = torch.cat([seen, torch.ones_like(seen[:, :1])], dim=1), position + 1
        hidden = body(input_ids=token[:, None], attention_mask=seen, position_ids=position, cache=cache,
                      use_cache=True).last_hidden_state
        logits = head(hidden[:, -1])
    return rows


def _stops(tokenizer: Any, stop: Sequence[str]) -> Callable[[int], bool]:
    """Whether a token's own text holds a stop string (memoised per token): generation may end the row there."""
    memo: dict[int, bool] = {}

    def ends(token: int) -> bool:
        if token not in memo:
            text = tokenizer.decode([token], skip_special_tokens=True)
            memo[token] = any(s in text for s in stop)
        return memo[token]

    return ends


def _kept(row: list[int], eos_id: int | None, ends: Callable[[int], bool]) -> int:
    """Tokens of a generated row up to its end: its EOS or the first token holding a stop string, included."""
    return next((j + 1 for j, t in enumerate(row) if t == eos_id or ends(t)), len(row))
