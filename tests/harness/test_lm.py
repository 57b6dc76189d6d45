from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
import torch

from harness.scoring.lm import continuation_logprobs
from harness.models.loading import load_model, load_tokenizer, resolve


def naive(model, context, continuation):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([context + continuation])).logits[0].float(), -1)
    return sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


@pytest.mark.parametrize("max_batch", [1, 2, 64])  # 64: every context, of four lengths, in one left-padded batch
def test_shared_prefix_scoring_equals_one_sequence_at_a_time(tiny_llama, max_batch):
    handle = resolve(str(tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    prompts = ["my parcel never came", "refund please", "my parcel never arrived!", "i cannot log in",
               "hi", "the parcel i ordered three weeks ago for my sister never arrived and nobody answers"]
    options = [" shipping", " refund", " account access"]
    contexts, conts = [], []
    for n, p in enumerate(prompts):
        for o in options[: 1 + n % 3]:  # one to three options per prompt
            contexts.append(tok(p)["input_ids"])
            conts.append(tok(o, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    got = continuation_logprobs(model, tok.pad_token_id, contexts, conts, max_batch=max_batch)
    assert len({len(c) for c in contexts}) > 2
    for (value, count), ctx, cont in zip(got, contexts, conts):
        assert count == len(cont)
        torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)


def test_one_token_options_alone_and_mixed_with_longer_ones(tiny_llama):
    handle = resolve(str(tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    eos = tok.eos_token_id
    cases = [("refund please", [[eos], [5], [7]]),  # every option one token: no pass over the options at all
             ("my parcel never came", [[eos], [5, 9, eos], [11, eos]])]  # mixed lengths in one batch
    contexts, conts = [], []
    for prompt, options in cases:
        for o in options:
            contexts.append(tok(prompt)["input_ids"])
            conts.append(o)
    got = continuation_logprobs(model, tok.pad_token_id, contexts, conts, max_batch=1)
    for (value, count), ctx, cont in zip(got, contexts, conts):
        assert count == len(cont)
        torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)


def batching_cost(lengths: list[int], spans: list[range], batch_cost: int) -> int:
    """harness.scoring.lm's cost model: every batch pads its rows to its longest (the last: lengths ascend) and costs
    `batch_cost` more for the pass itself."""
    return sum(len(s) * lengths[s.stop - 1] + batch_cost for s in spans)


def all_splits(n: int) -> Iterator[list[range]]:
    """Every way to cut n rows into consecutive batches: one per subset of the n - 1 gaps (2^(n-1) splits)."""
    for gaps in itertools.product([False, True], repeat=n - 1):
        cuts = [0] + [i + 1 for i, cut in enumerate(gaps) if cut] + [n]
        yield [range(a, b) for a, b in zip(cuts, cuts[1:])]


def allowed(lengths: list[int], s: range, max_batch: int, max_tokens: int) -> bool:
    """Within the limits; a row longer than max_tokens alone is allowed (it has to run somehow)."""
    return len(s) <= max_batch and (len(s) == 1 or len(s) * lengths[s.stop - 1] <= max_tokens)


@pytest.mark.parametrize("seed", range(4))
def test_batches_are_the_cheapest_split_by_brute_force(seed):
    """Against every split of short random length lists (up to 10 rows: 512 splits), under assorted limits: the
    chosen split is allowed and no allowed split costs less."""
    from harness.scoring.lm import split_batches

    rng = random.Random(seed)
    for _ in range(50):
        lengths = sorted(rng.choice([rng.randint(1, 8), rng.randint(1, 80)]) for _ in range(rng.randint(1, 10)))
        max_batch, max_tokens = rng.choice([1, 2, 3, 5, 64]), rng.choice([1, 16, 64, 256, 10_000])
        batch_cost = rng.choice([0, 1, 8, 64, 500])
        spans = split_batches(lengths, max_batch, max_tokens, batch_cost)
        assert [i for s in spans for i in s] == list(range(len(lengths)))
        assert all(allowed(lengths, s, max_batch, max_tokens) for s in spans)
        best = min(batching_cost(lengths, split, batch_cost) for split in all_splits(len(lengths))
                   if all(allowed(lengths, s, max_batch, max_tokens) for s in split))
        assert batching_cost(lengths, spans, batch_cost) == best, (lengths, max_batch, max_tokens, batch_cost)


def test_batches_cover_every_row_within_limits_and_trade_padding_against_passes():
    from harness.scoring.lm import split_batches

    lengths = sorted([3] * 50 + [4] + [9] * 10 + [40] * 3)
    spans = split_batches(lengths, max_batch=32, max_tokens=256, batch_cost=64)
    assert [i for s in spans for i in s] == list(range(len(lengths)))  # consecutive, complete, in order
    assert all(allowed(lengths, s, 32, 256) for s in spans)
    # Too many rows (2^63 splits) for the brute force above; the split, its cost by hand, and the two nearest
    # rivals. Not the fewest passes: three are allowed (26 rows padded to 9 fit in 256 tokens) but pad more.
    # The lone 4 is padded into the 9s rather than given a pass of its own, and the 40s never pad short rows.
    assert spans == [range(0, 32), range(32, 50), range(50, 61), range(61, 64)]
    assert batching_cost(lengths, spans, 64) == (32 * 3 + 64) + (18 * 3 + 64) + (11 * 9 + 64) + (3 * 40 + 64) == 625
    three_passes = [range(0, 32), range(32, 58), range(58, 64)]
    four_with_the_short_rows = [range(0, 32), range(32, 51), range(51, 61), range(61, 64)]
    assert all(allowed(lengths, s, 32, 256) for s in three_passes)
    assert batching_cost(lengths, three_passes, 64) == 762 and batching_cost(lengths, four_with_the_short_rows, 64) == 638
    assert len(split_batches([1, 50], max_batch=2, max_tokens=1000, batch_cost=0)) == 2  # padding 1 to 50 never pays
    assert split_batches([7], max_batch=1, max_tokens=1, batch_cost=64) == [range(0, 1)]  # a row longer than the budget


def tiny(arch: str, tiny_llama, tiny_gpt2):
    """A tiny model ("llama", "llama-eager": eager attention, "gpt2"), its tokenizer and padding id."""
    handle = resolve(str(tiny_gpt2 if arch == "gpt2" else tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    if arch == "llama-eager":
        model.set_attn_implementation("eager")
    return model, tok, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


@pytest.mark.parametrize("arch", ["llama-eager", "gpt2"])
def test_packed_options_match_one_sequence_at_a_time_with_an_additive_mask_and_learned_positions(
        arch, tiny_llama, tiny_gpt2):
    """Eager attention takes the packed mask as an additive float mask; GPT-2 reads positions from position_ids."""
    model, tok, pad_id = tiny(arch, tiny_llama, tiny_gpt2)
    contexts, conts = [], []
    for prompt in ["hi", "my parcel never came", "the parcel i ordered three weeks ago never arrived"]:
        for option in [[5], [5, 9, 11], [7, 7]]:  # options that share a first token must not see each other
            contexts.append(tok(prompt)["input_ids"])
            conts.append(option)
    got = continuation_logprobs(model, pad_id, contexts, conts)
    for (value, _), ctx, cont in zip(got, contexts, conts):
        torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)


INSTRUCTION = "classify the support ticket into one intent and answer with its name only. ticket:"


@pytest.mark.parametrize("arch", ["llama", "llama-eager", "gpt2"])
def test_a_prefix_shared_by_every_context_runs_once_and_changes_no_score(arch, tiny_llama, tiny_gpt2):
    """Contexts that all begin with an instruction: the instruction runs once (tokens computed drop by it, once per
    context but one), and every pair's log-likelihood equals scoring it alone, whatever the batching."""
    from harness.scoring.lm import SHARED, Tokens

    model, tok, pad_id = tiny(arch, tiny_llama, tiny_gpt2)
    contexts, conts = [], []
    for n, prompt in enumerate(["hi", "my parcel never came", "refund please", "the parcel i ordered never arrived"]):
        for option in [[5], [5, 9, 11], [7, 7]][: 1 + n % 3]:
            contexts.append(tok(f"{INSTRUCTION} {prompt}")["input_ids"])
            conts.append(option)
    shared_len = len(tok(INSTRUCTION)["input_ids"])
    for max_batch in (1, 64):
        shared, plain = Tokens(), Tokens()
        got = continuation_logprobs(model, pad_id, contexts, conts, max_batch=max_batch, tokens=shared)
        want = continuation_logprobs(model, pad_id, contexts, conts, max_batch=max_batch, share=False, tokens=plain)
        assert shared.paths == {SHARED: 1} and plain.paths == {"unshared: not asked to share": 1}
        assert shared.data == plain.data == sum(len(c) + len(k) for c, k in zip(contexts, conts))
        assert plain.computed - shared.computed >= (len(set(map(tuple, contexts))) - 1) * (shared_len - 1)
        for (value, _), (ref, _), ctx, cont in zip(got, want, contexts, conts):
            torch.testing.assert_close(value, ref, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)


def test_scoring_says_why_it_did_not_share(tiny_llama, tiny_bert):
    from harness.scoring.lm import Tokens

    handle = resolve(str(tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    short = Tokens()  # contexts share only the BOS token
    continuation_logprobs(model, tok.pad_token_id, [tok("hi")["input_ids"], tok("refund")["input_ids"]],
                          [[5], [5]], tokens=short)
    assert list(short.paths) == ["unshared: the common prefix is 1 tokens (under 4)"]
    model.config.layer_types = ["sliding_attention", "full_attention"]  # a cache that drops old keys
    model.config.sliding_window = 64
    sliding = Tokens()
    contexts = [tok(f"{INSTRUCTION} {p}")["input_ids"] for p in ("hi", "refund please")]
    got = continuation_logprobs(model, tok.pad_token_id, contexts, [[5], [5]], tokens=sliding)
    assert list(sliding.paths) == ["unshared: layer types full_attention, sliding_attention: only full-attention "
                                   "caches expand over a batch"]
    assert len(got) == 2


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_greedy_after_a_shared_prefix_picks_the_tokens_hf_generate_picks(arch, tiny_llama, tiny_gpt2):
    """Token for token up to each row's EOS: a row whose first greedy token is made the EOS finishes at once and
    leaves the batch (HF pads it) while the others go on; a row that emits a stop token ends there."""
    from harness.models.prefix import run_prefix
    from harness.scoring.generation import _greedy
    from harness.scoring.lm import body_and_head, pad

    model, tok, pad_id = tiny(arch, tiny_llama, tiny_gpt2)
    prompts = [tok(f"{INSTRUCTION} {p}")["input_ids"] for p in ("hi", "my parcel never came", "refund please now")]
    skip = len(tok(INSTRUCTION)["input_ids"])
    ids, mask = pad(prompts, pad_id, left=True)
    first = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False, pad_token_id=pad_id)
    eos = int(first[1, -1])  # the second prompt's first token ends it
    want = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=pad_id,
                          eos_token_id=eos)[:, ids.shape[1]:].tolist()
    assert want[1][0] == eos and len(want[0]) == 10 and want[0][-1] != eos
    body, head = body_and_head(model)
    with torch.no_grad():
        prefix = run_prefix(body, prompts[0][:skip])
        got = _greedy(body, head, prefix, [p[skip:] for p in prompts], 10, eos)
        assert got == [row[: row.index(eos) + 1] if eos in row else row for row in want]
        stop = want[0][3]  # row 0's fourth token stops it
        cut = _greedy(body, head, prefix, [p[skip:] for p in prompts], 10, eos, ends=lambda t: t == stop)
    assert cut[0] == want[0][: want[0].index(stop) + 1] and cut[1] == [eos]


def test_generate_shares_the_prefix_and_says_so(tiny_llama):
    from harness.scoring.generation import generate
    from harness.scoring.lm import SHARED, Tokens

    handle = resolve(str(tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    prompts = [tok(f"{INSTRUCTION} {p}")["input_ids"] for p in ("hi", "my parcel never came", "refund", "log in")]
    shared, plain = Tokens(), Tokens()
    got = generate(model, tok, prompts, 8, batch_size=3, tokens=shared)
    assert got == generate(model, tok, prompts, 8, batch_size=3, share=False, tokens=plain)
    assert shared.paths == {SHARED: 1} and plain.paths == {"unshared: not asked to share": 1}
    skip = len(tok(INSTRUCTION)["input_ids"])
    assert shared.data == plain.data == plain.computed == shared.computed + (len(prompts) - 1) * skip
    # a stop string: rows end at the first token that holds it, the text is the same as decoding on and cutting
    cut, whole = Tokens(), Tokens()
    stopped = generate(model, tok, prompts, 8, stop=("e",), tokens=cut)
    assert stopped == generate(model, tok, prompts, 8, stop=("e",), share=False, tokens=whole)
    assert cut.data == whole.data < whole.computed and cut.computed < whole.computed - (len(prompts) - 1) * skip
    model.generation_config.repetition_penalty = 1.3  # reads the whole sequence: HF generate applies it
    again = Tokens()
    generate(model, tok, prompts, 8, tokens=again)
    assert again.paths == {"unshared: the generation config sets repetition_penalty": 1}


def test_short_contexts_share_rows_and_score_as_one_sequence_at_a_time(tiny_llama):
    """Contexts under PACK_WIDTH packed tokens lie side by side in rows of up to PACK_WIDTH tokens, each seeing only
    itself; a longer one has a row of its own. Every pair still scores as it does alone."""
    from harness.scoring.lm import PACK_WIDTH, _rows

    lengths = {(i,): n for i, n in enumerate([3, 5, 7, 30, 40, 60, 64, 90])}
    rows = _rows(sorted(lengths, key=lengths.get), lengths)
    widths = [sum(lengths[c] for c in row) for row in rows]
    assert sorted(c for row in rows for c in row) == sorted(lengths)  # every context once
    assert widths == sorted(widths) and all(w <= PACK_WIDTH for row, w in zip(rows, widths) if len(row) > 1)
    assert [[(6,)], [(7,)]] == rows[-2:] and len(rows) < len(lengths) - 2  # 64 and 90 alone; the short ones share
    model, tok, pad_id = tiny("llama", tiny_llama, None)
    contexts, conts = [], []
    for prompt in ["hi", "refund", "my parcel never came", " ".join(["the parcel i ordered never arrived"] * 12)]:
        for option in [[5], [5, 9, 11]]:
            contexts.append(tok(prompt)["input_ids"])
            conts.append(option)
    assert len(contexts[-1]) > PACK_WIDTH
    for (value, _), ctx, cont in zip(continuation_logprobs(model, pad_id, contexts, conts), contexts, conts):
        torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)
