"""Forward passes shared by training and scoring: answer-token log-likelihoods and sentence embeddings (greedy
generation is harness/scoring/generation.py). The LM head is applied only at the positions that are scored, never
to the whole sequence, which saves a (batch, seq, vocab) logits tensor per step."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from harness.models.device import model_device
from harness.models.prefix import (
    MIN_PREFIX,
    SharedPrefix,
    common_prefix,
    model_mask,
    run_prefix,
    run_suffix,
    why_not,
)

OnStep = Callable[[int, int], None]  # (items done, items in total): a progress bar's step


def unwrap(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def body_and_head(model: Any) -> tuple[Any, Any]:
    base = unwrap(model)
    return getattr(base, base.base_model_prefix), base.get_output_embeddings()


def on_device(model: Any, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors on the model's device (the same tensors on a CPU): batches are built on the CPU, then moved once."""
    device = model_device(model)
    return tuple(t.to(device, non_blocking=True) for t in tensors)


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


def answer_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor,
                  targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict a target token (targets != -100), and those targets.

    ids, mask, targets: (batch, seq). Returns (n_answer_tokens, vocab) and (n_answer_tokens,).
    """
    body, head = body_and_head(model)
    ids, mask, targets = on_device(model, ids, mask, targets)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # (batch, seq, hidden)
    shifted = targets[:, 1:]  # position t predicts token t+1
    keep = shifted != -100
    return head(hidden[:, :-1][keep]).float(), shifted[keep]


@dataclass
class Tokens:
    """What scoring read and what it ran, summed over calls: `data`, the tokens of the rows as the data has them
    (every context with its continuation, every prompt with its generated tokens); `computed`, the real tokens
    that went through the model (a shared prefix once, packed contexts once, no padding); `paths`, how often each
    path ran ("shared prefix" or "unshared: why")."""
    data: int = 0
    computed: int = 0
    paths: dict[str, int] = field(default_factory=dict)

    def ran(self, path: str, data: int, computed: int) -> None:
        self.data, self.computed = self.data + data, self.computed + computed
        self.paths[path] = self.paths.get(path, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "computed": self.computed, "paths": dict(self.paths)}


SHARED = "shared prefix"
NO_CACHE = "unshared: the model's cache cannot be expanded over a batch"
ENCODER_PATH = "unshared: an encoder reads the whole sequence at once"


@torch.inference_mode()
def continuation_logprobs(model: Any, pad_id: int, contexts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]], max_batch: int = 256, max_tokens: int = 2048,
                          on_step: OnStep | None = None, share: bool = True,
                          tokens: Tokens | None = None) -> list[tuple[float, int]]:
    """Sum of log p(continuation | context) and its token count, for each pair.

    Pairs that share a context (a prompt and its options) are packed into one row: the context once, then
    every option's tokens but the last (whose output predicts nothing), each option attending to the context
    and to itself only, its positions continuing from the context's end. So one forward pass scores all the
    options of a context, and the context runs once. Contexts shorter than PACK_WIDTH packed tokens share rows: a
    row holds several of them side by side, each attending to itself only, its positions starting again, so short
    rows are not padded to the longest of their batch (zero-shot multiple choice). With `share`, the tokens every
    context begins with (a chat template's system turn, the benchmark's instruction) run once for the whole call
    (harness/models/prefix.py) and the rows hold only what follows, when the cost model says it pays
    (`_prefix_plan`). The LM head runs once per context for every option's first token, and once per later option
    token. Rows are left-padded and
    batched by packed length, at most `max_batch` rows and `max_tokens` padded tokens a pass, split by a cost
    model: on a CPU a pass over a few tokens costs nearly as much as one over a few hundred. on_step(pairs
    scored, pairs in total) is called after every batch; `tokens` adds up what was read and run, and the path.
    """
    if any(len(c) == 0 for c in continuations):
        raise ValueError("an empty continuation has no likelihood to score")
    lay = layout(model, contexts, continuations, max_batch, max_tokens, share)
    totals = torch.zeros(len(contexts), dtype=torch.float64)
    done = 0
    for span in lay.spans:
        chunk = lay.lines[span.start:span.stop]
        rows = pack_rows(chunk, lay.groups, continuations, lay.widths[span.stop - 1], pad_id, lay.skip)
        hidden = lay.forward(model, rows).last_hidden_state
        totals.index_add_(0, torch.tensor(rows.owners), scored_logprobs(model, lay.head, hidden, rows).double().cpu())
        done += sum(len(lay.groups[ctx]) for line in chunk for ctx in line)
        if on_step:
            on_step(done, len(contexts))
    if tokens is not None:
        tokens.ran(lay.path, data_tokens(contexts, continuations), lay.computed)
    return [(float(t), len(c)) for t, c in zip(totals, continuations)]


def data_tokens(contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]) -> int:
    """The tokens of the pairs as the data has them: every context with its continuation."""
    return sum(len(c) + len(k) for c, k in zip(contexts, continuations))


@dataclass
class Layout:
    """How a call's contexts run: grouped (pairs that share a context), the shared prefix (`skip` tokens, run once
    as `prefix`, or None), laid out in rows (`lines`, each a list of contexts, `widths` their packed tokens after
    the prefix) and batches (`spans` of lines); `computed` counts the tokens that run (the prefix once, every row's
    real tokens), `path` names the path that ran."""
    groups: dict[tuple[int, ...], list[int]]
    skip: int
    path: str
    prefix: SharedPrefix | None
    body: Any
    head: Any
    lines: list[list[tuple[int, ...]]]
    widths: list[int]
    spans: list[range]
    computed: int

    def forward(self, model: Any, rows: Packed, use_cache: bool = False) -> Any:
        """The decoder's output for packed rows (after the shared prefix when there is one); with `use_cache`,
        out.cache holds the prefix and the rows' keys and values."""
        ids, allowed, positions = on_device(model, rows.ids, rows.mask, rows.positions)
        if self.prefix is not None:
            return run_suffix(self.body, self.prefix, ids, allowed, positions, use_cache=use_cache)
        return self.body(input_ids=ids, attention_mask=model_mask(self.body, allowed), position_ids=positions,
                         use_cache=use_cache)


def layout(model: Any, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], max_batch: int,
           max_tokens: int, share: bool, placed: Callable[[int], bool] = lambda i: True) -> Layout:
    """Group the pairs by context, plan the shared prefix and lay the contexts out in rows and batches. A
    context's packed length is its tokens plus, for every pair `placed` says runs in its row, the continuation's
    tokens but the last (whose output predicts nothing)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, ctx in enumerate(contexts):
        groups.setdefault(tuple(ctx), []).append(i)
    packed = {ctx: len(ctx) + sum(len(continuations[i]) - 1 for i in members if placed(i))
              for ctx, members in groups.items()}
    body, head = body_and_head(model)
    ordered = sorted(groups, key=lambda c: packed[c])
    skip, path = _prefix_plan(body, ordered, [packed[c] for c in ordered], max_batch, max_tokens) if share \
        else (0, "unshared: not asked to share")
    prefix = run_prefix(body, ordered[0][:skip]) if skip else None
    if skip and prefix is None:
        skip, path = 0, NO_CACHE
    lines = _rows(ordered, {c: packed[c] - skip for c in ordered})
    widths = [sum(packed[c] - skip for c in line) for line in lines]
    return Layout(groups, skip, path, prefix, body, head, lines, widths,
                  split_batches(widths, max_batch, max_tokens, FORWARD_COST), skip + sum(widths))


def scored_logprobs(model: Any, head: Any, hidden: torch.Tensor, rows: Packed) -> torch.Tensor:
    """log p of every target token of packed rows, from the decoder's output at the scored positions: the LM head
    runs once per distinct position (a context's end predicts every option's first token)."""
    at, source, targets = on_device(model, torch.tensor(rows.scored), torch.tensor(rows.source),
                                    torch.tensor(rows.targets))  # at (n, 2): the distinct positions scored
    return _token_logprobs(head(hidden[at[:, 0], at[:, 1]]), source, targets)


def _prefix_plan(body: Any, contexts: list[tuple[int, ...]], lengths: list[int], max_batch: int,
                 max_tokens: int) -> tuple[int, str]:
    """How many leading tokens every context shares and will run once, and the path's name. Sharing pays when one
    pass over the prefix plus the batches of what follows it cost less than the batches of whole rows (the cost
    model of `split_batches`: padded tokens plus FORWARD_COST a pass). Every context keeps at least its last token: its
    output predicts the options' first tokens."""
    skip = common_prefix(contexts, limit=min(len(c) for c in contexts) - 1)
    if skip < MIN_PREFIX:
        return 0, f"unshared: the common prefix is {skip} tokens (under {MIN_PREFIX})"
    if reason := why_not(body):
        return 0, f"unshared: {reason}"
    whole = _cost(lengths, split_batches(lengths, max_batch, max_tokens, FORWARD_COST), FORWARD_COST)
    rest = [n - skip for n in lengths]
    shared = skip + FORWARD_COST + _cost(rest, split_batches(rest, max_batch, max_tokens, FORWARD_COST), FORWARD_COST)
    if shared >= whole:
        return 0, f"unshared: a {skip}-token prefix saves less than its own pass costs"
    return skip, SHARED


@dataclass
class Packed:
    ids: torch.Tensor  # (b, width), left-padded
    positions: torch.Tensor  # (b, width): an option's positions continue from its context's end
    mask: torch.Tensor  # (b, width, width) bool: query may attend to key
    scored: list[tuple[int, int]] = field(default_factory=list)  # (row, column) of each scored output
    source: list[int] = field(default_factory=list)  # per target token: its index into `scored`
    targets: list[int] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # per target token: its pair
    segment: torch.Tensor | None = None  # (b, width): -1 padding, 0 a context's tokens, s its s-th option's
    block: torch.Tensor | None = None  # (b, width): which context of the row a column belongs to (-1 padding)


PACK_WIDTH = 64  # contexts packed shorter than this share rows of up to this many tokens


def _rows(ordered: list[tuple[int, ...]], length: dict[tuple[int, ...], int]) -> list[list[tuple[int, ...]]]:
    """The contexts (ascending by packed length) laid out in rows, ascending by width: one shorter than PACK_WIDTH
    goes into the first row it fits within PACK_WIDTH tokens, longest first; a longer one has a row of its own."""
    short = [c for c in ordered if length[c] < PACK_WIDTH]
    lines: list[list[tuple[int, ...]]] = [[c] for c in ordered if length[c] >= PACK_WIDTH]
    room: dict[int, list[int]] = {}  # free tokens -> the packed rows (indices) with that much room
    packed: list[list[tuple[int, ...]]] = []
    for c in reversed(short):
        free = next((f for f in range(length[c], PACK_WIDTH + 1) if room.get(f)), None)
        at = room[free].pop() if free is not None else len(packed)
        if free is None:
            packed.append([])
            free = PACK_WIDTH
        packed[at].append(c)
        room.setdefault(free - length[c], []).append(at)
    return sorted(packed, key=lambda line: sum(length[c] for c in line)) + lines


def pack_rows(chunk: list[list[tuple[int, ...]]], groups: dict[tuple[int, ...], list[int]],
          continuations: Sequence[Sequence[int]], width: int, pad_id: int, skip: int = 0,
          placed: Callable[[int], bool] = lambda i: True) -> Packed:
    """Rows of contexts: [padding] context, option 1 but its last token, option 2 ..., then the row's next context
    and its options, with a mask in which each context is causal, each option sees its context and its own earlier
    tokens, nothing sees another context's tokens, and padding sees itself. The first `skip` tokens of every context
    are left out (a shared prefix run once): each context's positions start at `skip`. A pair `placed` says no to
    keeps only its first token's target (scored at its context's end): its other tokens are not in the row."""
    b = len(chunk)
    rows = Packed(torch.full((b, width), pad_id, dtype=torch.long), torch.zeros((b, width), dtype=torch.long),
                   torch.zeros(0))
    segment = torch.full((b, width), -1, dtype=torch.long)  # -1 padding, 0 the context, s option s
    block = torch.full((b, width), -1, dtype=torch.long)  # which context of the row a token belongs to
    for r, line in enumerate(chunk):
        start = width - sum(len(w) - skip + sum(len(continuations[i]) - 1 for i in groups[w] if placed(i))
                            for w in line)
        for k, whole in enumerate(line):
            start = _place(rows, segment, block, r, k, start, whole, groups, continuations, skip, placed)
    real = segment >= 0
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same = block[:, None, :] == block[:, :, None]
    visible = same & ((segment[:, None, :] == 0) | (segment[:, None, :] == segment[:, :, None]))
    rows.mask = (causal & visible & real[:, None, :] & real[:, :, None]) | torch.eye(width, dtype=torch.bool)
    rows.segment, rows.block = segment, block
    return rows


def _place(rows: Packed, segment: torch.Tensor, block: torch.Tensor, r: int, k: int, start: int,
           whole: tuple[int, ...], groups: dict[tuple[int, ...], list[int]], continuations: Sequence[Sequence[int]],
           skip: int, placed: Callable[[int], bool]) -> int:
    """One context and its options (those `placed`; the others' first tokens only) into row r from column `start`
    (the row's k-th context); returns the next free column."""
    ctx = whole[skip:]
    tokens, segments, positions = list(ctx), [0] * len(ctx), list(range(skip, len(whole)))
    rows.scored.append((r, start + len(ctx) - 1))  # predicts every option's first token
    last = len(rows.scored) - 1
    for s, i in enumerate(groups[whole], start=1):
        option = continuations[i]
        rows.source.append(last)
        rows.targets.append(option[0])
        rows.owners.append(i)
        if not placed(i):
            continue
        for j, token in enumerate(option[:-1]):  # token j predicts token j + 1
            rows.scored.append((r, start + len(tokens)))
            rows.source.append(len(rows.scored) - 1)
            rows.targets.append(option[j + 1])
            rows.owners.append(i)
            tokens.append(token)
            segments.append(s)
            positions.append(len(whole) + j)
    end = start + len(tokens)
    rows.ids[r, start:end] = torch.tensor(tokens)
    rows.positions[r, start:end] = torch.tensor(positions)
    segment[r, start:end] = torch.tensor(segments)
    block[r, start:end] = k
    return end


# A forward pass costs about as much as this many more tokens (fp32, 2 CPU cores, SmolLM2-135M).
FORWARD_COST = 64


def split_batches(lengths: list[int], max_batch: int, max_tokens: int, batch_cost: int) -> list[range]:
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


def _cost(lengths: list[int], spans: list[range], batch_cost: int) -> int:
    """The cost model's price of a split of ascending `lengths`: each batch's rows padded to its longest, plus
    `batch_cost` a pass."""
    return sum(len(s) * lengths[s.stop - 1] + batch_cost for s in spans)


def _token_logprobs(logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(tokens[j]) under row rows[j] of logits (n, vocab): the gathered logit minus the row's logsumexp,
    without materialising a second (n, vocab) tensor of log-probabilities."""
    logits = logits.float()
    return logits[rows, tokens] - torch.logsumexp(logits, dim=-1)[rows]


def causal_loss(model: Any, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    logits, gold = answer_logits(model, ids, mask, targets)
    return F.cross_entropy(logits, gold, reduction="sum"), int(gold.numel())


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
        ids, attention = on_device(model, batch["input_ids"], batch["attention_mask"])
        hidden = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
        m = attention.unsqueeze(-1).float()  # (batch, seq, 1)
        chunks.append(F.normalize((hidden.float() * m).sum(1) / m.sum(1).clamp(min=1), dim=-1).cpu())
        if on_step:
            on_step(min(start + batch_size, len(texts)), len(texts))
    return torch.cat(chunks)
