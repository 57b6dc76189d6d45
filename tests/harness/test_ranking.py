"""harness/scoring/ranking.py: each context's likeliest continuation, computing only what can change it, is the one
scoring every option finds, with its exact log-likelihood; the pairs asked for exactly are exact; the others carry
an upper bound."""
from __future__ import annotations

import math
import random

import pytest
import torch

from harness.scoring import ranking
from harness.scoring.lm import Tokens, continuation_logprobs
from harness.scoring.ranking import best_continuations
from tests.harness.test_lm import tiny


def sharpen(model, factor: float) -> None:
    """Scale the final norm's gain: the logits grow by `factor`, so a random model becomes as confident as a tuned
    classifier (most options' first token is far below the best's whole answer)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix)
    norm = getattr(body, "norm", None) or body.ln_f
    with torch.no_grad():
        norm.weight.mul_(factor)


def pairs(tok, n_prompts: int = 14, seed: int = 0):
    """Prompts that share an instruction, each with the same options of one to four tokens (one a prefix of
    another), and a gold option per prompt."""
    rng = random.Random(seed)
    eos = tok.eos_token_id
    options = [[eos], [5, eos], [5, 9, eos], [11, 12, 13, eos], [17, eos], [23, 29, eos]]
    instruction = tok("classify the message into one of the intents below please")["input_ids"]
    contexts, conts, gold = [], [], []
    for _ in range(n_prompts):
        message = [rng.randrange(30, 120) for _ in range(rng.randint(1, 12))]
        g = rng.randrange(len(options))
        for j, option in enumerate(options):
            if j == g:
                gold.append(len(conts))
            contexts.append(instruction + message)
            conts.append(option)
    return contexts, conts, gold, len(options)


def argmax(scores, k):
    return [max(range(k), key=lambda j: scores[i + j][0]) for i in range(0, len(scores), k)]


@pytest.mark.parametrize("arch", ["llama", "llama-eager", "gpt2"])
@pytest.mark.parametrize("sharpness", [1.0, 40.0])
def test_the_likeliest_continuation_and_the_exact_pairs_are_what_scoring_every_option_gives(
        arch, sharpness, tiny_llama, tiny_gpt2, monkeypatch):
    model, tok, pad = tiny(arch, tiny_llama, tiny_gpt2)
    sharpen(model, sharpness)
    contexts, conts, gold, k = pairs(tok)
    full = continuation_logprobs(model, pad, contexts, conts, share=False)
    winners = argmax(full, k)
    pruned = False
    for share in (True, False):
        # one option a pass, the default, every open one at once; and a memory budget of one byte (the later passes
        # run after every first pass, one kept context a row)
        for margin, budget in ((0.0, ranking.KEPT_BYTES), (ranking.MARGIN, ranking.KEPT_BYTES),
                               (math.inf, ranking.KEPT_BYTES), (ranking.MARGIN, 1)):
            monkeypatch.setattr(ranking, "MARGIN", margin)
            monkeypatch.setattr(ranking, "KEPT_BYTES", budget)
            tokens = Tokens()
            got = best_continuations(model, pad, contexts, conts, exact=gold, share=share, max_batch=4,
                                     tokens=tokens)
            assert argmax(got, k) == winners, (share, margin, budget)
            for c, w in enumerate(winners):
                torch.testing.assert_close(got[c * k + w][0], full[c * k + w][0], rtol=1e-5, atol=1e-5)
            for g in gold:
                torch.testing.assert_close(got[g][0], full[g][0], rtol=1e-5, atol=1e-5)
            for (bound, count), (value, n), cont in zip(got, full, conts):
                assert count == n == len(cont)
                assert bound >= value - 1e-5 * max(1.0, abs(value))  # never below the exact log-likelihood
            pruned |= any(b - v > 1e-3 for (b, _), (v, _) in zip(got, full))
            assert tokens.data == sum(len(c) + len(o) for c, o in zip(contexts, conts))
            assert ("shared prefix" in tokens.paths) == share
    if sharpness > 1:
        assert pruned  # a confident model's losing options stopped at their first token


def test_a_confident_model_runs_fewer_tokens_and_an_upset_is_still_found(tiny_llama):
    """With a sharpened model, ranking computes fewer tokens than scoring every option, and some prompt's likeliest
    first token is not its likeliest whole answer (the later tokens decide): ranking still finds the answer."""
    model, tok, pad = tiny("llama", tiny_llama, None)
    sharpen(model, 40.0)
    contexts, conts, _, k = pairs(tok, n_prompts=30, seed=1)
    every, ranked = Tokens(), Tokens()
    full = continuation_logprobs(model, pad, contexts, conts, tokens=every)
    first = continuation_logprobs(model, pad, contexts, [c[:1] for c in conts])
    got = best_continuations(model, pad, contexts, conts, tokens=ranked)
    assert argmax(got, k) == argmax(full, k)
    assert any(a != b for a, b in zip(argmax(first, k), argmax(full, k)))  # an upset
    assert ranked.computed < every.computed


def test_a_model_whose_cache_cannot_be_extended_gets_every_pair_exactly(tiny_llama, monkeypatch):
    model, tok, pad = tiny("llama", tiny_llama, None)
    sharpen(model, 40.0)
    contexts, conts, _, k = pairs(tok, n_prompts=4)
    monkeypatch.setattr(ranking, "why_not", lambda body: "sliding-window attention")
    full = continuation_logprobs(model, pad, contexts, conts)
    got = best_continuations(model, pad, contexts, conts)
    for (a, _), (b, _) in zip(got, full):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="empty continuation"):
        best_continuations(model, pad, [[1, 2, 3]], [[]])


def test_bf16_copies_of_every_linear_change_no_score_and_the_originals_come_back(tiny_llama):
    """Scoring units run with every linear weight as a bf16 copy (harness/execution/compute.py): autocast rounds
    the fp32 weights to the same values on each pass, so every log-likelihood is bit-identical."""
    from harness.models.device import autocast, frozen_linears_in_bf16

    model, tok, pad = tiny("llama", tiny_llama, None)
    contexts, conts, _, _ = pairs(tok, n_prompts=6)
    before = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    with autocast(True):
        plain = continuation_logprobs(model, pad, contexts, conts)
        with frozen_linears_in_bf16(model, True, trainable=True):
            weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
            assert weights and all(w.dtype == torch.bfloat16 for w in weights)  # trainable ones too (all, untuned)
            copied = continuation_logprobs(model, pad, contexts, conts)
    assert copied == plain
    for name, param in model.named_parameters():
        assert param is before[name][0] and param.dtype == torch.float32 and torch.equal(param, before[name][1])
