"""A shared prompt prefix, computed once: rows that begin with the same tokens (a chat template's system turn and a
benchmark's instruction) run those tokens through a causal LM once, with the KV cache on, and the rest of every row
(its suffix) attends to the prefix's keys and values, expanded over the batch as views (no copy), its positions
continuing from the prefix's end. With gradients on, the prefix's keys and values are one tensor that every row
reads, so its gradient is the sum over the batch, as it is when every row recomputes the prefix.

Everything here works on the decoder body (a transformers `...Model`, e.g. LlamaModel, under any peft wrapper):
callers apply the LM head only where they need logits. Where sharing does not apply (a prefix shorter than
MIN_PREFIX tokens, a model whose cache is not a plain DynamicCache of full-attention layers, left padding), the
functions say so and the caller runs today's path: `shared_hidden` returns prefix length 0 and `why_not` a reason.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Below this many shared tokens the extra pass over the prefix costs about what it saves (a pass's fixed cost on
# a CPU is worth dozens of tokens, harness/scoring/lm.py FORWARD_COST); callers may ask for more.
MIN_PREFIX = 4


def common_prefix(seqs: Sequence[Sequence[int]], limit: int | None = None) -> int:
    """Length of the longest token prefix every sequence starts with, at most `limit`."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    if limit is not None:
        n = min(n, limit)
    first = seqs[0]
    for i in range(n):
        token = first[i]
        if any(s[i] != token for s in seqs):
            return i
    return n


def padded_common_prefix(ids: torch.Tensor, mask: torch.Tensor) -> int:
    """The longest run of leading columns in which every row is a real token (mask 1) equal to row 0's: a
    right-padded batch's common prefix. ids, mask: (batch, seq). A left-padded batch (a row starting with padding)
    gives 0: its prefixes are not aligned in columns."""
    same = (ids == ids[:1]) & mask.bool()  # (batch, seq)
    columns = same.all(dim=0)
    if bool(columns.all()):
        return int(ids.shape[1])
    return int(columns.long().argmin())  # the first column where some row differs or pads


def why_not(body: Any) -> str:
    """Empty when `body` can share a prefix, else why not: an encoder (no causal cache), or a config whose layers
    are not all full attention (a sliding window drops old keys: the expanded prefix would not stay whole)."""
    config = getattr(body, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False) or not getattr(config, "is_decoder", True):
        return "not a decoder-only causal LM"
    if getattr(config, "model_type", "") in ("bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra"):
        return "an encoder reads the whole sequence at once"
    types = getattr(config, "layer_types", None)
    kinds = set(types or ["full_attention"])
    if kinds != {"full_attention"}:
        return f"layer types {', '.join(sorted(kinds))}: only full-attention caches expand over a batch"
    if not types and getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        # a config without layer types (Mistral's) that sets a window: its attention drops keys older than it
        return (f"sliding-window attention ({config.sliding_window} tokens): only full-attention caches expand over "
                "a batch")
    return ""


@dataclass(frozen=True)
class SharedPrefix:
    """The keys and values of a prefix run once: per layer (1, kv_heads, length, head_dim)."""
    length: int
    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    def cache(self, batch: int) -> Any:
        """A fresh DynamicCache holding the prefix for `batch` rows: every layer's keys and values are expanded
        views of the one prefix (no copy). Each forward pass appends to a cache, so each suffix batch takes its own."""
        from transformers.cache_utils import DynamicCache, DynamicLayer

        cache = DynamicCache()
        cache.layers = []
        for k, v in zip(self.keys, self.values):
            layer = DynamicLayer()
            layer.lazy_initialization(k, v)
            layer.keys = k.expand(batch, -1, -1, -1)
            layer.values = v.expand(batch, -1, -1, -1)
            cache.layers.append(layer)
        return cache


def run_prefix(body: Any, ids: Sequence[int] | torch.Tensor) -> SharedPrefix | None:
    """Run `ids` (one row, the prefix) through the decoder with the cache on; None when the cache it returns is not
    a plain DynamicCache of full-attention layers (then the caller runs today's path). Gradients flow when enabled."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    device = next(body.parameters()).device
    row = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)  # (1, prefix)
    out = body(input_ids=row, attention_mask=torch.ones_like(row), use_cache=True)
    cache = getattr(out, "cache", None)
    if not isinstance(cache, DynamicCache) or not cache.layers:
        return None
    layers: list[Any] = list(cache.layers)
    if any(type(layer) is not DynamicLayer or layer.keys is None for layer in layers):
        return None
    keys: tuple[torch.Tensor, ...] = tuple(layer.keys for layer in layers)
    values: tuple[torch.Tensor, ...] = tuple(layer.values for layer in layers)
    if any(k.shape[-2] != row.shape[1] for k in keys):
        return None
    return SharedPrefix(row.shape[1], keys, values)


def is_eager(body: Any) -> bool:
    """Eager attention takes an additive float mask; SDPA and flash attention take a boolean one."""
    return getattr(body.config, "_attn_implementation", None) not in ("sdpa", "flash_attention_2")


def model_mask(body: Any, allowed: torch.Tensor) -> torch.Tensor:
    """A boolean (batch, query, key) mask as the model's attention takes it: (batch, 1, query, key), additive
    (0 / the dtype's minimum) under eager attention."""
    mask = allowed[:, None]
    if is_eager(body):
        mask = torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, torch.finfo(torch.float32).min)
    return mask


def run_suffix(body: Any, prefix: SharedPrefix, ids: torch.Tensor, mask: torch.Tensor,
               positions: torch.Tensor | None = None, use_cache: bool = False) -> Any:
    """The decoder's output for suffix rows after the shared prefix. ids: (batch, seq) on the model's device.
    mask: (batch, seq) 1 for real tokens (any padding), or a boolean (batch, seq, seq) suffix-to-suffix mask
    (packed rows), to which the prefix's columns are added, visible to every query. positions: (batch, seq),
    by default prefix.length + column. With `use_cache`, out.cache holds prefix and suffix (for decoding)."""
    b, s = ids.shape
    if positions is None:
        positions = torch.arange(prefix.length, prefix.length + s, device=ids.device).expand(b, -1)
    if mask.dim() == 2:  # padding: the library builds the causal mask over the prefix and the suffix
        full = torch.cat([torch.ones(b, prefix.length, dtype=mask.dtype, device=mask.device), mask], dim=1)
    else:
        seen = torch.ones(b, s, prefix.length, dtype=torch.bool, device=mask.device)
        full = model_mask(body, torch.cat([seen, mask.bool()], dim=2))  # (b, 1, s, prefix + s)
    return body(input_ids=ids, attention_mask=full, position_ids=positions, cache=prefix.cache(b),
                use_cache=use_cache)


def shared_hidden(body: Any, ids: torch.Tensor, mask: torch.Tensor, min_prefix: int = MIN_PREFIX,
                  max_prefix: int | None = None) -> tuple[torch.Tensor, int]:
    """The last hidden state of a right-padded batch, computing its common prefix once: (batch, seq - p, hidden)
    for columns p onwards, and p. p is 0 (today's path, the whole (batch, seq, hidden)) when the common prefix is
    shorter than `min_prefix`, the model cannot share it, or the batch is left-padded. `max_prefix` caps p (a
    caller that needs the outputs at some early columns). The prefix always leaves every row at least one token."""
    p = padded_common_prefix(ids, mask)
    p = min(p, int(mask.sum(dim=1).min()) - 1, *([max_prefix] if max_prefix is not None else []))
    prefix = run_prefix(body, ids[0, :p]) if p >= min_prefix and ids.shape[0] > 1 and not why_not(body) else None
    if prefix is None:
        return body(input_ids=ids, attention_mask=mask).last_hidden_state, 0
    return run_suffix(body, prefix, ids[:, p:], mask[:, p:]).last_hidden_state, p
