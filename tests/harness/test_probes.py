from __future__ import annotations

import json

import pytest
import torch

from harness.config import SuiteRef
from harness.errors import ConfigError, DataError
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.probes import (CLOZE_MAX_NEW_TOKENS, PROBE_KINDS, ProbeItem, ProbeScore, ProbeSpec, cloze_match,
                            forgetting_report, load_probe, score_probe)
from tests.conftest import ROOT

MC = ProbeSpec("mc", "1", "multiple_choice", "", "")
CLOZE = ProbeSpec("cloze", "1", "cloze", "", "")


@pytest.fixture(scope="module")
def llama(tiny_llama):
    handle = resolve(str(tiny_llama))
    return load_model(handle), load_tokenizer(handle)


def naive_logprob(model, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context) from one unbatched, uncached forward over the whole sequence."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([context + continuation])).logits[0].float(), -1)  # (seq, vocab)
    return sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(continuation))


def naive_greedy(model, tok, prompt: str, steps: int) -> str:
    """Greedy decoding one token at a time with a full forward each step: no cache, no padding, no batch."""
    ids = tok(prompt)["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
    return tok.decode(new, skip_special_tokens=True).split("\n")[0].strip()


def test_probe_kinds_keep_their_model_kinds():
    assert PROBE_KINDS == {"multiple_choice": "causal", "paraphrase_ranking": "encoder", "cloze": "causal",
                           "lm_eval": "causal"}


def test_multiple_choice_equals_naive_full_forward(llama):
    model, tok = llama
    # two prompts of equal length share a batch; the third has a different option count
    items = [ProbeItem("my parcel never came", "shipping", ("refund", "billing", "account access")),
             ProbeItem("my parcel never left", "refund", ("shipping", "billing", "bug report")),
             ProbeItem("i cannot log in to my account", "account access", ("billing", "cancellation")),
             ProbeItem("please cancel my plan", "cancellation", ("feature request",))]
    got = score_probe(MC, items, model, tok)
    for i, item in enumerate(items):
        ctx = tok(item.prompt)["input_ids"]
        options = (item.answer, *item.distractors)
        raw = [naive_logprob(model, ctx, tok(" " + o, add_special_tokens=False)["input_ids"]) for o in options]
        norm = [r / len(" " + o) for r, o in zip(raw, options)]
        assert got.correct[i] == int(raw[0] > max(raw[1:]))
        assert got.correct_norm[i] == int(norm[0] > max(norm[1:]))
        torch.testing.assert_close(got.margin[i], raw[0] - max(raw[1:]), rtol=1e-4, atol=1e-4)
    assert got.outputs == []


def test_multiple_choice_answer_the_model_prefers_is_correct(llama):
    """Put the option the naive forward likes best in the answer slot: every item must score correct."""
    model, tok = llama
    prompts = ["refund please", "the app crashes when i open it", "where is my order"]
    options = ["refund", "bug report", "shipping", "billing"]
    items = []
    for p in prompts:
        ctx = tok(p)["input_ids"]
        ids = {o: tok(" " + o, add_special_tokens=False)["input_ids"] for o in options}
        ranked = sorted(options, key=lambda o: -naive_logprob(model, ctx, ids[o]))
        items += [ProbeItem(p, ranked[0], tuple(ranked[1:])), ProbeItem(p, ranked[-1], tuple(ranked[:-1]))]
    got = score_probe(MC, items, model, tok)
    assert got.correct == [1, 0] * len(prompts)
    assert all(m > 0 for m in got.margin[::2]) and all(m < 0 for m in got.margin[1::2])


def test_cloze_is_deterministic_and_equals_naive_greedy(llama):
    model, tok = llama
    prompts = ["my parcel never came", "i was charged twice for my subscription and", "refund", "the app"]
    expected = [naive_greedy(model, tok, p, CLOZE_MAX_NEW_TOKENS) for p in prompts]
    # answers: the model's own first word (correct) and a word it did not say (wrong)
    items = [ProbeItem(p, e.split()[0] if e.split() else "x", ()) for p, e in zip(prompts, expected)]
    items += [ProbeItem(p, "zzqx", ()) for p in prompts]
    first = score_probe(CLOZE, items, model, tok)
    second = score_probe(CLOZE, items, model, tok)
    assert first == second
    assert first.outputs[: len(prompts)] == expected  # batched, left-padded, cached == naive
    assert first.correct == [int(bool(e.split())) for e in expected] + [0] * len(prompts)
    assert first.margin == [float(c) for c in first.correct]  # one-word answers: margin is 0 or 1
    assert first.correct_norm == []


@pytest.mark.parametrize("generated, answer, share", [
    ("Paris", "Paris", 1.0),
    ("Paris.", "paris", 1.0),
    ("  PARIS, the capital of France", "Paris", 1.0),
    ("Parisian food", "Paris", 0.0),
    ("the city of Paris", "Paris", 0.0),
    ("St. Louis, Missouri", "St. Louis", 1.0),
    ("St. Paul", "St. Louis", 0.5),
    ("U.S. Army", "U.S.", 1.0),
    ("New", "New York City", 1 / 3),
    ("", "Paris", 0.0),
    ("Paris", "...", 0.0),
])
def test_cloze_match_is_a_word_wise_prefix_after_normalisation(generated, answer, share):
    assert cloze_match(generated, answer) == pytest.approx(share)


def write_probe(tmp_path, kind: str, rows: list[dict], **extra) -> SuiteRef:
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "p", "version": 1, "kind": kind, "data": "items.jsonl"} | extra
    (tmp_path / "probe.yaml").write_text(json.dumps(spec))
    return SuiteRef(str(tmp_path / "probe.yaml"))


def test_cloze_items_need_no_distractors(tmp_path):
    ref = write_probe(tmp_path, "cloze", [{"prompt": "The capital of France is", "answer": "Paris"},
                                          {"prompt": "Two plus two is", "answer": "four", "distractors": ["five"]}])
    spec, items, digest = load_probe(ref, tmp_path)
    assert spec.kind == "cloze" and spec.model_kind == "causal"
    assert items == [ProbeItem("The capital of France is", "Paris", ()),
                     ProbeItem("Two plus two is", "four", ("five",))]
    assert len(digest) == 64


@pytest.mark.parametrize("kind, row, fragment", [
    ("multiple_choice", {"prompt": "p", "answer": "a"}, "item 2 has no 'distractors'"),
    ("multiple_choice", {"prompt": "p", "answer": "a", "distractors": []}, "'distractors' must be a non-empty list"),
    ("cloze", {"prompt": "p"}, "item 2 has no 'answer'"),
    ("cloze", {"prompt": "p", "answer": " ?! "}, "'answer' is empty after normalisation"),
    ("cloze", {"prompt": "p", "answer": "a", "distractors": "b"}, "'distractors' must be a non-empty list"),
])
def test_bad_items_name_file_and_line(tmp_path, kind, row, fragment):
    good = {"prompt": "q", "answer": "b", "distractors": ["c"]}
    ref = write_probe(tmp_path, kind, [good, row])
    with pytest.raises(DataError, match=fragment) as err:
        load_probe(ref, tmp_path)
    assert err.value.path.endswith("items.jsonl") and err.value.line == 2


def test_bias_suite_is_not_a_forgetting_probe():
    with pytest.raises(ConfigError, match="counterfactual bias suite"):
        load_probe(SuiteRef("intent_bias"), ROOT)


def test_bundled_probes_still_load():
    spec, items, _ = load_probe(SuiteRef("general_knowledge", max_items=5), ROOT)
    assert spec.kind == "multiple_choice" and len(items) == 5 and all(len(i.distractors) == 3 for i in items)


def test_forgetting_report_on_cloze_shows_the_generations():
    items = [ProbeItem("The capital of France is", "Paris", ()), ProbeItem("New York is in", "New York State", ()),
             ProbeItem("Two plus two is", "four", ())]
    before = ProbeScore([1, 1, 0], [1.0, 1.0, 0.0], outputs=["Paris.", "New York State", "five"])
    after = ProbeScore([0, 0, 1], [0.0, 2 / 3, 1.0], outputs=["Lyon", "New York City", "four"])
    report = forgetting_report(CLOZE, items, before, after, "h")
    assert report["kind"] == "cloze" and report["forgotten"] == 2 and report["gained"] == 1
    assert report["forgetting"]["value"] == pytest.approx(1 / 3)
    worst = report["most_forgotten"]
    assert [w["answer"] for w in worst] == ["Paris", "New York State"]  # the bigger drop first
    assert worst[0]["output_before"] == "Paris." and worst[0]["output_after"] == "Lyon"
    assert "before_norm" not in report


# --- paraphrase ranking (encoders) ----------------------------------------------------------------------------

PARA = ProbeSpec("para", "1", "paraphrase_ranking", "", "")


@pytest.fixture(scope="module")
def bert(tiny_bert):
    handle = resolve(str(tiny_bert))
    return load_model(handle), load_tokenizer(handle)


def naive_embedding(encoder, tok, text: str) -> torch.Tensor:
    """Mean of the last hidden state over the text's own tokens: one unpadded sequence, no batch, no mask. (hidden,)"""
    with torch.no_grad():
        hidden = encoder(input_ids=torch.tensor([tok(text)["input_ids"]])).last_hidden_state[0]  # (seq, hidden)
    return hidden.mean(0)


def naive_similarities(encoder, tok, item: ProbeItem) -> list[float]:
    """Cosine similarity of the anchor with the paraphrase, then with each distractor (unnormalised vectors)."""
    anchor = naive_embedding(encoder, tok, item.prompt)
    return [float(torch.nn.functional.cosine_similarity(anchor, naive_embedding(encoder, tok, t), dim=0))
            for t in (item.answer, *item.distractors)]


def test_paraphrase_ranking_equals_naive_cosine(bert):
    model, tok = bert
    _, bundled, _ = load_probe(SuiteRef("paraphrase_probe", max_items=5), ROOT)
    # texts of very different lengths share a batch (padding); one item has a single distractor
    items = [*bundled, ProbeItem("refund", "i want my money back for the order that never came",
                                 ("refund please",))]
    got = score_probe(PARA, items, model, tok)
    for i, item in enumerate(items):
        sims = naive_similarities(model, tok, item)
        assert got.correct[i] == int(sims[0] > max(sims[1:]))
        torch.testing.assert_close(got.margin[i], sims[0] - max(sims[1:]), rtol=0, atol=1e-5)
    assert got.correct_norm == [] and got.outputs == []


def test_paraphrase_ranking_the_preferred_text_is_correct_and_the_head_is_ignored(tiny_bert, bert):
    """The text the naive cosine ranks closest, as the paraphrase: correct; ranked last: wrong. Scored through a
    LoRA-wrapped classifier, the probe must read the encoder body (the new head changes nothing)."""
    from harness.config import RecipeConfig
    from tuners import load_all

    base, tok = bert
    anchors = ["my parcel never came", "i was charged twice for my subscription"]
    pool = ["where is my order", "the app crashes", "please refund me", "cancel my plan"]
    items = []
    for a in anchors:
        sims = naive_similarities(base, tok, ProbeItem(a, pool[0], tuple(pool[1:])))
        ranked = [t for _, t in sorted(zip(sims, pool), key=lambda st: -st[0])]
        items += [ProbeItem(a, ranked[0], tuple(ranked[1:])), ProbeItem(a, ranked[-1], tuple(ranked[:-1]))]
    wrapped = load_all().get("lora").prepare(load_model(resolve(str(tiny_bert)), head_labels=3), RecipeConfig(),
                                             "encoder")
    for model in (base, wrapped):
        got = score_probe(PARA, items, model, tok)
        assert got.correct == [1, 0] * len(anchors)
        assert all(m > 0 for m in got.margin[::2]) and all(m < 0 for m in got.margin[1::2])
