"""The shared prompt prefix in training (harness/training/loop.py's module docstring says what and why): which
micro-batches share it (PrefixSharing, shared_length) and the two layouts that compute the loss with the prefix run
once, one packed row (packed_prefix_loss) or the prefix's own pass with the suffixes against its expanded keys and
values (shared_prefix_loss)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F

from harness.data.encode import Encoded
from harness.models import prefix
from harness.scoring.lm import FORWARD_COST, body_and_head, on_device, pad


class PrefixSharing:
    """Whether a micro-batch runs its common prefix once (module docstring), and a tally of which path each took."""

    def __init__(self, why_not: str = "", packed_only: str = ""):
        self.fixed = why_not  # a reason that holds for every micro-batch ("" while sharing is possible)
        self.packed_only = packed_only  # why only the packed layout may run ("": both may), e.g. checkpointing
        self.why_not: dict[str, int] = {}  # reason -> micro-batches that took the unshared path for it
        self.shared = self.batches = self.prefix_tokens = self.tokens_computed = 0
        self.checked = False  # whether the model's own reason (prefix.why_not) was asked

    def length(self, model: Any, items: Sequence[Encoded]) -> int:
        """The prefix length this micro-batch shares; 0 when it takes the unshared path (counted with why)."""
        if not self.checked and not isinstance(items[0].labels, int):
            self.fixed = self.fixed or prefix.why_not(body_and_head(model)[0])  # once: sliding-window layers, say
            self.checked = True
        why = self.fixed or ("classifier: the encoder reads the whole sequence" if isinstance(items[0].labels, int)
                             else "one row" if len(items) < 2 else "")
        n = 0 if why else shared_length(items)
        if not why and (n < prefix.MIN_PREFIX or (len(items) - 1) * n < FORWARD_COST):
            why = f"common prefix too short: it saves less than one forward pass ({FORWARD_COST} tokens)"
        if not why and self.packed_only and not packs(items, n):
            why = f"{self.packed_only}, and the micro-batch is over {PACK_TOKENS} tokens packed"
        if why:
            self.note(items, why)
            return 0
        return n

    def note(self, items: Sequence[Encoded], why: str = "", shared: int = 0) -> None:
        """Count one micro-batch: shared with a `shared`-token prefix, or unshared for `why`."""
        self.batches += 1
        self.tokens_computed += sum(len(it.input_ids) for it in items) - (len(items) - 1) * shared
        if shared:
            self.shared, self.prefix_tokens = self.shared + 1, self.prefix_tokens + shared
        else:
            self.why_not[why] = self.why_not.get(why, 0) + 1

    def cannot_expand(self, items: Sequence[Encoded]) -> None:
        """The model's cache cannot be expanded over a batch: this and every later micro-batch go unshared."""
        self.fixed = "the model's cache is not a plain DynamicCache of full-attention layers"
        self.note(items, self.fixed)

    def record(self) -> dict[str, Any]:
        path = "shared" if self.shared == self.batches else "unshared" if not self.shared else "mixed"
        return {"path": path, "shared_batches": self.shared, "batches": self.batches,
                "mean_prefix_tokens": round(self.prefix_tokens / self.shared, 1) if self.shared else 0.0,
                "unshared_why": dict(self.why_not)}


def shared_length(items: Sequence[Encoded]) -> int:
    """The leading tokens every item has in common and whose outputs no loss reads: the longest common prefix of the
    inputs, cut so that the prefix's outputs (position t predicts token t + 1) predict no learned token, and short of
    every item's last token."""
    limit = min(min(len(it.input_ids) - 1,
                    next((t for t, label in enumerate(cast("list[int]", it.labels)) if t and label != -100),
                         len(it.input_ids)) - 1) for it in items)
    return prefix.common_prefix([it.input_ids for it in items], max(limit, 0))


# A micro-batch whose prefix and suffixes add up to at most this many tokens runs as one packed row; a longer one
# runs the prefix, then the suffixes against its expanded keys and values (attention over one packed row grows with
# the square of its length: at 2,048 tokens it is still a few percent of a small model's linear layers).
PACK_TOKENS = 2048


def packs(items: Sequence[Encoded], length: int) -> bool:
    """Whether a micro-batch sharing its first `length` tokens runs as one packed row (at most PACK_TOKENS)."""
    return length + sum(len(it.input_ids) - length for it in items) <= PACK_TOKENS


def shared_prefix_loss(model: Any, items: Sequence[Encoded], pad_id: int,
                       length: int) -> tuple[torch.Tensor, int] | None:
    """causal_loss of `items` with their first `length` tokens run once: as one packed row where it fits in
    PACK_TOKENS (`packed_prefix_loss`), else as one row whose keys and values the suffixes run against
    (harness/models/prefix.py). None when the model's cache cannot be expanded."""
    if packs(items, length):
        return packed_prefix_loss(model, items, length)
    body, head = body_and_head(model)
    shared = prefix.run_prefix(body, items[0].input_ids[:length])
    if shared is None:
        return None
    ids, mask = pad([it.input_ids[length:] for it in items], pad_id)
    targets, _ = pad([cast("list[int]", it.labels)[length:] for it in items], -100)
    ids, mask, targets = on_device(model, ids, mask, targets)
    hidden = prefix.run_suffix(body, shared, ids, mask).last_hidden_state
    shifted = targets[:, 1:]  # suffix position t predicts token t + 1; the prefix's outputs predict nothing learned
    keep = shifted != -100
    return F.cross_entropy(head(hidden[:, :-1][keep]).float(), shifted[keep], reduction="sum"), int(keep.sum())


def packed_prefix_loss(model: Any, items: Sequence[Encoded], length: int) -> tuple[torch.Tensor, int]:
    """causal_loss of `items` as one row: their common first `length` tokens once, then every item's suffix, each
    attending to the prefix and to its own earlier tokens only (a block mask), its positions continuing from the
    prefix's end. The same arithmetic as the expanded-cache path (one copy of the prefix's keys and values that
    every suffix reads, so the gradient through the prefix is the sum over the rows), in one forward pass instead
    of two and with no padding: on a CPU a pass's fixed cost is worth dozens of tokens (FORWARD_COST)."""
    body, head = body_and_head(model)
    ids, positions, segment = list(items[0].input_ids[:length]), list(range(length)), [0] * length
    targets = [-100] * length  # the prefix's outputs predict no learned token (shared_length)
    for k, it in enumerate(items, start=1):
        suffix, labels = it.input_ids[length:], cast("list[int]", it.labels)[length:]
        ids += suffix
        positions += range(length, length + len(suffix))
        segment += [k] * len(suffix)
        targets += labels[1:] + [-100]  # each suffix token predicts the next one of its own row
    seg = torch.tensor(segment)
    visible = (seg[None, :] == 0) | (seg[None, :] == seg[:, None])  # (query, key): the prefix, or the same row
    allowed = torch.ones(len(ids), len(ids), dtype=torch.bool).tril() & visible
    row, at, gold, allowed = on_device(model, torch.tensor([ids]), torch.tensor([positions]), torch.tensor(targets),
                                       allowed[None])
    hidden = body(input_ids=row, attention_mask=prefix.model_mask(body, allowed), position_ids=at).last_hidden_state[0]
    keep = gold != -100
    return F.cross_entropy(head(hidden[keep]).float(), gold[keep], reduction="sum"), int(keep.sum())
