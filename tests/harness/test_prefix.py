"""harness/models/prefix.py: a shared prefix run once gives the hidden states, losses and gradients of running every
row whole, on tiny models built from configs (Llama with grouped-query attention, eager and SDPA; GPT-2)."""
from __future__ import annotations

import pytest
import torch

from harness.models.loading import load_model, resolve
from harness.models.prefix import (
    common_prefix,
    padded_common_prefix,
    run_prefix,
    run_suffix,
    shared_hidden,
    why_not,
)
from harness.scoring.lm import body_and_head, pad

PREFIX = [1, 17, 23, 42, 8, 8, 99, 5]  # a "system turn" every row starts with
ROWS = [PREFIX + [11, 12, 13], PREFIX + [30], PREFIX + [7, 7, 7, 7, 7, 9], PREFIX + [40, 41]]


@pytest.fixture(params=["llama-sdpa", "llama-eager", "gpt2"])
def body(request, tiny_llama, tiny_gpt2):
    model = load_model(resolve(str(tiny_gpt2 if request.param == "gpt2" else tiny_llama)))
    if request.param == "llama-eager":
        model.set_attn_implementation("eager")
    return body_and_head(model)[0].eval()


def test_common_prefix_of_token_lists_and_of_padded_batches():
    assert common_prefix(ROWS) == len(PREFIX)
    assert common_prefix(ROWS, limit=3) == 3
    assert common_prefix([[1, 2], [1, 2]]) == 2 and common_prefix([[1, 2], [3]]) == 0 and common_prefix([]) == 0
    ids, mask = pad(ROWS, 0)
    assert padded_common_prefix(ids, mask) == len(PREFIX)
    ids, mask = pad([[1, 2, 3], [1, 2, 3]], 0)
    assert padded_common_prefix(ids, mask) == 3
    ids, mask = pad([[5, 5, 5], [5, 5]], 5)  # the padding id equals the tokens: the mask decides
    assert padded_common_prefix(ids, mask) == 2
    ids, mask = pad(ROWS, 0, left=True)  # left padding: the prefixes are not aligned in columns
    assert padded_common_prefix(ids, mask) == 0


def test_suffixes_after_a_shared_prefix_equal_whole_rows(body):
    ids, mask = pad(ROWS, 0)
    with torch.no_grad():
        whole = body(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden, p = shared_hidden(body, ids, mask)
    assert p == len(PREFIX) and hidden.shape[1] == ids.shape[1] - p
    real = mask[:, p:].bool()
    torch.testing.assert_close(hidden[real], whole[:, p:][real], rtol=1e-5, atol=1e-5)


def test_the_prefix_is_expanded_over_the_batch_without_a_copy(tiny_llama):
    body = body_and_head(load_model(resolve(str(tiny_llama))))[0]
    with torch.no_grad():
        prefix = run_prefix(body, PREFIX)
    assert prefix is not None and prefix.length == len(PREFIX)
    cache = prefix.cache(4)
    for layer, k in zip(cache.layers, prefix.keys):
        assert layer.keys.shape[0] == 4 and layer.keys.data_ptr() == k.data_ptr() and layer.keys.stride(0) == 0
    assert cache.get_seq_length() == len(PREFIX)


def test_a_packed_suffix_mask_gets_the_prefix_columns(body):
    """A (batch, seq, seq) suffix mask: here two rows whose second half must not see the first (as packed options)."""
    suffix = torch.tensor([[11, 12, 13, 14], [30, 31, 32, 33]])
    allowed = torch.ones(4, 4, dtype=torch.bool).tril()
    allowed[2:, :2] = False  # tokens 2, 3 see the prefix and themselves only
    positions = torch.tensor([[8, 9, 8, 9]] * 2)
    with torch.no_grad():
        prefix = run_prefix(body, PREFIX)
        got = run_suffix(body, prefix, suffix, allowed.expand(2, -1, -1), positions).last_hidden_state
        for r in range(2):
            for half in (slice(0, 2), slice(2, 4)):
                row = torch.tensor([PREFIX + suffix[r, half].tolist()])
                want = body(input_ids=row).last_hidden_state[0, len(PREFIX):]
                torch.testing.assert_close(got[r, half], want, rtol=1e-5, atol=1e-5)


def test_it_falls_back_where_sharing_does_not_apply(tiny_llama, tiny_bert):
    body = body_and_head(load_model(resolve(str(tiny_llama))))[0]
    with torch.no_grad():
        short = pad([[1, 2, 3, 4], [1, 2, 9]], 0)
        assert shared_hidden(body, *short)[1] == 0  # two shared tokens: under MIN_PREFIX
        left = pad(ROWS, 0, left=True)
        hidden, p = shared_hidden(body, *left)
        assert p == 0 and hidden.shape[1] == left[0].shape[1]
        assert shared_hidden(body, *pad(ROWS, 0), max_prefix=5)[1] == 5
        same = pad([PREFIX, PREFIX], 0)  # identical rows: the prefix leaves each row its last token
        assert shared_hidden(body, *same)[1] == len(PREFIX) - 1
    assert why_not(body) == ""
    assert why_not(load_model(resolve(str(tiny_bert)))) != ""
    sliding = body_and_head(load_model(resolve(str(tiny_llama))))[0]
    sliding.config.layer_types = ["sliding_attention", "full_attention"]
    assert "sliding_attention" in why_not(sliding)


def test_gradients_through_a_shared_prefix_equal_the_unshared_ones(tiny_llama):
    """Training mode with dropout 0: the loss and every parameter's gradient equal running each row whole; the
    prefix's keys and values get the sum of every row's gradient."""
    model = load_model(resolve(str(tiny_llama))).train()
    body, head = body_and_head(model)
    ids, mask = pad(ROWS, 0)

    def loss_and_grads(share: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        if share:
            hidden, p = shared_hidden(body, ids, mask)
        else:  # every row whole, scored on the same columns
            p = len(PREFIX)
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state[:, p:]
        logits = head(hidden[:, :-1])  # (batch, seq - p - 1, vocab): column t predicts t + 1
        gold = ids[:, p + 1:].masked_fill(mask[:, p + 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), gold.flatten(), reduction="sum")
        loss.backward()
        return loss.detach(), [q.grad.clone() for q in model.parameters()]

    loss, grads = loss_and_grads(share=False)
    shared_loss, shared_grads = loss_and_grads(share=True)
    torch.testing.assert_close(shared_loss, loss, rtol=1e-5, atol=1e-5)
    assert all(g.abs().sum() > 0 for g in grads[:3])  # the embedding and the first layer's gradients flow
    for got, want in zip(shared_grads, grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
