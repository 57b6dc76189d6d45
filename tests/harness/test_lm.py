from __future__ import annotations

import pytest
import torch

from harness.lm import continuation_logprobs
from harness.models import load_model, load_tokenizer, resolve


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


def test_batches_cover_every_row_within_limits_and_trade_padding_against_passes():
    from harness.lm import _batches

    lengths = sorted([3] * 50 + [4] + [9] * 10 + [40] * 3)
    spans = _batches(lengths, max_batch=32, max_tokens=256, batch_cost=64)
    assert [i for s in spans for i in s] == list(range(len(lengths)))  # consecutive, complete, in order
    assert all(len(s) <= 32 and len(s) * lengths[s.stop - 1] <= 256 for s in spans)
    # the fewest passes the limits allow (51 short rows need two): the lone 4 is padded into a neighbour's batch
    # rather than given a pass of its own, and the 40s, too long to share, never pad the short rows
    assert len(spans) == 4 and spans[-1] == range(61, 64)
    assert all(len(s) > 1 for s in spans)
    assert len(_batches([1, 50], max_batch=2, max_tokens=1000, batch_cost=0)) == 2  # padding 1 to 50 never pays
    assert _batches([7], max_batch=1, max_tokens=1, batch_cost=64) == [range(0, 1)]  # a row longer than the budget


@pytest.mark.parametrize("arch", ["llama-eager", "gpt2"])
def test_packed_options_match_one_sequence_at_a_time_with_an_additive_mask_and_learned_positions(
        arch, tiny_llama, tiny_gpt2):
    """Eager attention takes the packed mask as an additive float mask; GPT-2 reads positions from position_ids."""
    handle = resolve(str(tiny_gpt2 if arch == "gpt2" else tiny_llama))
    model, tok = load_model(handle), load_tokenizer(handle)
    if arch == "llama-eager":
        model.set_attn_implementation("eager")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    contexts, conts = [], []
    for prompt in ["hi", "my parcel never came", "the parcel i ordered three weeks ago never arrived"]:
        for option in [[5], [5, 9, 11], [7, 7]]:  # options that share a first token must not see each other
            contexts.append(tok(prompt)["input_ids"])
            conts.append(option)
    got = continuation_logprobs(model, pad_id, contexts, conts)
    for (value, _), ctx, cont in zip(got, contexts, conts):
        torch.testing.assert_close(value, naive(model, ctx, cont), rtol=1e-5, atol=1e-5)
