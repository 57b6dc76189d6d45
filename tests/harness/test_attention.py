"""harness/models/attention.py: the short-row CPU attention gives sdpa's outputs and gradients (fp32, tiny models
built from configs: Llama with grouped-query attention, GPT-2 without), under every mask sftbench passes; the cases
it does not handle (no gradient among them) really go to sdpa; a causal LM loaded on the CPU runs it, and nothing else
does."""
from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import pytest
import torch

import harness.models.attention as attention
from harness.models.attention import NAME, choose, small_attention
from harness.models.loading import load_model, resolve
from harness.models.prefix import is_eager, model_mask, run_prefix, run_suffix
from harness.scoring.lm import body_and_head, pad

PREFIX = [1, 17, 23, 42, 8, 8, 99, 5]
ROWS = [PREFIX + [11, 12, 13], PREFIX + [30], PREFIX + [7, 7, 7, 7, 7, 9], PREFIX + [40, 41]]


def sdpa_calls() -> mock.MagicMock:
    """A spy on sdpa (what small_attention hands its other cases to): .call_count says how often it ran."""
    from transformers.integrations import sdpa_attention

    return mock.patch.object(sdpa_attention, "sdpa_attention_forward", wraps=sdpa_attention.sdpa_attention_forward)


def both(model, run: Callable[[], torch.Tensor], prefixed: bool = False
         ) -> dict[str, tuple[torch.Tensor, list[torch.Tensor]]]:
    """run()'s output and every parameter's gradient of its sum (eval mode: no dropout), under sdpa and under NAME.
    Under NAME every layer's attention (twice with a `prefixed` run: prefix, then suffix) runs here, none in sdpa."""
    model.eval()
    got = {}
    for impl in ("sdpa", NAME):
        model.set_attn_implementation(impl)
        model.zero_grad()
        with sdpa_calls() as spy, mock.patch.object(attention, "delegates", wraps=attention.delegates) as asked:
            out = run()
            out.float().sum().backward()
        assert spy.call_count == 0 and asked.call_count == (0 if impl == "sdpa" else model.config.num_hidden_layers
                                                            * (2 if prefixed else 1))
        got[impl] = out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]
    return got


def assert_same(got, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    (out, grads), (ref, ref_grads) = got[NAME], got["sdpa"]
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    assert len(grads) == len(ref_grads) and any(g.abs().sum() > 0 for g in grads)
    for g, want in zip(grads, ref_grads):
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-5)


@pytest.fixture(params=["llama", "gpt2"])
def model(request, tiny_llama, tiny_gpt2):
    return load_model(resolve(str(tiny_gpt2 if request.param == "gpt2" else tiny_llama)))


def test_a_causal_lm_on_the_cpu_runs_it_and_nothing_else_does(tiny_llama, tiny_gpt2, tiny_bert):
    llama, gpt2 = load_model(resolve(str(tiny_llama))), load_model(resolve(str(tiny_gpt2)))
    assert llama.config._attn_implementation == gpt2.config._attn_implementation == NAME
    assert body_and_head(llama)[0].config._attn_implementation == NAME and not is_eager(body_and_head(llama)[0])
    assert model_mask(body_and_head(llama)[0], torch.ones(1, 2, 2, dtype=torch.bool)).dtype == torch.bool
    assert load_model(resolve(str(tiny_bert))).config._attn_implementation == "sdpa"  # encoders: untouched
    choose(llama, "cuda:0")  # moved to an accelerator: sdpa again (the config changes; no GPU is needed)
    assert llama.config._attn_implementation == "sdpa"
    llama.set_attn_implementation("eager")
    choose(llama, "cpu")  # eager (or flash) is left as it is
    assert llama.config._attn_implementation == "eager" and is_eager(llama)


def test_padded_rows_left_and_right(model):
    for left in (False, True):  # left padding: the padding's own query rows see no key at all
        ids, mask = pad(ROWS, 0, left=left)
        assert_same(both(model, lambda ids=ids, mask=mask: model(input_ids=ids, attention_mask=mask).logits))


def test_no_mask_is_the_causal_triangle(model):
    ids = torch.tensor(ROWS[2:3] * 2)  # no padding: transformers passes no mask, only is_causal
    assert_same(both(model, lambda: model(input_ids=ids).logits))


def test_a_packed_4d_boolean_mask(model):
    """Two options packed in a row after their context, each seeing the context and itself (harness/scoring/lm.py)."""
    body, head = body_and_head(model)
    ids = torch.tensor([PREFIX + [11, 12, 30, 31]] * 2)
    n = len(PREFIX)
    allowed = torch.ones(n + 4, n + 4, dtype=torch.bool).tril()
    allowed[n + 2:, n:n + 2] = False
    allowed = allowed.expand(2, -1, -1).clone()
    allowed[1, :, :3] = False  # row 1 hides its first tokens: its first query rows see nothing
    positions = torch.tensor([list(range(n + 2)) + [n, n + 1]] * 2)
    assert_same(both(model, lambda: head(body(input_ids=ids, attention_mask=model_mask(body, allowed),
                                               position_ids=positions).last_hidden_state)))


def test_a_cached_prefix_with_fewer_queries_than_keys(model):
    """harness/models/prefix.py: suffixes attend to the prefix's expanded KV cache (query 4, keys 12), with a padding
    mask and with a packed suffix mask; gradients flow into the prefix's keys and values."""
    body, head = body_and_head(model)
    suffix = torch.tensor([[11, 12, 13, 14], [30, 31, 3, 3]])
    padding = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    packed = torch.ones(4, 4, dtype=torch.bool).tril().expand(2, -1, -1).clone()
    packed[:, 2:, :2] = False
    for mask in (padding, packed):
        def run(mask: torch.Tensor = mask) -> torch.Tensor:
            return head(run_suffix(body, run_prefix(body, PREFIX), suffix, mask).last_hidden_state)

        assert_same(both(model, run, prefixed=True))


def test_bf16_autocast_returns_bf16_close_to_sdpa(tiny_llama):
    model = load_model(resolve(str(tiny_llama)))
    ids, mask = pad(ROWS, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = both(model, lambda: body_and_head(model)[0](input_ids=ids, attention_mask=mask).last_hidden_state)
    assert got[NAME][0].dtype == got["sdpa"][0].dtype
    torch.testing.assert_close(got[NAME][0].float(), got["sdpa"][0].float(), rtol=0.05, atol=0.05)


def test_without_gradients_it_is_sdpa_exactly(tiny_llama):
    """Scoring, probes and generation run without gradients: sdpa's own kernel, bit for bit."""
    model = load_model(resolve(str(tiny_llama)))
    ids, mask = pad(ROWS, 0, left=True)
    logits = {}
    for impl in ("sdpa", NAME):
        model.set_attn_implementation(impl)
        with torch.no_grad(), sdpa_calls() as spy:
            logits[impl] = model(input_ids=ids, attention_mask=mask).logits
        assert spy.call_count == (model.config.num_hidden_layers if impl == NAME else 0)
    assert torch.equal(logits[NAME], logits["sdpa"])


class Module(torch.nn.Module):
    is_causal = True
    num_key_value_groups = 2


def qkv(b: int = 2, s: int = 5, k_len: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query (batch, 4 heads, s, 8), keys and values (batch, 2 heads, k_len, 8); the query requires grad (training)."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, 4, s, 8, generator=g).requires_grad_(), torch.randn(b, 2, k_len, 8, generator=g),
            torch.randn(b, 2, k_len, 8, generator=g))


def test_a_query_that_sees_nothing_gives_zeros_as_sdpa_does():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, k, v = (t.requires_grad_() for t in qkv())  # every one: each gets a gradient below
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool).tril()
    mask[1, 0, :2] = False
    out = small_attention(Module(), q, k, v, mask)[0]
    assert not out.isnan().any() and out[1, :2].abs().sum() == 0
    torch.testing.assert_close(out, sdpa_attention_forward(Module(), q, k, v, mask)[0], rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert all(t.grad is not None and t.grad.isfinite().all() for t in (q, k, v))
    heads = mask.expand(-1, 4, -1, -1).clone()  # a mask per query head
    heads[0, 3] = False
    torch.testing.assert_close(small_attention(Module(), q, k, v, heads)[0],
                               sdpa_attention_forward(Module(), q, k, v, heads)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["large", "dropout", "float mask", "causal, no mask, fewer queries than keys",
                                  "position bias", "not on the CPU", "no gradient", "nothing requires grad",
                                  "more keys than MAX_KEYS"])
def test_what_it_does_not_handle_goes_to_sdpa(case, monkeypatch):
    q, k, v = qkv(s=3 if case.startswith("causal") else 5)
    mask = None if case.startswith("causal") else torch.ones(2, 1, 5, 5, dtype=torch.bool).tril()
    kwargs = {}
    if case == "large":
        monkeypatch.setattr(attention, "SMALL", 2 * 4 * 5 * 5 - 1)  # one element over the limit
    elif case == "more keys than MAX_KEYS":
        monkeypatch.setattr(attention, "MAX_KEYS", 4)  # 5 keys
    elif case == "dropout":
        kwargs["dropout"] = 0.1
    elif case == "float mask":
        mask = torch.zeros(2, 1, 5, 5).masked_fill(~mask, torch.finfo(torch.float32).min)
    elif case == "position bias":
        kwargs["position_bias"] = torch.zeros(1, 4, 5, 5)
    elif case == "not on the CPU":  # the meta device stands in for an accelerator: shapes only, no GPU needed
        q, k, v, mask = q.to("meta"), k.to("meta"), v.to("meta"), mask.to("meta")
    if case == "nothing requires grad":  # grad mode on, but no backward pass can follow
        q = q.detach()
    with sdpa_calls() as spy, torch.set_grad_enabled(case != "no gradient"):
        small_attention(Module(), q, k, v, mask, **kwargs)
    assert spy.call_count == 1
    if case == "large":  # and one element under it runs here
        monkeypatch.setattr(attention, "SMALL", 2 * 4 * 5 * 5)
        with sdpa_calls() as spy:
            small_attention(Module(), q, k, v, mask)
        assert spy.call_count == 0
