from __future__ import annotations

import json
import re

import pytest

from harness.config import SuiteRef
from harness.data.rows import read_rows
from harness.data.specs import load_benchmark, load_benchmark_spec
from harness.errors import ConfigError, DataError
from tests.conftest import ROOT, shared_data


def test_bundled_intents_benchmark_meets_its_size_contract():
    spec, splits = load_benchmark(SuiteRef("support_intents"), ROOT)
    assert spec.task == "classification" and len(spec.labels) >= 6
    sizes = {s: len(sp.examples) for s, sp in splits.items()}
    assert sizes["train"] >= 400 and sizes["validation"] >= 100 and sizes["test"] >= 200 and sizes["shifted"] >= 150
    assert all(ex.prompt.endswith("Intent:") for ex in splits["test"].examples)
    texts = {s: {ex.raw["text"].lower().strip() for ex in sp.examples} for s, sp in splits.items()}
    assert not texts["train"] & texts["test"], "train/test leakage"


def test_caps_change_the_data_hash():
    _, full = load_benchmark(SuiteRef("support_intents"), ROOT)
    _, capped = load_benchmark(SuiteRef("support_intents", max_train=10), ROOT)
    assert len(capped["train"].examples) == 10
    assert capped["train"].sha256 != full["train"].sha256
    assert capped["test"].sha256 == full["test"].sha256


def spec_dir(tmp_path, rows_text, **extra):
    (tmp_path / "train.jsonl").write_text(rows_text)
    (tmp_path / "test.jsonl").write_text(rows_text)
    spec = {"name": "t", "version": 1, "task": "classification", "prompt": "{input}", "labels": ["a", "b"],
            "fields": {"input": "text", "target": "label"}, "metrics": ["accuracy"],
            "splits": {"train": "train.jsonl", "test": "test.jsonl"}} | extra
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return tmp_path / "benchmark.yaml"


def test_bad_json_line_is_named(tmp_path):
    path = spec_dir(tmp_path, '{"text": "x", "label": "a"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"train\.jsonl:2: invalid JSON"):
        load_benchmark(SuiteRef(str(path)), tmp_path)


def test_missing_column_and_unknown_label(tmp_path):
    path = spec_dir(tmp_path, '{"txt": "x", "label": "a"}\n')
    with pytest.raises(DataError, match="no column 'text'"):
        load_benchmark(SuiteRef(str(path)), tmp_path)
    path = spec_dir(tmp_path, '{"text": "x", "label": "c"}\n')
    with pytest.raises(DataError, match="label 'c' is not among the declared labels"):
        load_benchmark(SuiteRef(str(path)), tmp_path)


def test_empty_split_and_non_utf8(tmp_path):
    path = spec_dir(tmp_path, "\n")
    with pytest.raises(DataError, match="split 'train' is empty"):
        load_benchmark(SuiteRef(str(path)), tmp_path)
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "\xff\xfe", "label": "a"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not UTF-8"):
        read_rows(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("extra, fragment", [
    ({"task": "regression"}, "unknown task kind"),
    ({"metrics": ["acuracy"]}, "unknown metric 'acuracy'"),
    ({"prompt": "no slot"}, "prompt must contain {input}"),
    ({"splits": {"train": "train.jsonl"}}, "missing split 'test'"),
    ({"labels": ["a"]}, "at least two labels"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_bad_specs(tmp_path, extra, fragment):
    path = spec_dir(tmp_path, '{"text": "x", "label": "a"}\n', **extra)
    with pytest.raises(ConfigError, match=fragment) as err:
        load_benchmark_spec(str(path), tmp_path)
    assert str(path) in str(err.value)


def test_headerless_tsv_with_columns(tmp_path):
    agnews = shared_data("agnews", "test.tsv")
    rows = read_rows(agnews, ("text", "label"))
    assert len(rows) == 7600 and {r["label"] for r in rows} == {"Business", "Sports", "Sci/Tech", "World"}


def test_sst2_tsv_with_header():
    rows = read_rows(shared_data("sst2", "dev.tsv"))
    assert len(rows) == 872 and set(rows[0]) == {"sentence", "label"}


def test_each_kind_reads_its_own_input(tmp_path):
    """The causal LM reads the instruction prompt; the encoder reads the text itself (issue 13)."""
    rows = '{"text": "great film", "label": "a"}\n{"text": "dull film", "label": "b"}\n'
    spec, splits = load_benchmark(SuiteRef(str(spec_dir(tmp_path, rows, prompt="Is this positive?\nReview: {input}\n"
                                                                                "Sentiment:"))), tmp_path)
    ex = splits["train"].examples[0]
    assert ex.prompt == "Is this positive?\nReview: great film\nSentiment:" == ex.input_for("causal")
    assert ex.encoder_text == "great film" == ex.input_for("encoder")
    assert spec.encoder_input == ("{input}",)


def test_two_input_fields_go_to_the_encoder_as_a_pair(tmp_path):
    rows = '{"p": "A man sleeps.", "h": "A person rests.", "label": "a"}\n'
    path = spec_dir(tmp_path, rows, prompt="Premise: {premise}\nHypothesis: {hypothesis}\nAnswer:",
                    fields={"premise": "p", "hypothesis": "h", "target": "label"})
    spec, splits = load_benchmark(SuiteRef(str(path)), tmp_path)
    ex = splits["test"].examples[0]
    assert ex.encoder_text == ("A man sleeps.", "A person rests.")
    assert ex.prompt == "Premise: A man sleeps.\nHypothesis: A person rests.\nAnswer:"
    assert spec.input_field == "p"


def test_encoder_input_template_and_placeholders_checked(tmp_path):
    rows = '{"text": "x {input} y", "label": "a"}\n'
    spec, splits = load_benchmark(SuiteRef(str(spec_dir(tmp_path, rows, encoder_input="Review: {input}"))), tmp_path)
    assert splits["train"].examples[0].encoder_text == "Review: x {input} y"  # a value is never re-substituted
    for extra, message in (({"encoder_input": "{other}"}, "encoder_input uses {other}"),
                           ({"prompt": "{input} {label}"}, "prompt uses {label}"),
                           ({"encoder_input": ["{input}", "{input}", "{input}"]}, "a list of two")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_benchmark(SuiteRef(str(spec_dir(tmp_path, rows, **extra))), tmp_path)
