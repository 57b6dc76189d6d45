"""Data files read exactly (issue 17): the bytes Excel, pandas and Python's csv module write, JSONL with U+2028,
Parquet, integer labels, splits carved from train, and the data hashes that key kept units."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys

import pytest

from harness.config import SuiteRef
from harness.data.files import quoted_tsv, read_table
from harness.data.rows import read_rows
from harness.data.specs import load_benchmark, load_benchmark_spec, load_split
from harness.errors import EXIT_USAGE, ConfigError, DataError
from tests.conftest import ROOT, TINY_EXIT

# Excel's "CSV UTF-8": a BOM, CRLF rows, and a cell typed with Alt+Enter holding a bare LF inside its quotes
EXCEL = b'\xef\xbb\xbftext,label\r\n"awful\nreally bad",negative\r\ngreat,positive\r\n'
# DataFrame({"text": ["awful\nreally bad", 'say "hi"\tthere', "fine"], "label": [0, 1, 1]}).to_csv(index=False) and
# .to_csv(index=False, sep="\t"), written by pandas 3.1.1 (pandas is not installed in the project's environment; the
# bytes were taken from a scratch one, and test_pandas_writes_these_bytes checks them wherever pandas is present)
PANDAS_CSV = b'text,label\n"awful\nreally bad",0\n"say ""hi""\tthere",1\nfine,1\n'
PANDAS_TSV = b'text\tlabel\n"awful\nreally bad"\t0\n"say ""hi""\tthere"\t1\nfine\t1\n'
TEXTS = ["awful\nreally bad", 'say "hi"\tthere', "fine"]


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_excel_csv_bom_crlf_and_multiline_cell(tmp_path):
    rows = read_table(write(tmp_path, "x.csv", EXCEL)).rows
    assert rows == [(2, {"text": "awful\nreally bad", "label": "negative"}),
                    (4, {"text": "great", "label": "positive"})]


@pytest.mark.parametrize("name, data", [("p.csv", PANDAS_CSV), ("p.tsv", PANDAS_TSV)])
def test_pandas_csv_and_tsv(tmp_path, name, data):
    rows = read_table(write(tmp_path, name, data)).rows
    assert [r["text"] for _, r in rows] == TEXTS and [line for line, _ in rows] == [2, 4, 5]
    assert [r["label"] for _, r in rows] == ["0", "1", "1"]


def test_pandas_writes_these_bytes():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": TEXTS, "label": [0, 1, 1]})
    assert frame.to_csv(index=False).encode() == PANDAS_CSV
    assert frame.to_csv(index=False, sep="\t").encode() == PANDAS_TSV


@pytest.mark.parametrize("delimiter, name", [(",", "w.csv"), ("\t", "w.tsv")])
@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
def test_python_csv_module(tmp_path, delimiter, name, quoting):
    path = tmp_path / name
    with path.open("w", newline="", encoding="utf-8") as f:  # the csv module's own "\r\n" rows
        writer = csv.writer(f, delimiter=delimiter, quoting=quoting)
        writer.writerows([["text", "label"], *[[t, "a"] for t in TEXTS], ["plain", "b"]])
    assert b"\r\n" in path.read_bytes()
    assert [r["text"] for r in read_rows(path)] == [*TEXTS, "plain"]


def test_plain_tsv_keeps_its_quotes_and_quoting_overrides(tmp_path):
    """SST-2 style: a quote is a character. A field that merely starts and ends with one is no sign of quoting."""
    plain = b'sentence\tlabel\n"quoted" start and more\t1\n"whole"\t0\nit\'s "fine"\t1\n'
    path = write(tmp_path, "plain.tsv", plain)
    assert not quoted_tsv(plain.decode())
    assert [r["sentence"] for r in read_rows(path)] == ['"quoted" start and more', '"whole"', 'it\'s "fine"']
    assert [r["sentence"] for _, r in read_table(path, quoting="minimal").rows][1] == "whole"
    with pytest.raises(DataError, match=r"p\.tsv:2: expected 2 columns, found 1"):  # a pandas TSV read raw
        read_table(write(tmp_path, "p.tsv", PANDAS_TSV), quoting="none")


def test_jsonl_line_separator_inside_a_string(tmp_path):
    text = "a\u2028b\u2029c\x85d"
    data = (json.dumps({"text": text, "label": "a"}, ensure_ascii=False) + "\r\n" + '{"text": "e", "label": "b"}\n')
    path = write(tmp_path, "x.jsonl", b"\xef\xbb\xbf" + data.encode())
    assert "\u2028".join(["x", "y"]).splitlines() == ["x", "y"]  # the bug: splitlines() breaks such a line in two
    assert read_table(path).rows == [(1, {"text": text, "label": "a"}), (2, {"text": "e", "label": "b"})]


def test_parquet_round_trip(tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"text": TEXTS, "label": [0, 1, 1]}), path)
    assert read_rows(path) == [{"text": t, "label": n} for t, n in zip(TEXTS, [0, 1, 1])]
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read Parquet: "):
        read_rows(write(tmp_path, "bad.parquet", b"not parquet"))


def test_parquet_without_pyarrow_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as if pyarrow were not installed
    with pytest.raises(DataError) as err:
        read_rows(write(tmp_path, "x.parquet", b"PAR1"))
    assert str(err.value) == f"{tmp_path / 'x.parquet'}: reading Parquet needs pyarrow (a dependency of sftbench): " \
                             "pip install pyarrow"
    assert err.value.exit_code == EXIT_USAGE


def test_bad_rows_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"x\.csv:3: expected 2 columns, found 3$"):
        read_rows(write(tmp_path, "x.csv", b"text,label\nok,a\nbad,a,extra\n"))
    with pytest.raises(DataError, match=r"y\.csv:3: expected 2 columns, found 1; the row runs to line 4: a quote"):
        read_rows(write(tmp_path, "y.csv", b'text,label\nok,a\n"open quote,a\nnext,b\n'))
    with pytest.raises(DataError, match=r'w\.csv:2: not UTF-8 text \(from Excel, save it as "CSV UTF-8"\)$'):
        read_rows(write(tmp_path, "w.csv", "text,label\ncaf\u00e9,a\n".encode("cp1252")))  # Excel's plain "CSV"
    with pytest.raises(DataError, match=r"z\.txt: unsupported data format '\.txt'"):
        read_rows(write(tmp_path, "z.txt", b"x"))


# ---- benchmarks over such files -------------------------------------------------------------------------------

def spec_dir(tmp_path, files: dict[str, bytes], splits: dict, labels=("negative", "positive"), **extra):
    for name, data in files.items():
        write(tmp_path, name, data)
    spec = {"name": "files", "version": 1, "task": "classification", "prompt": "Review: {input}\nSentiment:",
            "labels": list(labels), "fields": {"input": "text", "target": "label"}, "metrics": ["accuracy"],
            "splits": splits} | extra
    (tmp_path / "benchmark.yaml").write_text(json.dumps(spec))
    return str(tmp_path / "benchmark.yaml")


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundled_split_hashes_are_the_file_bytes():
    """Split sha256 keys kept units: for the bundled files it is still the sha256 of the bytes, as before."""
    for name in ("support_intents", "ticket_summaries"):
        spec, splits = load_benchmark(SuiteRef(name), ROOT)
        for split in splits.values():
            assert split.sha256 == sha(ROOT / "benchmarks" / name / f"{split.name}.jsonl")


def test_hash_changes_only_where_the_reading_did(tmp_path):
    plain = b"text,label\nfine,0\ngood,1\n"
    path = spec_dir(tmp_path, {"plain.csv": plain, "excel.csv": EXCEL}, {"train": "plain.csv", "test": "excel.csv"})
    _, splits = load_benchmark(SuiteRef(path), tmp_path)
    assert splits["train"].sha256 == sha(tmp_path / "plain.csv")
    assert splits["test"].sha256 != sha(tmp_path / "excel.csv")  # sftbench 0.1 read it otherwise: not its units
    _, quoted = load_benchmark(SuiteRef(spec_dir(tmp_path, {}, {"train": "plain.csv", "test": "excel.csv"},
                                                 quoting="minimal")), tmp_path)
    assert quoted["train"].sha256 != splits["train"].sha256
    with pytest.raises(ConfigError, match="quoting must be one of auto, minimal, none"):
        load_benchmark_spec(spec_dir(tmp_path, {}, {"train": "plain.csv", "test": "excel.csv"}, quoting="all"),
                            tmp_path)


def test_integer_labels_through_a_label_list(tmp_path):
    rows = b'{"text": "bad", "label": 0}\n{"text": "good", "label": 1}\n'
    path = spec_dir(tmp_path, {"t.jsonl": rows, "x.csv": PANDAS_CSV}, {"train": "t.jsonl", "test": "x.csv"})
    _, splits = load_benchmark(SuiteRef(path), tmp_path)
    assert [ex.target for ex in splits["train"].examples] == ["negative", "positive"]
    assert [ex.references for ex in splits["test"].examples] == [("negative",), ("positive",), ("positive",)]
    write(tmp_path, "t.jsonl", rows + b'{"text": "odd", "label": 2}\n')
    with pytest.raises(DataError, match=r"t\.jsonl:3: label 2 is out of range: labels has 2 \(0: negative, "
                                        r"1: positive\)"):
        load_benchmark(SuiteRef(path), tmp_path)


def test_label_mapping_form_and_integer_label_names(tmp_path):
    rows = b'{"text": "bad", "label": "neg"}\n{"text": "good", "label": "pos"}\n'
    spec_dir(tmp_path, {"t.jsonl": rows}, {"train": "t.jsonl", "test": "t.jsonl"})
    raw = json.loads((tmp_path / "benchmark.yaml").read_text()) | {"labels": {"neg": "negative", "pos": "positive"}}
    (tmp_path / "benchmark.yaml").write_text(json.dumps(raw))
    spec, splits = load_benchmark(SuiteRef(str(tmp_path / "benchmark.yaml")), tmp_path)
    assert [ex.target for ex in splits["train"].examples] == ["neg", "pos"] and spec.labels["neg"] == "negative"
    path = spec_dir(tmp_path, {"n.jsonl": b'{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n'},
                    {"train": "n.jsonl", "test": "n.jsonl"}, labels=(1, 2))
    with pytest.raises(DataError, match="label '0' is not among the declared labels \\(1, 2\\)"):  # names, not indexes
        load_benchmark(SuiteRef(path), tmp_path)


def intents_csv(n_per_label=(40, 20), duplicate=False) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["text", "label"])
    for label, n in enumerate(n_per_label):
        for i in range(n):
            tag = hashlib.sha256(f"{label}-{i}".encode()).hexdigest()[:8]  # no two rows near-duplicates
            writer.writerow(["same row" if duplicate else f"review {label}-{i}\nsecond line {i} {tag}", label])
    return buf.getvalue().encode()


CARVED = {"train": "all.csv", "test": "all.csv", "validation": {"from": "train", "fraction": 0.25, "seed": 0,
                                                                 "stratify": True}}


def carved(tmp_path, validation=None, data=None):
    splits = CARVED | ({"validation": CARVED["validation"] | validation} if validation else {})
    spec, out = load_benchmark(SuiteRef(spec_dir(tmp_path, {"all.csv": data or intents_csv()}, splits)), tmp_path)
    return spec, out


def test_carved_split_is_reproducible_stratified_and_disjoint(tmp_path):
    spec, splits = carved(tmp_path)
    train, validation = splits["train"], splits["validation"]
    lines = [ex.line for ex in validation.examples]
    assert lines == [ex.line for ex in carved(tmp_path)[1]["validation"].examples]  # same seed, same rows
    assert {t: [ex.target for ex in validation.examples].count(t) for t in spec.labels} == {"negative": 10,
                                                                                             "positive": 5}
    assert not set(lines) & {ex.line for ex in train.examples}
    assert len(train.examples) + len(validation.examples) == 60 == len(splits["test"].examples)
    assert "\nsecond line" in validation.examples[0].raw["text"] and validation.carved_from == "train"
    other = carved(tmp_path, {"seed": 1})[1]["validation"]
    assert [ex.line for ex in other.examples] != lines


def test_carved_split_hashes(tmp_path):
    _, base = carved(tmp_path)
    file_hash = sha(tmp_path / "all.csv")
    assert base["test"].sha256 != file_hash  # the multi-line file is read otherwise than by sftbench 0.1
    settings = (("base", None), ("seed", {"seed": 1}), ("fraction", {"fraction": 0.2}), ("flat", {"stratify": False}))
    hashes = {(s, name): split.sha256 for s, over in settings for name, split in carved(tmp_path, over)[1].items()}
    assert len({hashes[(s, "validation")] for s in ("base", "seed", "fraction", "flat")}) == 4
    assert len({hashes[(s, "train")] for s in ("base", "seed", "fraction", "flat")}) == 4
    assert hashes[("base", "train")] != hashes[("base", "test")] != hashes[("base", "validation")]
    assert len({hashes[(s, "test")] for s in ("base", "seed", "fraction", "flat")}) == 1  # test is not carved
    assert hashes[("base", "validation")] == base["validation"].sha256


def test_carved_test_split_and_lone_reader(tmp_path):
    """`load_split` of a carved test alone (as the references of a run are read) gives the rows `load_benchmark` did."""
    splits = {"train": "all.csv", "validation": {"from": "train", "fraction": 0.1},
              "test": {"from": "train", "fraction": 0.2, "seed": 3}}
    spec, out = load_benchmark(SuiteRef(spec_dir(tmp_path, {"all.csv": intents_csv()}, splits)), tmp_path)
    assert [len(out[s].examples) for s in ("train", "validation", "test")] == [42, 6, 12]
    parts = [{ex.line for ex in out[s].examples} for s in ("train", "validation", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert [ex.line for ex in load_split(spec, "test").examples] == sorted(parts[2])


@pytest.mark.parametrize("carve, fragment", [
    ({"from": "test", "fraction": 0.1}, "splits.validation.from must be train"),
    ({"from": "train", "fraction": 1.5}, "fraction must be a number between 0 and 1"),
    ({"from": "train"}, "fraction must be a number between 0 and 1"),
    ({"from": "train", "fraction": 0.1, "sed": 1}, "unknown key 'sed'"),
    ({"from": "train", "fraction": 0.1, "seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_carves(tmp_path, carve, fragment):
    path = spec_dir(tmp_path, {"all.csv": intents_csv()}, {"train": "all.csv", "test": "all.csv", "validation": carve})
    with pytest.raises(ConfigError, match=fragment):
        load_benchmark_spec(path, tmp_path)


def test_carve_too_small_and_stratify_needs_labels(tmp_path):
    path = spec_dir(tmp_path, {"all.csv": intents_csv((2, 2))}, CARVED | {"validation": {"from": "train",
                                                                                          "fraction": 0.05}})
    with pytest.raises(DataError, match=r"all\.csv: carving validation \(from train fraction 0\.05 seed 0 stratify "
                                        r"False\) from 4 rows takes no row"):
        load_benchmark(SuiteRef(path), tmp_path)
    raw = json.loads((tmp_path / "benchmark.yaml").read_text())
    raw |= {"task": "generation", "metrics": ["rougeL"], "splits": CARVED}
    raw.pop("labels")
    (tmp_path / "benchmark.yaml").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="stratify needs labels"):
        load_benchmark_spec(str(tmp_path / "benchmark.yaml"), tmp_path)


def test_leakage_lint_checks_a_carved_split(tmp_path):
    from harness.data.validate import lint_benchmark

    spec, splits = carved(tmp_path, data=intents_csv(duplicate=True))
    findings = [str(f) for f in lint_benchmark(spec, splits, 512) if "leakage" in f.message and
                "carved from the same file" in f.message]
    first = splits["validation"].examples[0].line
    assert findings and findings[0].startswith(f"{tmp_path / 'all.csv'}:{first}: warning: leakage: exact duplicate of "
                                               "train line")
    spec, clean = carved(tmp_path)
    assert not [f for f in lint_benchmark(spec, clean, 512) if "leakage" in f.message and "validation" in f.message
                and "carved" in f.message]


# ---- through the CLI ------------------------------------------------------------------------------------------

def csv_bakeoff(tmp_path, tiny_llama) -> str:
    bench = tmp_path / "reviews"
    bench.mkdir()
    spec_dir(bench, {"all.csv": intents_csv((24, 24))}, CARVED | {"test": {"from": "train", "fraction": 0.25}})
    cfg = tmp_path / "bakeoff.yaml"
    cfg.write_text(f"""
name: csv
candidates:
  - {{model: "{tiny_llama}", name: tiny-llama}}
recipe: {{epochs: 1, batch_size: 8, max_length: 64, learning_rate: 1e-3, bf16: "off"}}
benchmarks:
  - {{spec: "{bench / 'benchmark.yaml'}", max_train: 16, max_validation: 8, max_test: 8}}
probes: []
bias: []
bootstrap_resamples: 100
""")
    return str(cfg)


def test_validate_examples_shows_the_multiline_cell(tmp_path, tiny_llama, capsys):
    from harness.cli import main

    code = main(["validate", csv_bakeoff(tmp_path, tiny_llama), "--examples", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert {r["split"] for r in rows} == {"train", "validation", "test"} and len(rows) == 6
    for row in rows:  # the cell's line break is in what the model reads
        assert re.search(r"Review: review (\d)-(\d+)\nsecond line \2 [0-9a-f]{8}\nSentiment:", row["input"]), row
        assert row["target"] == ["negative", "positive"][int(re.search(r"review (\d)", row["input"])[1])]


def test_bakeoff_on_a_csv_benchmark(tmp_path, tiny_llama, capsys):
    from harness.cli import main

    out = tmp_path / "out"
    code = main(["run", csv_bakeoff(tmp_path, tiny_llama), "--out", str(out)])
    assert code == TINY_EXIT, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    references = results["references"]["files"]["test"]
    assert len(references["items"]) == 8 and {r for item in references["items"] for r in item} <= {"negative",
                                                                                                   "positive"}
    assert references["data_sha256"] != sha(tmp_path / "reviews" / "all.csv")


def test_bundled_spec_ids_are_unchanged():
    """Carving and `quoting:` live in the spec's `splits`, which spec_id leaves out: the bundled benchmarks keep
    the spec ids their kept units were stored under (values from before issue 17)."""
    from harness.execution.keys import spec_id

    ids = {name: spec_id(load_benchmark_spec(name, ROOT)) for name in ("support_intents", "ticket_summaries")}
    assert ids == {"support_intents": "b309c55f7543ba85", "ticket_summaries": "b26ce8bbd1d2c073"}


def test_carve_order_is_split_order_whatever_the_spec_order(tmp_path):
    splits = {"test": {"from": "train", "fraction": 0.2, "seed": 3}, "train": "all.csv",
              "validation": {"from": "train", "fraction": 0.1}}
    _, listed_first = load_benchmark(SuiteRef(spec_dir(tmp_path, {"all.csv": intents_csv()}, splits)), tmp_path)
    assert list(listed_first) == ["test", "train", "validation"]  # the spec's order, as before
    ordered = {"train": "all.csv", "validation": splits["validation"], "test": splits["test"]}
    _, in_order = load_benchmark(SuiteRef(spec_dir(tmp_path, {}, ordered)), tmp_path)
    assert all(in_order[s].sha256 == listed_first[s].sha256 for s in in_order)
