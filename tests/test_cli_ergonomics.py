"""Everyday ergonomics through `main(argv)`: list-index overrides, `--limit`, `--candidates`, `sftbench init`,
`--version`, and the history commands (`runs`, `promote`, `gate`) read as sentences and tables. Runs use the tiny
bake-off (tests/conftest.py) without probes or bias suites and with small caps, so each takes seconds."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from harness import __version__
from harness.cli import main
from harness.commands.overrides import limit_overrides as _limit_overrides
from harness.config import BakeoffConfig, SuiteRef, apply_override, build, load_config
from harness.data.specs import load_benchmark
from harness.errors import ConfigError
from tests.conftest import INTENTS, TINY_EXIT


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- overrides that index lists ---------------------------------------------------------------------------------------

def test_overrides_index_lists():
    cfg = load_config(None, ["candidates.0.learning_rate=1e-4", "benchmarks.0.max_test=50", "candidates.1.name=enc"])
    assert cfg.candidates[0].learning_rate == 1e-4 and cfg.candidates[0].model == "smollm2-135m"
    assert cfg.candidates[1].name == "enc" and cfg.candidates[1].learning_rate == 5e-3  # the rest of the entry stays
    assert cfg.benchmarks[0].spec == "support_intents" and cfg.benchmarks[0].max_test == 50  # `- name` expanded
    raw = {"benchmarks": ["a", {"spec": "b"}], "candidates": ["m"]}
    apply_override(raw, "benchmarks.1.max_test=5")
    apply_override(raw, "candidates.0=other")  # a whole entry
    assert raw == {"benchmarks": ["a", {"spec": "b", "max_test": 5}], "candidates": ["other"]}


@pytest.mark.parametrize("override, message", [
    ("candidates.2.learning_rate=1e-4",
     "override 'candidates.2.learning_rate=1e-4': index 2 is out of range ('candidates' has 2 entries, 0..1)"),
    ("recipe.0=1", "override 'recipe.0=1': 'recipe' is a mapping, not a list; it has no index 0"),
    ("candidates.first.learning_rate=1",
     "override 'candidates.first.learning_rate=1': 'candidates' is a list; index it with a number (got 'first')"),
    ("probes.0.max_items=5", "override 'probes.0.max_items=5': 'probes' is not in the config; there is no list to index"),
    ("name.0=x", "override 'name.0=x': 'name' holds 'demo', not a mapping or a list"),
    ("bias=[]", None),  # fine: the next case indexes the empty list
])
def test_bad_list_overrides_are_one_line_exit_2(override, message, capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\ncandidates: [smollm2-135m, minilm-l6]\nbenchmarks: [support_intents]\n"
                   "recipe: {epochs: 1}\nbias: []\n")
    argv = ["run", str(cfg), override, "--no-store", "--quiet"]
    if message is None:
        code, _, err = run(["run", str(cfg), "bias.0=intent_bias", "bias=[]", "--no-store"], capsys)
        assert code == 2 and one_error_line(err).endswith("index 0 is out of range ('bias' is empty)")
        return
    code, _, err = run(argv, capsys)
    assert code == 2 and one_error_line(err) == f"sftbench: error: {message}"
    code, _, err = run(["validate", str(cfg), override], capsys)  # validate reports the same line
    assert code == 2 and message in err


# -- --version --------------------------------------------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse's version action; main() turns it into the return code
        from harness.cli import _parser

        _parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"sftbench {__version__}\n"
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out == f"sftbench {__version__}\n"
    from importlib.metadata import version

    assert version("sftbench") == __version__


# -- --candidates -----------------------------------------------------------------------------------------------------

def test_candidates_filter_in_the_config():
    cfg = load_config(None, ["only_candidates=[minilm-l6]"])
    assert [c.name for c in cfg.candidates] == ["minilm-l6"] and cfg.only_candidates == ["minilm-l6"]
    zero = load_config(None, ["zero_shot=true", "only_candidates=[minilm-l6]"])
    assert [c.name for c in zero.candidates] == ["minilm-l6", "minilm-l6-zero-shot"]  # its reference row comes along
    # as a stored config (its sweep lists, stored as [] when left out, are left out again: an empty list is an error)
    again = build(BakeoffConfig, {k: v for k, v in dataclasses.asdict(zero).items() if k != "sweep"}, "")
    assert again.candidates == zero.candidates
    assert load_config().hash() != cfg.hash()
    assert "only_candidates" not in json.dumps(dataclasses.asdict(load_config())) or load_config().hash() == \
        load_config(None, ["only_candidates=[]"]).hash()  # an empty filter does not change the hash
    with pytest.raises(ConfigError, match=r"unknown candidate nope; known: smollm2-135m, minilm-l6$"):
        load_config(None, ["only_candidates=[nope]"])


def test_unknown_candidate_is_one_line_listing_the_known(capsys):
    code, _, err = run(["run", "--candidates", "minilm-l6,bogus", "--no-store"], capsys)
    assert code == 2
    assert one_error_line(err).endswith("only_candidates (--candidates): unknown candidate bogus; "
                                        "known: smollm2-135m, minilm-l6")
    code, _, err = run(["validate", "--candidates", "bogus"], capsys)
    assert code == 2 and "unknown candidate bogus; known: smollm2-135m, minilm-l6" in err
    code, _, err = run(["run", "--candidates", " , ", "--no-store"], capsys)
    assert code == 2 and one_error_line(err) == "sftbench: error: --candidates needs at least one candidate name " \
                                                "(got ' , ')"


# -- --limit ----------------------------------------------------------------------------------------------------------

def test_limit_is_overrides_of_every_cap(tiny_config):
    overrides = _limit_overrides(str(tiny_config), [], 16)
    assert overrides == ["benchmarks.0.max_train=16", "benchmarks.0.max_validation=16", "benchmarks.0.max_test=16",
                         "probes.0.max_items=12", "probes.1.max_items=12"]  # a cap already below N stays
    cfg = load_config(tiny_config, overrides)
    assert (cfg.benchmarks[0].max_train, cfg.benchmarks[0].max_test, cfg.probes[0].max_items) == (16, 16, 12)
    user = ["probes=[general_knowledge]"]  # the caps follow the user's overrides; `- name` entries become mappings
    demo = load_config(None, user + _limit_overrides(None, user, 5))
    assert demo.benchmarks[0].max_validation == 5 and [p.max_items for p in demo.probes] == [5]
    assert _limit_overrides(str(tiny_config.parent / "missing.yaml"), [], 5) == []  # the command reports it


def test_limit_must_be_positive(capsys):
    for bad in ("0", "-3", "ten"):
        code, _, err = run(["validate", "--limit", bad], capsys)
        assert code == 2 and f"argument --limit: must be a positive whole number (got '{bad}')" in err


def test_limit_and_candidates_run(tiny_config, tmp_path, capsys):
    """One smoke run: tiny-bert only, every split capped at 8; results.json records both in its config."""
    out = tmp_path / "out"
    code, _, err = run(["run", str(tiny_config), "--out", str(out), "--quiet", "probes=[]", "bias=[]",
                        "--candidates", "tiny-bert", "--limit", "8"], capsys)
    assert code == TINY_EXIT, err
    results = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in results["candidates"]] == ["tiny-bert"]
    assert results["config"]["only_candidates"] == ["tiny-bert"]
    assert [c["name"] for c in results["config"]["candidates"]] == ["tiny-bert"]
    bench = results["config"]["benchmarks"][0]
    assert (bench["max_train"], bench["max_validation"], bench["max_test"]) == (8, 8, 8)
    scores = results["candidates"][0]["benchmarks"][0]["scores"]
    assert scores["test"]["accuracy"]["n"] == 8 and scores["shifted"]["accuracy"]["n"] == 8


# -- sftbench init ----------------------------------------------------------------------------------------------------

def write_csv(path: Path, rows: list[tuple[str, str]], header=("id", "Review Text", "Sentiment"), bom=True) -> Path:
    """Rows the way Excel writes them: a UTF-8 BOM, CRLF line ends, quoted cells with commas and line breaks."""
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)  # the csv module's default dialect ends lines with \r\n
        writer.writerow(header)
        for i, (text, label) in enumerate(rows):
            writer.writerow([i, text, label])
    return path


def intents_rows(n: int) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (INTENTS / "train.jsonl").read_text().splitlines()]
    return [(r["text"], r["label"]) for r in rows[:n]]


def test_init_writes_a_benchmark_and_config_that_validate_and_run(tiny_bert, tmp_path, capsys):
    data = write_csv(tmp_path / "My Tickets.csv", intents_rows(100), header=("id", "message", "intent"))
    code, out, err = run(["init", "--from", str(data)], capsys)
    assert code == 0, err
    folder = tmp_path / "my_tickets"
    assert out.splitlines()[0].startswith(f"wrote {folder / 'benchmark.yaml'} (labels: account_access (")
    assert out.splitlines()[1:3] == ["columns used: text 'message', label 'intent'",
                                     "columns left out: 'id' (add one with --text COL)"]
    assert "splits carved from My Tickets.csv: train 70, validation 10, test 20" in out
    spec = yaml.safe_load((folder / "benchmark.yaml").read_text())
    assert spec["fields"] == {"input": "message", "target": "intent"} and spec["task"] == "classification"
    assert spec["labels"]["account_access"] == "account access" and len(spec["labels"]) == 7  # from the data
    assert spec["splits"] == {"train": "../My Tickets.csv",  # the user's file, read where it is, carved by the spec
                              "validation": {"from": "train", "fraction": 0.1, "seed": 0, "stratify": True},
                              "test": {"from": "train", "fraction": 0.2, "seed": 0, "stratify": True}}
    _, splits = load_benchmark(SuiteRef(spec=str(folder / "benchmark.yaml")), folder)
    assert {s: len(x.examples) for s, x in splits.items()} == {"train": 70, "validation": 10, "test": 20}
    assert {e.target for e in splits["test"].examples} == set(spec["labels"])  # stratified: every label in test
    first = (folder / "benchmark.yaml").read_bytes()

    code, out, err = run(["validate", str(folder / "bakeoff.yaml")], capsys)  # the real candidates: no weights load
    assert code == 0, err
    assert out.strip().endswith("bakeoff.yaml: 0 errors, 0 warnings")

    code, _, err = run(["run", str(folder / "bakeoff.yaml"), "--out", str(tmp_path / "out"), "--quiet", "probes=[]",
                        "gates=[]", f"candidates=[{{model: '{tiny_bert}', name: tiny-bert, learning_rate: 5e-3}}]",
                        "--limit", "16"], capsys)
    assert code == TINY_EXIT, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    bench = results["candidates"][0]["benchmarks"][0]
    assert bench["status"] == "ok" and bench["benchmark"] == "my_tickets"
    assert bench["scores"]["test"]["accuracy"]["n"] == 16

    code, _, err = run(["init", "--from", str(data)], capsys)  # nothing is overwritten without --force
    assert code == 2 and "benchmark.yaml, bakeoff.yaml already there; --force overwrites" in one_error_line(err)
    code, _, err = run(["init", "--from", str(data), "--force"], capsys)
    assert code == 0 and (folder / "benchmark.yaml").read_bytes() == first


def test_init_leaves_out_rows_without_text_or_label(tmp_path, capsys):
    """Excel's bytes (BOM, CRLF, a quoted cell with a comma and a line break) read exactly; a row with an empty text
    is left out, so the usable rows are written beside the spec and carved from there."""
    rows = intents_rows(60) + [("Refund, please.\nIt arrived broken, twice.", "refund"), ("", "billing")]
    data = write_csv(tmp_path / "tickets.csv", rows, header=("id", "Text", "Label"))
    assert data.read_bytes().startswith(b"\xef\xbb\xbfid,Text,Label\r\n")
    code, out, err = run(["init", "--from", str(data), "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert "; 1 row(s) without a text or a label left out" in out
    kept = [json.loads(line) for line in (tmp_path / "b" / "rows.jsonl").read_text().splitlines()]
    assert len(kept) == 61 and kept[-1]["Text"] == "Refund, please.\nIt arrived broken, twice."  # line break kept
    assert yaml.safe_load((tmp_path / "b" / "benchmark.yaml").read_text())["splits"]["train"] == "rows.jsonl"
    code, out, err = run(["validate", str(tmp_path / "b" / "bakeoff.yaml")], capsys)
    assert code == 0, err


def test_init_with_named_columns_and_out(tmp_path, capsys):
    rows = [(f"item {i} is {'great' if i % 2 else 'awful'}", "pos" if i % 2 else "neg") for i in range(30)]
    data = write_csv(tmp_path / "data.csv", rows, header=("id", "body_txt", "y_true"), bom=False)
    code, _, err = run(["init", "--from", str(data)], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"sftbench: error: {data}: no text column found by name")
    assert "columns: id, body_txt, y_true; name it with --text COL" in err
    code, _, err = run(["init", "--from", str(data), "--text", "body_txt", "--label", "nope"], capsys)
    assert code == 2 and one_error_line(err).endswith("no column 'nope' (--label); columns: id, body_txt, y_true")
    code, out, err = run(["init", "--from", str(data), "--text", "body_txt", "--label", "y_true", "--out",
                          str(tmp_path / "bench")], capsys)
    assert code == 0, err
    assert "labels: neg (15), pos (15)" in out and "train 20, validation 4, test 6" in out  # round(1.5) is 2
    code, out, err = run(["validate", str(tmp_path / "bench" / "bakeoff.yaml")], capsys)
    assert code == 0, err


@pytest.mark.parametrize("content, message", [
    ("text,label\nonly one,a\nanother,a\n", "column 'label' holds 1 distinct label(s); a classifier needs two or more"),
    ("text,label\na,x\nb,y\n", "carving validation (from train fraction 0.1 seed 0 stratify True) from 2 rows "
                                "takes no row"),
    ("text,label\na,x,extra\n", ":2: expected 2 columns, found 3"),
    ("text,label\n", "no data rows (a header row, then one row per example)"),
    ("", "no data rows"),
])
def test_init_bad_data_is_one_line_exit_2(content, message, tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text(content)
    code, _, err = run(["init", "--from", str(data)], capsys)
    assert code == 2 and message in one_error_line(err)


def test_init_refuses_other_formats_and_missing_files(tmp_path, capsys):
    code, _, err = run(["init", "--from", str(tmp_path / "absent.csv")], capsys)
    assert code == 2 and one_error_line(err).endswith("absent.csv: data file not found")
    (tmp_path / "d.xlsx").write_text("text,label\na,b\n")
    code, _, err = run(["init", "--from", str(tmp_path / "d.xlsx")], capsys)
    assert code == 2 and "unsupported data format '.xlsx' (use .jsonl, .json, .csv, .tsv, .parquet)" in \
        one_error_line(err)
    code, _, err = run(["init"], capsys)
    assert code == 2 and "the following arguments are required: --from" in err


# -- history commands -------------------------------------------------------------------------------------------------

def test_runs_promote_and_gate_read_as_a_person_expects(tiny_config, tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "150")
    code, out, _ = run(["runs"], capsys)
    assert code == 0 and out.startswith("no runs in ") and "yet" in out
    argv = ["run", str(tiny_config), "--quiet", "probes=[]", "bias=[]", "--candidates", "tiny-bert", "--limit", "16"]
    assert run([*argv, "--out", str(tmp_path / "a")], capsys)[0] == TINY_EXIT
    first = json.loads((tmp_path / "a" / "results.json").read_text())["run_id"]

    code, out, err = run(["promote", first, "--candidate", "tiny-bert"], capsys)
    assert code == 0, err
    assert out.startswith(f"Promoted tiny-bert of run {first} as baseline 'tiny' (at ")
    assert out.rstrip().endswith("gates with `baseline: tiny` now compare against it.") and "{" not in out

    code, out, _ = run(["runs"], capsys)
    assert code == 0
    header, rule, row = out.splitlines()[:3]
    assert header.split() == ["run", "id", "name", "created", "candidates", "passed", "recommendation", "baseline",
                              "of"]
    assert set(rule.strip()) <= {"─", " "}
    assert row.split()[:2] == [first, "tiny"] and row.split()[3:] == ["1", "no", "none", "tiny"]
    assert "True" not in out and "False" not in out

    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - {metric: support_intents.accuracy, baseline: tiny, margin: 0.02}\n"
                     "  - {metric: support_intents.accuracy, op: '>=', value: 0.0}\n")
    code, out, err = run(["gate", first, "--gates", str(gates)], capsys)
    assert code == TINY_EXIT, err  # both verdicts pass; a tiny model at chance is never recommended: exit 1
    lines = out.splitlines()
    at = lines.index("gates: 2 of 2 verdicts pass")
    assert "Recommendation [" in "\n".join(lines[:at])  # the leaderboard comes first
    baseline, threshold = lines[at + 1:at + 3]
    assert baseline.startswith("  PASS  tiny-bert: support_intents.accuracy no regression vs tiny (margin 0.02): "
                               "no significant regression: ")
    assert "this gate detects a drop beyond the margin by" in baseline
    assert "-margin -0.0200" in baseline and "p(regression) " in baseline and "holm-adjusted over 2 baseline" not in \
        baseline and "adjusted over 1 baseline gate" in baseline
    assert threshold.startswith("  PASS  tiny-bert: support_intents.accuracy >= 0: value ") and "meets >= 0" in threshold
    code, out, _ = run(["gate", first, "--gates", str(gates), "gates=[]"], capsys)  # not an override command
    assert code == 2
