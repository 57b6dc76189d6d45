"""Attention for short rows on a CPU: a registered transformers attention implementation, `sdpa_small`, that a
causal LM loaded on the CPU runs instead of `sdpa` (harness/models/loading.py `load_model`; moved to an accelerator,
a model gets `sdpa` back: `choose`).

Why: sftbench's rows are short (a few dozen suffix tokens after a shared prefix, options packed in a row). At these
shapes the backward pass of torch's CPU flash-attention kernel, which `sdpa` calls, costs far more than its FLOPs: 13%
of a LoRA training step's CPU time for attention that is ~2% of the model's FLOPs (SmolLM2-135M). Plain matrix
products in fp32 are faster there, forward and backward: scores = (q * scale) k^T, the boolean mask filled with fp32's
minimum, softmax, @ v. Without a backward pass the flash kernel's forward is as fast as they are (scoring the demo's
test split ran 1.00x and 0.97x with this path, docs/benchmarks.md), so scoring, probes and generation, which run
without gradients, keep `sdpa`'s kernel and its exact numbers: this path runs only where q, k or v requires grad.
Grouped-query attention reshapes the query to (batch, kv_heads, group * query, head_dim) against the key/value heads,
so keys and values are never repeated (no copy). The result is cast back to the query's dtype, as `sdpa` returns it.

Everything else goes to transformers' own `sdpa_attention_forward` unchanged (`delegates` says when): no gradient
(above), a tensor not on the CPU, rows of more than MAX_KEYS keys (the flash kernel is faster there), a shape
above SMALL elements of scores (training keeps each layer's probabilities for the backward pass), dropout, a
position bias, softcap or attention sinks, a float mask, a mask that does not broadcast as (batch, 1 or heads,
query, key), and no mask with a causal query shorter than its keys (`sdpa`'s own alignment rule applies). Masks are
`sdpa`'s (the same boolean mask function is registered under this name), so a model's mask and every caller that
builds one (harness/models/prefix.py `model_mask`) treat this name as `sdpa`. A query row that may see no key gives
zeros, as `sdpa` does on the CPU (never NaN).
"""
from __future__ import annotations

from typing import Any

NAME = "sdpa_small"
# The implementations whose models take a boolean mask (True: may attend); eager takes an additive float mask.
BOOLEAN_MASK = ("sdpa", NAME, "flash_attention_2")
# Scores above this many elements (batch * heads * query * key, 16 MB in fp32 per layer) go to sdpa.
SMALL = 4_000_000
# Rows with more keys than this go to sdpa: forward + backward of one SmolLM2-shaped call (9 query, 3 key/value heads,
# bf16 autocast, 2 threads) took sdpa/this 2.75x at 8 rows x 35 queries x 92 keys, 1.59x at 8 x 92 x 92, 1.49x at
# 1 x 128 x 128, 1.37x at 4 x 150 x 150, 1.01x at 1 x 200 x 200 and 0.73x at 1 x 337 x 337 (a micro-batch packed in
# one row, harness/training/loop.py): the flash kernel's blocks pay off on longer rows.
MAX_KEYS = 192
# Keyword arguments some models pass that this path does not implement: sdpa takes (or refuses) them.
NOT_HERE = ("position_bias", "softcap", "s_aux", "sinks")


def delegates(query: Any, key: Any, value: Any, mask: Any, dropout: float, causal: bool,
              kwargs: dict[str, Any]) -> bool:
    """True when `small_attention` hands the call to `sdpa` (the module docstring says why each)."""
    import torch

    b, h, s, _ = query.shape
    kb, kh, k_len, _ = key.shape
    if query.device.type != "cpu" or dropout or any(kwargs.get(k) is not None for k in NOT_HERE):
        return True
    if not (torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)):
        return True  # no backward pass follows: the flash kernel's forward is as fast (module docstring)
    if kb != b or value.shape[:3] != key.shape[:3] or h % kh or k_len > MAX_KEYS or b * h * s * k_len > SMALL:
        return True
    if mask is None:
        return causal and s > 1 and s != k_len
    return (mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[0] not in (1, b) or mask.shape[1] not in (1, h)
            or mask.shape[2] not in (1, s) or mask.shape[3] != k_len)


def small_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                    scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention interface: query (batch, heads, q, d), key and value (batch, kv_heads, k, d), mask
    boolean (batch, 1 or heads, q, k) or None; returns (batch, q, heads, d_v) and no attention weights."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", True))
    if delegates(query, key, value, attention_mask, dropout, causal, kwargs):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    b, h, s, d = query.shape
    kv_heads, k_len, dv = key.shape[1], key.shape[2], value.shape[-1]
    group = h // kv_heads
    allowed = attention_mask
    if allowed is None and causal and s > 1:  # s == k_len here (delegates): the plain causal triangle
        allowed = torch.ones(s, k_len, dtype=torch.bool, device=query.device).tril()[None, None]
    with torch.autocast("cpu", enabled=False):
        # the scale on the query (d wide) rather than the scores (keys wide); a copy even of an fp32 query
        q = query.to(torch.float32, copy=True).mul_(scaling if scaling is not None else d ** -0.5)
        q = q.reshape(b, kv_heads, group * s, d)  # head i reads kv head i // group, as repeat_kv does
        scores = torch.matmul(q, key.float().transpose(-1, -2)).view(b, kv_heads, group, s, k_len)
        if allowed is not None:
            grouped = allowed[:, :, None] if allowed.shape[1] == 1 else allowed.reshape(
                allowed.shape[0], kv_heads, group, *allowed.shape[2:])
            scores.masked_fill_(~grouped, torch.finfo(torch.float32).min)  # in place: matmul's backward keeps q, k
        probs = torch.softmax(scores, dim=-1).view(b, kv_heads, group * s, k_len)
        out = torch.matmul(probs, value.float()).view(b, h, s, dv)
        if allowed is not None:
            blind = ~allowed.any(dim=-1, keepdim=True)  # (batch, 1 or heads, q, 1): rows that see no key
            if bool(blind.any()):
                out = out.masked_fill(blind, 0.0)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make NAME a transformers attention implementation with sdpa's boolean masks (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, small_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def choose(model: Any, device: Any) -> None:
    """The attention a causal LM runs on `device`: NAME on the CPU where it runs `sdpa`, `sdpa` again elsewhere where
    it runs NAME; any other implementation (eager, flash) is left as it is."""
    import torch

    current = getattr(getattr(model, "config", None), "_attn_implementation", None)
    on_cpu = torch.device(device).type == "cpu"
    if on_cpu and current == "sdpa":
        register()
        model.set_attn_implementation(NAME)
    elif not on_cpu and current == NAME:
        model.set_attn_implementation("sdpa")
