"""Each model kind reads its own input (issue 13): encoders the text itself (or a text pair), causal LMs the
instruction prompt through the chat template where the tokenizer has one."""
from __future__ import annotations

import json

import pytest

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.data.encode import prompt_ids, uses_chat
from harness.models.loading import load_tokenizer, resolve
from harness.scoring.tasks import predict, training_items
from tests.conftest import ROOT


def _bench(tmp_path, **extra):
    (tmp_path / "d.jsonl").write_text('{"text": "the parcel never arrived", "label": "shipping"}\n'
                                      '{"text": "refund my order", "label": "refund"}\n')
    spec = {"name": "t", "version": 1, "task": "classification", "labels": ["shipping", "refund"],
            "prompt": "Classify this support message.\nMessage: {input}\nIntent:",
            "fields": {"input": "text", "target": "label"}, "metrics": ["accuracy"],
            "splits": {"train": "d.jsonl", "test": "d.jsonl"}} | extra
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_encoder_trains_and_predicts_on_the_raw_text(tmp_path, tiny_bert):
    spec, splits = _bench(tmp_path)
    tok = load_tokenizer(resolve(str(tiny_bert)))
    items = training_items(spec, splits["train"].examples, tok, "encoder", 64)
    assert [it.input_ids for it in items] == [tok("the parcel never arrived")["input_ids"], tok("refund my order")["input_ids"]]
    assert "classify" not in tok.decode(items[0].input_ids)  # the instruction is what the causal LM reads, not this

    seen = []

    class Spy:
        def __call__(self, input_ids, attention_mask):
            import torch

            seen.extend(input_ids[i][attention_mask[i].bool()].tolist() for i in range(len(input_ids)))
            return type("Out", (), {"logits": torch.zeros(len(input_ids), 2)})()

    predict(spec, splits["test"].examples, Spy(), tok, "encoder", 64)
    assert seen == [it.input_ids for it in items]


def test_text_pair_goes_to_the_tokenizer_as_a_pair(tmp_path, tiny_bert):
    (tmp_path / "p.jsonl").write_text('{"p": "the parcel never arrived", "h": "refund my order", "label": "refund"}\n')
    spec, splits = _bench(tmp_path, prompt="{premise} / {hypothesis}", fields={"premise": "p", "hypothesis": "h",
                          "target": "label"}, splits={"train": "p.jsonl", "test": "p.jsonl"})
    tok = load_tokenizer(resolve(str(tiny_bert)))
    (item,) = training_items(spec, splits["train"].examples, tok, "encoder", 64)
    assert item.input_ids == tok("the parcel never arrived", "refund my order")["input_ids"]
    assert item.input_ids.count(tok.sep_token_id) == 2  # [CLS] a [SEP] b [SEP]


def test_causal_lm_reads_the_prompt(tmp_path, tiny_llama):
    spec, splits = _bench(tmp_path)
    tok = load_tokenizer(resolve(str(tiny_llama)))
    (first, _) = training_items(spec, splits["train"].examples, tok, "causal", 96)
    prompt = prompt_ids(tok, "Classify this support message.\nMessage: the parcel never arrived\nIntent:", uses_chat(tok))
    assert first.input_ids[:len(prompt)] == prompt
    assert first.labels[:len(prompt)] == [-100] * len(prompt)


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_bundled_benchmark_inputs_per_kind(kind):
    spec, splits = load_benchmark(SuiteRef("support_intents", max_train=3), ROOT)
    for ex in splits["train"].examples:
        text = ex.input_for(kind)
        assert (text == ex.raw["text"]) == (kind == "encoder")
        assert ex.raw["text"] in text


def test_validate_examples_shows_what_each_candidate_reads(tiny_config, capsys):
    from harness.cli import main

    code = main(["validate", str(tiny_config), "--examples", "2"])
    captured = capsys.readouterr()
    assert code == 0 and "0 errors" in captured.err
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert {(r["candidate"], r["split"]) for r in rows} == {(c, s) for c in ("tiny-llama", "tiny-bert")
                                                              for s in ("train", "validation", "test", "shifted")}
    assert len(rows) == 2 * 4 * 2
    first = {r["candidate"]: r for r in rows if r["split"] == "train" and r["line"] == 1}
    raw = json.loads((ROOT / "benchmarks/support_intents/train.jsonl").read_text().splitlines()[0])
    assert first["tiny-bert"] == {"benchmark": "support_intents", "split": "train", "line": 1, "kind": "encoder",
                                  "candidate": "tiny-bert", "input": raw["text"], "target": raw["label"]}
    llama = first["tiny-llama"]
    assert llama["kind"] == "causal" and llama["input"].startswith("Classify the intent")
    assert llama["input"].endswith(f"Message: {raw['text']}\nIntent:") and llama["target"] == raw["label"]


def test_validate_examples_applies_the_chat_template(tiny_config, tiny_llama, tmp_path, capsys):
    import shutil

    from harness.cli import main

    chat = tmp_path / "chat-llama"
    shutil.copytree(tiny_llama, chat)
    settings = json.loads((chat / "tokenizer_config.json").read_text())
    settings["chat_template"] = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    (chat / "tokenizer_config.json").write_text(json.dumps(settings))
    code = main(["validate", str(tiny_config), "--examples", "1", f"candidates=[{{model: '{chat}', name: c}}]"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and rows[0]["input"].startswith("<|user|>Classify the intent")
    assert rows[0]["input"].endswith("Intent:\n<|assistant|>")
