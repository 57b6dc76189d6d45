"""What stands around a row's prompt (issue 17): several input fields, a system prompt, few-shot examples drawn from
train, and chat-format data whose loss falls on the assistant turns only; each as training, scoring and `validate
--examples` see it, for causal LMs with and without a chat template (and encoders, for the text pair)."""
from __future__ import annotations

import json

import pytest

from harness.config import SuiteRef
from harness.data.encode import prompt_ids, prompt_text
from harness.data.specs import load_benchmark
from harness.errors import ConfigError, DataError
from harness.execution.keys import spec_id
from harness.scoring.tasks import training_items
from tests.conftest import _tokenizer

CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
NO_SYSTEM = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
             + CHAT)
ROWS = [("the parcel never arrived", "shipping"), ("refund my order", "refund"), ("where is my box", "shipping"),
        ("money back please", "refund"), ("package is late", "shipping"), ("return and refund", "refund")]


@pytest.fixture(scope="module")
def tokenizers():
    plain, chat, no_system = _tokenizer("causal"), _tokenizer("causal"), _tokenizer("causal")
    chat.chat_template, no_system.chat_template = CHAT, NO_SYSTEM
    return plain, chat, no_system


def _bench(tmp_path, rows=None, **extra):
    lines = rows if rows is not None else [{"text": t, "label": lab} for t, lab in ROWS]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    spec = {"name": "t", "version": 1, "task": "classification", "labels": ["shipping", "refund"],
            "prompt": "Message: {input}\nIntent:", "fields": {"input": "text", "target": "label"},
            "metrics": ["accuracy"], "splits": {"train": "d.jsonl", "test": "d.jsonl"}} | extra
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_several_fields_reach_a_causal_lm_in_the_prompt_and_an_encoder_as_a_pair(tmp_path, tokenizers):
    plain, chat, _ = tokenizers
    rows = [{"c": "Parcels ship on Monday.", "q": "When do parcels ship?", "a": "Monday"}]
    spec, splits = _bench(tmp_path, rows, task="generation", labels=None, metrics=["exact_match"],
                          prompt="Context: {context}\nQuestion: {question}\nAnswer:",
                          fields={"context": "c", "question": "q", "target": "a"})
    (ex,) = splits["test"].examples
    assert ex.prompt == "Context: Parcels ship on Monday.\nQuestion: When do parcels ship?\nAnswer:"
    assert ex.encoder_text == ("Parcels ship on Monday.", "When do parcels ship?")
    assert prompt_text(chat, ex, True) == f"<|user|>{ex.prompt}\n<|assistant|>"
    (item,) = training_items(spec, splits["train"].examples, plain, "causal", 96)
    assert item.input_ids[:len(prompt_ids(plain, ex.prompt, False))] == prompt_ids(plain, ex.prompt, False)
    assert plain.decode([t for t in item.labels if t != -100], skip_special_tokens=True) == " Monday"


def test_system_prompt_goes_through_the_chat_template_or_before_the_text(tmp_path, tokenizers):
    plain, chat, no_system = tokenizers
    spec, splits = _bench(tmp_path, system="You route support tickets.")
    ex = splits["train"].examples[0]
    query = "Message: the parcel never arrived\nIntent:"
    assert prompt_text(chat, ex, True) == f"<|system|>You route support tickets.\n<|user|>{query}\n<|assistant|>"
    assert prompt_text(plain, ex, False) == f"You route support tickets.\n\n{query}"
    # a template that refuses a system turn gets it at the head of the user turn
    assert prompt_text(no_system, ex, True) == f"<|user|>You route support tickets.\n\n{query}\n<|assistant|>"
    plain_spec, _ = _bench(tmp_path)
    assert "system" not in plain_spec.key_fields()  # specs without one keep their unit keys
    assert spec_id(spec) != spec_id(plain_spec)


def test_few_shot_draws_from_train_with_a_fixed_seed_never_the_item_itself(tmp_path, tokenizers):
    _, chat, _ = tokenizers
    spec, splits = _bench(tmp_path, few_shot=2)
    train, test = splits["train"].examples, splits["test"].examples
    assert [ex.prompt for ex in train] == [f"Message: {t}\nIntent:" for t, _ in ROWS]  # train is tuned without shots
    shot_texts = {f"Message: {t}\nIntent: {lab}" for t, lab in ROWS}
    for ex, (text, _) in zip(test, ROWS):
        *shots, query = ex.prompt.split("\n\n")
        assert query == f"Message: {text}\nIntent:" and len(shots) == 2 and set(shots) <= shot_texts
        assert not any(s.startswith(query) for s in shots)  # the same file is train and test: the item is left out
        assert [role for role, _ in ex.turns] == ["user", "assistant", "user", "assistant", "user"]
        assert ex.encoder_text == text  # an encoder reads the row only
    assert prompt_text(chat, test[0], True).count("<|assistant|>") == 3
    again = _bench(tmp_path, few_shot=2)[1]["test"]
    assert [ex.prompt for ex in again.examples] == [ex.prompt for ex in test]
    other = _bench(tmp_path, few_shot=2, few_shot_seed=1)[1]["test"]
    assert [ex.prompt for ex in other.examples] != [ex.prompt for ex in test]
    hashes = {s.sha256 for s in (splits["test"], again, other, _bench(tmp_path)[1]["test"])}
    assert len(hashes) == 3  # the shots and their seed are in the data hash
    with pytest.raises(ConfigError, match="few_shot"):
        _bench(tmp_path, few_shot=-1)


def _chat_spec(tmp_path, rows, **extra):
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "c", "version": 1, "task": "generation", "fields": {"messages": "messages"},
            "metrics": ["exact_match"], "splits": {"train": "chat.jsonl", "test": "chat.jsonl"}} | extra
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say It ships Monday."},
                {"role": "assistant", "content": "It ships Monday."}, {"role": "user", "content": "and my refund"},
                {"role": "assistant", "content": "Refunds take five days."}]


@pytest.mark.parametrize("which", ["chat", "plain"])
def test_chat_data_learns_every_assistant_turn_and_nothing_else(tmp_path, tokenizers, which):
    plain, chat, _ = tokenizers
    tok = chat if which == "chat" else plain
    spec, splits = _chat_spec(tmp_path, [{"messages": CONVERSATION}])
    (ex,) = splits["test"].examples
    assert ex.target == "Refunds take five days." and ex.references == ("Refunds take five days.",)
    (item,) = training_items(spec, splits["train"].examples, tok, "causal", 256)
    runs, current = [], []  # the maximal runs of learned tokens, in order
    for token, label in zip(item.input_ids, item.labels):
        if label == -100:
            runs, current = (runs + [current] if current else runs), []
        else:
            assert label == token
            current.append(token)
    runs += [current] if current else []
    decoded = [tok.decode(r) for r in runs]
    first = item.labels.index(runs[0][0])  # the assistant's words, not the user's quote of them just before
    assert tok.decode(item.input_ids[:first]).endswith("<|assistant|>" if which == "chat" else "assistant: ")
    assert decoded == ["It ships Monday.", ("" if which == "chat" else " ") + "Refunds take five days.</s>"]
    # scoring reads the conversation up to the last assistant turn, which it then has to produce
    text = prompt_text(tok, ex, which == "chat")
    assert text.count("It ships Monday.") == 2 and "Refunds take five days." not in text
    assert text.endswith("<|assistant|>" if which == "chat" else "assistant:")


def test_chat_data_errors_are_one_line(tmp_path):
    bad = [{"messages": [{"role": "user", "content": "hello"}]}]
    with pytest.raises(DataError, match="must end with an assistant turn") as err:
        _chat_spec(tmp_path, bad)
    assert str(tmp_path / "chat.jsonl") in str(err.value) and ":1:" in str(err.value)
    with pytest.raises(DataError, match=r"messages\[0\] must be"):
        _chat_spec(tmp_path, [{"messages": [{"role": "bot", "content": "x"}]}])
    with pytest.raises(ConfigError, match="does not apply to chat data"):
        _chat_spec(tmp_path, [{"messages": CONVERSATION}], prompt="{input}")
    with pytest.raises(ConfigError, match="task: generation"):
        _chat_spec(tmp_path, [{"messages": CONVERSATION}], task="classification", labels=["a", "b"])


def test_validate_examples_shows_system_shots_and_chat_data_as_the_model_reads_them(tmp_path, tiny_llama, capsys):
    import shutil

    from harness.cli import main

    model = tmp_path / "chat-llama"
    shutil.copytree(tiny_llama, model)
    settings = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps(settings | {"chat_template": CHAT}))
    (tmp_path / "intents").mkdir()
    (tmp_path / "chat").mkdir()
    _bench(tmp_path / "intents", system="You route support tickets.", few_shot=1)
    _chat_spec(tmp_path / "chat", [{"messages": CONVERSATION}])
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(json.dumps({"name": "p", "candidates": [{"model": str(model), "name": "c"}],
                               "benchmarks": [str(tmp_path / "intents" / "benchmark.yaml"),
                                              str(tmp_path / "chat" / "benchmark.yaml")]}))
    code = main(["validate", str(cfg), "--examples", "1"])
    rows = {(r["benchmark"], r["split"]): r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert code == 0
    shot, = [f"Message: {t}\nIntent: {lab}" for t, lab in ROWS[1:] if f"<|user|>Message: {t}\n" in
             rows["t", "test"]["input"]]
    assert rows["t", "test"]["input"] == (f"<|system|>You route support tickets.\n<|user|>{shot.rsplit(' ', 1)[0]}\n"
                                          f"<|assistant|>{shot.rsplit(' ', 1)[1]}\n<|user|>Message: the parcel never "
                                          "arrived\nIntent:\n<|assistant|>")
    assert rows["t", "train"]["input"].startswith("<|system|>You route support tickets.\n<|user|>Message: the parcel")
    assert rows["c", "test"] == {"benchmark": "c", "split": "test", "line": 1, "kind": "causal", "candidate": "c",
                                 "input": "<|system|>Be brief.\n<|user|>say It ships Monday.\n<|assistant|>It ships "
                                          "Monday.\n<|user|>and my refund\n<|assistant|>",
                                 "target": "Refunds take five days."}
