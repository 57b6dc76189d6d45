"""Each context's likeliest continuation, computing only what can change which one it is: a causal classifier's
label (harness/scoring/tasks.py), where only the winner of every prompt (and the gold label's log-likelihood, for the
validation loss) is used.

A continuation's log-likelihood is a sum of log-probabilities, each at most 0, so its first token's log-probability
bounds it from above. The first pass runs every context once, with the KV cache on (harness/scoring/lm.py `layout`:
the shared prefix once, contexts packed in rows), and scores every option's first token at the context's end, and
the options in `exact` whole; each context that still has an open option keeps its own keys and values (the shared
prefix's stay one copy). Later passes run the rest of the options that could still win, after those keys and values,
for as many kept contexts as KEPT_BYTES holds, batched by the cost model: an option is open while its bound is not
below the best exact total of its context, and each pass runs the open options within MARGIN nats of the highest
open bound, until none is open. An option whose bound falls below an exact
total cannot be the likeliest, and its other tokens never run. So every context's likeliest continuation (the first
of a tie) is the one scoring every option finds, with its exact log-likelihood; a fine-tuned classifier's losing
options mostly stop at their first token. Measured on the demo's test split: docs/benchmarks.md.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

from harness.models.prefix import model_mask, why_not
from harness.scoring.lm import (
    FORWARD_COST,
    NO_CACHE,
    Layout,
    OnStep,
    Packed,
    Tokens,
    body_and_head,
    continuation_logprobs,
    data_tokens,
    layout,
    on_device,
    pack_rows,
    scored_logprobs,
    split_batches,
)

# Each later pass runs a context's open options whose bound is within this many nats of its highest open bound. Wider
# runs more options a pass, narrower more passes: on the demo's tuned model 0, 0.25, 0.5, 1 and 2 took about the same
# time (docs/benchmarks.md); 0.5 keeps the passes few without running labels the best one will rule out.
MARGIN = 0.5
# The memory the later passes may hold: the kept contexts' keys and values (the first passes run ahead until they
# fill it), and each later pass's cache (its rows are capped to fit). SmolLM2-135M: 0.7 MB a demo context.
KEPT_BYTES = 256 * 2**20


@torch.inference_mode()
def best_continuations(model: Any, pad_id: int, contexts: Sequence[Sequence[int]],
                       continuations: Sequence[Sequence[int]], exact: Collection[int] = (), max_batch: int = 256,
                       max_tokens: int = 2048, on_step: OnStep | None = None, share: bool = True,
                       tokens: Tokens | None = None) -> list[tuple[float, int]]:
    """(score, token count) per pair, as `continuation_logprobs` gives them, except that a pair which cannot be its
    context's likeliest gets an upper bound of its log-likelihood (its first token's log-probability, below the
    exact total of an option that beats it) instead of the log-likelihood itself. So the argmax over each context's
    pairs is the same, and the pairs in `exact` and every context's likeliest are exact. A model whose cache cannot
    be extended (an encoder, sliding-window layers) gets every pair scored exactly."""
    if any(len(c) == 0 for c in continuations):
        raise ValueError("an empty continuation has no likelihood to score")
    whole = set(exact)
    lay = layout(model, contexts, continuations, max_batch, max_tokens, share, whole.__contains__) \
        if not why_not(body_and_head(model)[0]) else None
    if lay is None or lay.path == NO_CACHE:
        return continuation_logprobs(model, pad_id, contexts, continuations, max_batch, max_tokens, on_step, share,
                                     tokens)
    state = _State([len(c) for c in continuations])
    later = _Later(model, lay, continuations, pad_id, state, max_batch, max_tokens)
    done = 0
    for span in lay.spans:
        chunk = lay.lines[span.start:span.stop]
        rows = pack_rows(chunk, lay.groups, continuations, lay.widths[span.stop - 1], pad_id, lay.skip,
                         whole.__contains__)
        out = lay.forward(model, rows, use_cache=True)
        state.add(rows.owners, scored_logprobs(model, lay.head, out.last_hidden_state, rows))
        later.keep(rows, out.cache, chunk)
        if later.kept_bytes() >= KEPT_BYTES:
            later.run()
        done += sum(len(lay.groups[ctx]) for line in chunk for ctx in line)
        if on_step:
            on_step(done, len(contexts))
    later.run()
    if tokens is not None:
        tokens.ran(lay.path, data_tokens(contexts, continuations), lay.computed + later.computed)
    return list(zip(state.totals, state.lengths))


class _State:
    """Per pair: the sum of its scored tokens' log-probabilities, how many of its tokens are scored, its length."""

    def __init__(self, lengths: list[int]) -> None:
        self.totals, self.scored, self.lengths = [0.0] * len(lengths), [0] * len(lengths), lengths

    def add(self, owners: list[int], logprobs: torch.Tensor) -> None:
        for i, value in zip(owners, logprobs.double().cpu().tolist()):  # float64 sums, as continuation_logprobs
            self.totals[i] += value
            self.scored[i] += 1

    def exact(self, i: int) -> bool:
        return self.scored[i] == self.lengths[i]

    def open(self, members: list[int]) -> list[int]:
        """The members not scored whole whose bound is not below the best exact total among them."""
        best = max((self.totals[i] for i in members if self.exact(i)), default=-float("inf"))
        return [i for i in members if not self.exact(i) and self.totals[i] >= best]

    def pick(self, members: list[int]) -> list[int]:
        """The open members the next pass runs: those within MARGIN of the highest open bound."""
        candidates = self.open(members)
        top = max((self.totals[i] for i in candidates), default=0.0)
        return [i for i in candidates if self.totals[i] >= top - MARGIN]


@dataclass
class _Kept:
    """A context with open options: its tokens, its pairs, and its own keys and values from the first pass, one
    tensor (2: keys and values, layers, kv_heads, length, head_dim)."""
    whole: tuple[int, ...]
    members: list[int]
    kv: torch.Tensor


@dataclass
class _Later:
    """The passes after the first: the kept contexts, and the tokens run."""
    model: Any
    lay: Layout
    continuations: Sequence[Sequence[int]]
    pad_id: int
    state: _State
    max_batch: int
    max_tokens: int
    pending: list[_Kept] = field(default_factory=list)
    computed: int = 0

    def keep(self, rows: Packed, cache: Any, chunk: list[list[tuple[int, ...]]]) -> None:
        """Copy out of a first pass's cache the keys and values of every context with an open option."""
        assert rows.segment is not None and rows.block is not None
        ahead = cache.get_seq_length() - rows.ids.shape[1]  # the shared prefix's columns
        kv: torch.Tensor | None = None  # (2, layers, rows, kv_heads, columns, head_dim), stacked once a chunk
        for r, line in enumerate(chunk):
            for k, ctx in enumerate(line):
                members = self.lay.groups[ctx]
                if not self.state.open(members):
                    continue
                if kv is None:
                    kv = torch.stack([torch.stack([layer.keys[:, :, ahead:] for layer in cache.layers]),
                                      torch.stack([layer.values[:, :, ahead:] for layer in cache.layers])])
                columns = ((rows.segment[r] == 0) & (rows.block[r] == k)).nonzero()[:, 0]
                start, end = int(columns[0]), int(columns[-1]) + 1  # a context's tokens are adjacent
                self.pending.append(_Kept(ctx, members, kv[:, :, r, :, start:end].clone()))

    def run(self) -> None:
        """Pass after pass over the kept contexts until none has an open option; then forget them."""
        while True:
            work = [(kept, self.state.pick(kept.members)) for kept in self.pending]
            work = sorted([w for w in work if w[1]], key=lambda w: self._width(w[1]))
            if not work:
                self.pending = []
                return
            widths = [self._width(picks) for _, picks in work]
            rows = max(1, min(self.max_batch, KEPT_BYTES // self._row_bytes(work, max(widths))))
            with _grouped_query_sdpa(self.lay.body):
                for span in split_batches(widths, rows, self.max_tokens, FORWARD_COST):
                    self._pass(work[span.start:span.stop], widths[span.stop - 1])
            self.pending = [kept for kept, _ in work]

    def kept_bytes(self) -> int:
        return sum(kept.kv.numel() * kept.kv.element_size() for kept in self.pending)

    def _row_bytes(self, work: list[tuple[_Kept, list[int]]], width: int) -> int:
        """The cache bytes of one row of a later pass: the shared prefix, the longest kept context, the queries."""
        kv = work[0][0].kv  # (2, layers, kv_heads, length, head_dim)
        ahead = self.shared_kv.shape[-2] if self.shared_kv is not None else 0
        columns = ahead + max(kept.kv.shape[3] for kept, _ in work) + width
        return 2 * kv.shape[1] * kv.shape[2] * columns * kv.shape[4] * kv.element_size()

    def _width(self, picks: list[int]) -> int:
        return sum(len(self.continuations[i]) - 1 for i in picks)

    def _pass(self, batch: list[tuple[_Kept, list[int]]], width: int) -> None:
        """The picked options' tokens but the last, one kept context a row: each token sees the shared prefix, its
        context and its own option's earlier tokens, its positions continuing from the context's end."""
        b, length = len(batch), max(kept.kv.shape[3] for kept, _ in batch)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        positions = torch.zeros((b, width), dtype=torch.long)
        prefix = self.shared_kv.shape[-2] if self.shared_kv is not None else 0
        seen = prefix + length
        allowed = torch.zeros((b, width, seen + width), dtype=torch.bool)
        allowed[:, :, seen:] = torch.eye(width, dtype=torch.bool)  # padding sees itself
        scored, targets, owners = [], [], []
        for row, (kept, picks) in enumerate(batch):
            q = 0
            for i in picks:
                option = self.continuations[i]
                for j in range(len(option) - 1):  # token j predicts token j + 1
                    ids[row, q], positions[row, q] = option[j], len(kept.whole) + j
                    allowed[row, q, :prefix + kept.kv.shape[3]] = True
                    allowed[row, q, seen + q - j:seen + q + 1] = True  # its own option, up to itself
                    scored.append((row, q))
                    targets.append(option[j + 1])
                    owners.append(i)
                    q += 1
        ids, positions, allowed = on_device(self.model, ids, positions, allowed)
        cache = self._cache(batch, length, width)
        hidden = self.lay.body(input_ids=ids, attention_mask=model_mask(self.lay.body, allowed),
                               position_ids=positions, cache=cache).last_hidden_state
        second = Packed(ids, positions, allowed, scored, list(range(len(scored))), targets, owners)
        self.state.add(owners, scored_logprobs(self.model, self.lay.head, hidden, second))
        self.computed += len(scored)

    def _cache(self, batch: list[tuple[_Kept, list[int]]], length: int, width: int) -> Any:
        """A cache of the shared prefix and each row's kept context (right-padded to `length`, zeros), written once
        into one buffer with room for the pass's own `width` columns, which the pass writes in place."""
        from transformers.cache_utils import DynamicCache

        first = batch[0][0].kv
        ahead = self.shared_kv.shape[-2] if self.shared_kv is not None else 0
        buffer = first.new_empty((2, first.shape[1], len(batch), first.shape[2], ahead + length + width,
                                  first.shape[4]))
        if self.shared_kv is not None:
            buffer[..., :ahead, :] = self.shared_kv  # (2, layers, 1, kv_heads, prefix, head_dim): over the rows
        for row, (kept, _) in enumerate(batch):
            n = kept.kv.shape[3]
            buffer[:, :, row, :, ahead:ahead + n] = kept.kv
            buffer[:, :, row, :, ahead + n:ahead + length] = 0
        cache = DynamicCache()
        cache.layers = [_Filled(buffer[0, layer], buffer[1, layer], ahead + length) for layer in range(first.shape[1])]
        return cache

    @functools.cached_property
    def shared_kv(self) -> torch.Tensor | None:
        """The shared prefix's keys and values, stacked as the kept contexts' are (with a row axis of 1)."""
        prefix = self.lay.prefix
        if prefix is None:
            return None
        return torch.stack([torch.stack(prefix.keys), torch.stack(prefix.values)])


@contextlib.contextmanager
def _grouped_query_sdpa(body: Any) -> Iterator[None]:
    """On a CPU, let transformers' SDPA attention take the mask with `enable_gqa` instead of repeating a grouped-query
    model's keys and values per query head (which it does whenever a mask is given: CUDA's fast kernels take no mask
    with GQA). A later pass is a few query tokens a row over a hundred keys, so that copy was most of its time: the
    first later pass of the demo's test split (139 rows x 2 queries, 131 keys) took 0.53 s instead of 1.35 s. The
    switch is transformers' own (TRANSFORMERS_SDPA_FORCE_GQA), set only for the passes and put back after them."""
    name, before = "TRANSFORMERS_SDPA_FORCE_GQA", os.environ.get("TRANSFORMERS_SDPA_FORCE_GQA")
    if next(body.parameters()).device.type != "cpu":
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class _Filled(DynamicLayer):
    """A cache layer over preallocated buffers (batch, kv_heads, filled + room, head_dim): the first `filled` columns
    are the cache, and a forward pass's keys and values are written into the room after them."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.buffers, self.filled = (keys, values), filled
        self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.filled + key_states.shape[-2]
        keys, values = self.buffers
        keys[:, :, self.filled:end] = key_states
        values[:, :, self.filled:end] = value_states
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values
