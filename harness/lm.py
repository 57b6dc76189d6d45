"""Forward passes shared by training and scoring: answer-token log-likelihoods, greedy generation,
sentence embeddings. The LM head is applied only at the positions that are scored, never to the whole
sequence, which saves a (batch, seq, vocab) logits tensor per step."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

OnStep = Callable[[int, int], None]  # (items done, items in total): a progress bar's step


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def body_and_head(model: Any) -> tuple[Any, Any]:
    base = unwrap(model)
    return getattr(base, base.base_model_prefix), base.get_output_embeddings()


def pad(seqs: Sequence[Sequence[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        if left:
            ids[row, width - len(s):] = torch.tensor(s)
            mask[row, width - len(s):] = 1
        else:
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
    return ids, mask


def answer_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict a target token (targets != -100), and those targets.

    ids, mask, targets: (batch, seq). Returns (n_answer_tokens, vocab) and (n_answer_tokens,).
    """
    body, head = body_and_head(model)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # (batch, seq, hidden)
    shifted = targets[:, 1:]  # position t predicts token t+1
    keep = shifted != -100
    return head(hidden[:, :-1][keep]).float(), shifted[keep]


@torch.inference_mode()
def continuation_logprobs(model: Any, pad_id: int, contexts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]], max_batch: int = 256, max_tokens: int = 2048,
                          on_step: OnStep | None = None) -> list[tuple[float, int]]:
    """Sum of log p(continuation | context) and its token count, for each pair.

    Pairs that share a context (a prompt and its options) run the context once. Distinct contexts,
    shortest first, run as left-padded batches of at most `max_batch` contexts and `max_tokens` padded
    tokens (positions count real tokens only). Each option's first token is predicted by its context's
    last position, so the LM head runs once per context for it; the options' later tokens then run over
    the repeated context cache, one batch per option length, each option's last token excluded (its
    output predicts nothing). Large batches matter on a CPU: a forward pass over a few tokens costs
    nearly as much as one over a few hundred. on_step(pairs scored, pairs in total) is called after
    every batch.
    """
    if any(len(c) == 0 for c in continuations):
        raise ValueError("an empty continuation has no likelihood to score")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, ctx in enumerate(contexts):
        groups.setdefault(tuple(ctx), []).append(i)
    body, head = body_and_head(model)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(contexts)
    done = 0
    ordered = sorted(groups, key=len)
    for span in _batches([len(c) for c in ordered], max_batch, max_tokens, CONTEXT_BATCH_COST):
        chunk = ordered[span.start:span.stop]
        members = [i for ctx in chunk for i in groups[ctx]]
        rows = torch.tensor([r for r, ctx in enumerate(chunk) for _ in groups[ctx]])  # each pair's context row
        ids, mask = pad(chunk, pad_id, left=True)  # (b, width)
        prefix = body(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                      use_cache=True)
        totals = _token_logprobs(head(prefix.last_hidden_state[:, -1]), rows,
                                 torch.tensor([continuations[i][0] for i in members]))  # (pairs,)
        # Options longer than one token, shortest first, in batches of similar length; the last batch takes
        # the chunk's cache itself, the others a copy (reordering a cache replaces its rows).
        longer = sorted((r for r, i in enumerate(members) if len(continuations[i]) > 1),
                        key=lambda r: len(continuations[members[r]]))
        parts = _batches([len(continuations[members[r]]) - 1 for r in longer], len(longer), max_tokens, FORWARD_COST)
        for n, span in enumerate(parts):
            part = longer[span.start:span.stop]
            cache = prefix.cache if n == len(parts) - 1 else copy.deepcopy(prefix.cache)
            totals[part] += _rest_logprobs(body, head, cache, mask, rows[part],
                                           [continuations[members[r]] for r in part], pad_id)
        for i, total in zip(members, totals.tolist()):
            out[i] = (total, len(continuations[i]))
        done += len(members)
        if on_step:
            on_step(done, len(contexts))
    return out


# A forward pass costs about as much as this many more tokens (fp32, 2 CPU cores, SmolLM2-135M). A batch of
# contexts costs about three: its own, then its options' later tokens in a pass or two.
FORWARD_COST = 64
CONTEXT_BATCH_COST = 3 * FORWARD_COST


def _batches(lengths: list[int], max_batch: int, max_tokens: int, batch_cost: int) -> list[range]:
    """Split ascending `lengths` into consecutive batches, each within `max_batch` rows and `max_tokens` padded
    tokens, minimising padded tokens plus `batch_cost` per batch: neither many small batches nor short
    sequences padded to long ones."""
    best = [0.0] + [math.inf] * len(lengths)  # best[j]: cost of batching the first j
    cut = [0] * (len(lengths) + 1)
    for j in range(1, len(lengths) + 1):
        for i in range(j - 1, max(-1, j - 1 - max_batch), -1):  # batch i..j-1, padded to lengths[j-1]
            if i < j - 1 and (j - i) * lengths[j - 1] > max_tokens:
                break
            cost = best[i] + (j - i) * lengths[j - 1] + batch_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out: list[range] = []
    j = len(lengths)
    while j:
        out.append(range(cut[j], j))
        j = cut[j]
    return out[::-1]


def _token_logprobs(logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens[j]) under row rows[j] of logits (n, vocab): the gathered logit minus the row's logsumexp,
    without materialising a second (n, vocab) tensor of log-probabilities."""
    logits = logits.float()
    return logits[rows, tokens] - torch.logsumexp(logits, dim=-1)[rows]


def _rest_logprobs(body: Any, head: Any, cache: Any, context_mask: torch.Tensor, rows: torch.Tensor,
                   options: list[Sequence[int]], pad_id: int) -> torch.Tensor:
    """log p of each option's tokens after its first, given the cached (left-padded) context `rows[j]`
    of option j. Reorders `cache` in place to one row per option. Returns (n_options,)."""
    cache.reorder_cache(rows)
    ids, mask = pad([o[:-1] for o in options], pad_id)  # (n, m-1): token j predicts token j+1
    positions = context_mask.sum(1)[rows][:, None] + torch.arange(ids.shape[1])  # after each context's real tokens
    hidden = body(input_ids=ids, attention_mask=torch.cat([context_mask[rows], mask], dim=1), position_ids=positions,
                  cache=cache).last_hidden_state  # (n, m-1, hidden)
    targets, _ = pad([o[1:] for o in options], -100)
    keep = targets != -100
    token_lp = _token_logprobs(head(hidden[keep]), torch.arange(int(keep.sum())), targets[keep])
    owner = torch.arange(len(options)).repeat_interleave(keep.sum(1))
    return torch.zeros(len(options)).index_add_(0, owner, token_lp)


def causal_loss(model: Any, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    logits, gold = answer_logits(model, ids, mask, targets)
    return F.cross_entropy(logits, gold, reduction="sum"), int(gold.numel())


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             batch_size: int = 8, stop: Sequence[str] = (), on_step: OnStep | None = None) -> list[str]:
    """Batched greedy decoding with left padding and the KV cache; on_step(prompts done, total) per batch."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = pad([prompts[i] for i in chunk], pad_id, left=True)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id, use_cache=True)
        for i, row in zip(chunk, gen[:, ids.shape[1]:]):
            text = tokenizer.decode(row, skip_special_tokens=True)
            for s in stop:
                text = text.split(s)[0]
            out[i] = text.strip()
        if on_step:
            on_step(min(start + batch_size, len(order)), len(order))
    return out


@torch.no_grad()
def embed(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 32, max_length: int = 128,
          on_step: OnStep | None = None) -> torch.Tensor:
    """Mean-pooled, L2-normalised sentence embeddings from an encoder's last hidden state. (n, hidden)
    on_step(texts done, total) per batch."""
    base = unwrap(model)
    encoder = getattr(base, base.base_model_prefix, base)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()  # (batch, seq, 1)
        chunks.append(F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1))
        if on_step:
            on_step(min(start + batch_size, len(texts)), len(texts))
    return torch.cat(chunks)
