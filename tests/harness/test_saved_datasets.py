"""Data in the shapes people have (issue 17): a folder saved by Hugging Face `datasets` (`save_to_disk`) as a split
source, read with pyarrow (datasets itself is an optional extra), its content in the data hash; and a hub dataset,
which offline (as in these tests) is one error line naming the benchmark, the key and the cause, exit 2."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from harness.config import SuiteRef
from harness.data.specs import load_benchmark
from harness.errors import ConfigError, DataError

ROWS = [{"sentence": "a lovely film", "label": 1}, {"sentence": "dull and long", "label": 0},
        {"sentence": "I laughed a lot", "label": 1}]


def save_to_disk(folder, shards):
    """A folder as `Dataset.save_to_disk` writes it: Arrow stream shards with the features in the schema
    metadata, state.json naming the shards in order, dataset_info.json."""
    folder.mkdir(parents=True)
    features = {"sentence": {"dtype": "string", "_type": "Value"},
                "label": {"names": ["negative", "positive"], "_type": "ClassLabel"}}
    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for name, rows in zip(names, shards):
        table = pa.Table.from_pylist(rows).replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features}})})
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": n} for n in names], "_fingerprint": "0123456789abcdef", "_format_columns": None,
        "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}, indent=2))
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": features,
                                                          "homepage": "", "license": ""}, indent=2))
    return folder


def _bench(tmp_path, splits):
    spec = {"name": "t", "version": 1, "task": "classification", "labels": ["negative", "positive"],
            "prompt": "Review: {input}\nSentiment:", "fields": {"input": "sentence", "target": "label"},
            "metrics": ["accuracy"], "splits": splits}
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)


def test_a_saved_dataset_folder_is_a_split(tmp_path):
    save_to_disk(tmp_path / "sst2_train", [ROWS[:2], ROWS[2:]])  # two shards, read in state.json's order
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    _, splits = _bench(tmp_path, {"train": "sst2_train", "test": "test.jsonl",
                                  "validation": {"from": "train", "fraction": 0.34}})
    train, validation = splits["train"].examples, splits["validation"].examples
    assert sorted(ex.raw["sentence"] for ex in train + validation) == sorted(r["sentence"] for r in ROWS)
    assert {ex.raw["sentence"]: ex.target for ex in train + validation} == {
        "a lovely film": "positive", "dull and long": "negative", "I laughed a lot": "positive"}  # integer labels
    first = splits["train"].sha256
    save_to_disk(tmp_path / "changed", [ROWS[:2], [ROWS[2] | {"sentence": "I laughed a little"}]])
    _, changed = _bench(tmp_path, {"train": "changed", "test": "test.jsonl",
                                   "validation": {"from": "train", "fraction": 0.34}})
    assert changed["train"].sha256 != first  # the hash is of the content
    assert _bench(tmp_path, {"train": "sst2_train", "test": "test.jsonl", "validation": {
        "from": "train", "fraction": 0.34}})[1]["train"].sha256 == first


def test_folders_that_are_not_a_saved_split_say_what_they_are(tmp_path):
    (tmp_path / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not one saved by datasets' save_to_disk"):
        _bench(tmp_path, {"train": "plain", "test": "test.jsonl"})
    save_to_disk(tmp_path / "dict" / "train", [ROWS])
    save_to_disk(tmp_path / "dict" / "test", [ROWS])
    (tmp_path / "dict" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    with pytest.raises(DataError, match=r"a saved DatasetDict: name one of its splits' folders \(test, train\)"):
        _bench(tmp_path, {"train": "dict", "test": "test.jsonl"})
    _, splits = _bench(tmp_path, {"train": "dict/train", "test": "dict/test"})
    assert len(splits["test"].examples) == 3


def test_a_folder_written_by_datasets_itself(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional datasets extra is not installed (make install "
                                   "leaves it out: it is heavy); the pyarrow-written folders above cover the format")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    # built from its Arrow table with a fingerprint: Dataset.from_list fails with datasets 5.2.0 and pyarrow 26.0.1
    # (dill cannot pickle pyarrow's MonthDayNano while fingerprinting the call)
    table = datasets.table.InMemoryTable(pa.Table.from_pylist(ROWS))
    saved = datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint="rows")
    saved.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    (tmp_path / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    _, splits = _bench(tmp_path, {"train": "saved", "test": "test.jsonl"})
    assert [ex.raw["sentence"] for ex in splits["train"].examples] == [r["sentence"] for r in ROWS]
    assert [ex.target for ex in splits["train"].examples] == ["positive", "negative", "positive"]


def test_a_hub_dataset_offline_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    splits = {"train": {"dataset": {"path": "nyu-mll/glue", "name": "sst2", "split": "train"}}, "test": "test.jsonl"}
    with pytest.raises(ConfigError) as err:
        _bench(tmp_path, splits)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "benchmark.yaml"))
    assert "benchmark 't' splits.train.dataset: cannot read hub dataset 'nyu-mll/glue' (sst2) split train" in message
    assert "offline" in message
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(json.dumps({"name": "h", "candidates": ["smollm2-135m"],
                               "benchmarks": [str(tmp_path / "benchmark.yaml")]}))
    assert main(["validate", str(cfg)]) == 2
    captured = capsys.readouterr()
    (line,) = [line for line in (captured.out + captured.err).splitlines() if "splits.train.dataset" in line]
    assert line == f"{tmp_path / 'benchmark.yaml'}: error: {err.value.message}"
    with pytest.raises(ConfigError, match="splits.train.dataset: unknown key 'subset'"):
        _bench(tmp_path, {"train": {"dataset": {"path": "glue", "subset": "sst2"}}, "test": "test.jsonl"})
