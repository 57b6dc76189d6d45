"""How a causal LM is asked a benchmark's questions: through its chat template when it has one (training items,
label scoring, generation and reference losses alike), and classification by the log-likelihood of each label's
text followed by EOS, so a label that is a prefix of another ("account" / "account access") does not win by
default."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import harness.scoring.generation
import harness.scoring.lm
import harness.scoring.ranking
from harness.config import RecipeConfig, SuiteRef
from harness.data.specs import load_benchmark
from harness.models.loading import load_model, load_tokenizer, resolve
from harness.scoring.tasks import applicable, predict, reference_losses, training_items
from harness.training.loop import fit
from tests.conftest import ROOT
from tests.harness.test_encode import CHAT
from tests.harness.test_probes import naive_logprob
from tuners import load_all


@pytest.fixture(scope="module")
def chat_llama(tiny_llama, tmp_path_factory):
    """The tiny Llama with a chat template saved beside it, loaded the way a run loads it."""
    folder = tmp_path_factory.mktemp("chat-llama") / "model"
    shutil.copytree(tiny_llama, folder)
    handle = resolve(str(folder))
    tok = load_tokenizer(handle)
    tok.chat_template = CHAT
    tok.save_pretrained(folder)
    handle = resolve(str(folder))
    return load_model(handle), load_tokenizer(handle)


def chat_ids(tok, prompt: str) -> list[int]:
    return tok(f"<|user|>{prompt}\n<|assistant|>", add_special_tokens=False)["input_ids"]


def answer_ids(tok, answer: str) -> list[int]:
    return [*tok(answer, add_special_tokens=False)["input_ids"], tok.eos_token_id]


def test_a_chat_template_reaches_training_scoring_and_generation(chat_llama, monkeypatch):
    model, tok = chat_llama
    assert tok.chat_template == CHAT  # saved and loaded back with the model
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=3, max_test=3), ROOT)
    examples = splits["test"].examples
    for ex, item in zip(splits["train"].examples, training_items(spec, splits["train"].examples, tok, "causal", 256)):
        prompt, answer = chat_ids(tok, ex.prompt), answer_ids(tok, spec.labels[ex.target])
        assert item.input_ids == prompt + answer and item.labels == [-100] * len(prompt) + answer

    seen: list[tuple[list[list[int]], list[list[int]]]] = []

    def record(model, pad_id, contexts, continuations, *args, **kwargs):
        seen.append(([list(c) for c in contexts], [list(c) for c in continuations]))
        return [(float(-len(c)), len(c)) for c in continuations]

    monkeypatch.setattr(harness.scoring.lm, "continuation_logprobs", record)
    monkeypatch.setattr(harness.scoring.ranking, "best_continuations", record)  # a classifier's labels
    predict(spec, examples, model, tok, "causal", 256)
    contexts, conts = seen.pop()
    labels = [answer_ids(tok, text) for text in spec.labels.values()]
    assert contexts == [chat_ids(tok, ex.prompt) for ex in examples for _ in labels]
    assert conts == labels * len(examples)

    summaries, gen_splits = load_benchmark(SuiteRef("ticket_summaries", max_test=2), ROOT)
    reference_losses(summaries, gen_splits["test"].examples, model, tok, 4096)  # long enough for every ticket
    contexts, conts = seen.pop()
    assert contexts == [chat_ids(tok, ex.prompt) for ex in gen_splits["test"].examples]
    assert conts == [answer_ids(tok, ex.references[0]) for ex in gen_splits["test"].examples]

    prompts = []
    monkeypatch.setattr(harness.scoring.generation, "generate",
                        lambda m, t, p, *a, **k: prompts.extend(p) or ["x"] * len(p))
    predict(summaries, gen_splits["test"].examples, model, tok, "causal", 4096)
    assert prompts == [chat_ids(tok, ex.prompt) for ex in gen_splits["test"].examples]


def prefix_benchmark(tmp_path) -> SuiteRef:
    """Two labels whose texts are prefixes of one another; every train row is the longer one."""
    texts = [json.loads(line)["text"] for line in (ROOT / "benchmarks" / "support_intents" / "train.jsonl")
             .read_text().splitlines()[:24]]
    rows = [{"text": t, "label": "account_access"} for t in texts]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    (tmp_path / "benchmark.yaml").write_text(json.dumps({
        "name": "prefix", "version": 1, "task": "classification", "prompt": "Ticket: {input}\nIntent:",
        "labels": {"account": "account", "account_access": "account access"},
        "fields": {"input": "text", "target": "label"}, "metrics": ["accuracy"],
        "splits": {"train": "train.jsonl", "test": "test.jsonl"}}))
    return SuiteRef(str(tmp_path / "benchmark.yaml"))


def test_a_label_that_is_a_prefix_of_another_does_not_win_by_default(tiny_llama, tmp_path):
    handle = resolve(str(tiny_llama))
    tok = load_tokenizer(handle)
    spec, splits = load_benchmark(prefix_benchmark(tmp_path), tmp_path)
    short, long = (tok(" " + spec.labels[k], add_special_tokens=False)["input_ids"] for k in spec.labels)
    assert long[: len(short)] == short and len(long) > len(short)  # the premise: the short label's tokens start the long one
    torch.manual_seed(0)
    recipe = RecipeConfig(tuner="full", epochs=4, batch_size=2, bf16="off", max_length=96)
    model = load_all().get("full").prepare(load_model(handle), recipe, "causal")
    fit(model, training_items(spec, splits["train"].examples, tok, "causal", 96), [], recipe, 1e-2, tok.pad_token_id)
    model.eval()
    preds, _ = predict(spec, splits["test"].examples, model, tok, "causal", 96)
    for ex, pred in zip(splits["test"].examples, preds):
        ctx = tok(ex.prompt)["input_ids"]
        with_eos = {k: naive_logprob(model, ctx, ids + [tok.eos_token_id]) for k, ids in (("account", short),
                                                                                         ("account_access", long))}
        without = {"account": naive_logprob(model, ctx, short), "account_access": naive_logprob(model, ctx, long)}
        assert pred == max(with_eos, key=with_eos.get)
        assert without["account"] > without["account_access"]  # without EOS the prefix always wins
    assert preds.count("account_access") >= len(preds) // 2, preds  # trained on the long label: EOS lets it win


def test_an_encoder_cannot_be_asked_to_generate():
    summaries, _ = load_benchmark(SuiteRef("ticket_summaries", max_test=1), ROOT)
    intents, _ = load_benchmark(SuiteRef("support_intents", max_test=1), ROOT)
    assert applicable(summaries, "encoder") == "an encoder-only model cannot generate text"
    assert applicable(summaries, "causal") == applicable(intents, "encoder") == applicable(intents, "causal") == ""



@pytest.mark.parametrize("chat", [False, True])
def test_the_validation_loss_comes_from_the_metrics_scoring_pass(tiny_llama, chat_llama, chat):
    """A causal classifier's validation pass scores every label's text + EOS after the prompt, the gold label's among
    them, which is exactly a validation row's learned tokens: validation_answers returns the rows' mean answer-token
    loss from that pass, equal to the training loop's own validation loss (fp32), and the same predictions as
    predict. Rows that are not their gold label's scoring pair (truncated differently, an encoder) get None: the
    loop then computes the loss itself."""
    from harness.models.device import resolve as placement
    from harness.scoring.tasks import validation_answers
    from harness.training.loop import evaluate_loss

    model, tok = chat_llama if chat else (load_model(resolve(str(tiny_llama))), load_tokenizer(resolve(str(tiny_llama))))
    spec, splits = load_benchmark(SuiteRef("support_intents", max_validation=12), ROOT)
    examples = splits["validation"].examples
    rows = training_items(spec, examples, tok, "causal", 256)
    model.eval()
    preds, loss = validation_answers(spec, examples, model, tok, "causal", 256, rows)
    want = evaluate_loss(model, rows, tok.pad_token_id, 4, placement("cpu", "off"))
    assert loss is not None and loss == pytest.approx(want, rel=1e-5)
    assert preds == predict(spec, examples, model, tok, "causal", 256)[0]
    short = training_items(spec, examples, tok, "causal", 12)  # prompts cut to another length than scored
    assert validation_answers(spec, examples, model, tok, "causal", 256, short)[1] is None
    assert validation_answers(spec, examples, model, tok, "causal", 256, rows[::-1])[1] is None
