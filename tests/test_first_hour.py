"""What a newcomer meets in the first hour with their own data (issue 25): every line said once, the log file
complete to the exit code, mistakes caught before any model loads, each in one line, pair data first-class in
`init`, long warning lists capped with the full list beside results.json, and no silent stretch. No model is loaded,
except the tiny ones of tests/conftest.py (the session's tiny bake-off, a stand-in GGUF conversion)."""
from __future__ import annotations

import csv
import json
import logging
import re

import pytest

from harness.cli import main


def plain_process(monkeypatch) -> None:
    """Logging as in a `sftbench` process: pytest's own handlers off the root logger (they are added as the test
    starts, so this runs in the test), so a record that no handler takes goes to Python's last-resort handler
    (stderr), as it would for the user."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def once(err: str, *fragments: str) -> None:
    """stderr holds one line per fragment, each fragment exactly once."""
    got = [line for line in err.splitlines() if line.strip()]
    assert len(got) == len(fragments) and all(err.count(f) == 1 for f in fragments), err


# ---- 1. every line said once; the log file keeps it to the exit code ------------------------------------------

def test_an_error_is_printed_once_and_the_log_file_keeps_it_with_the_exit_code(tmp_path, monkeypatch, capsys):
    plain_process(monkeypatch)
    missing = tmp_path / "nope" / "bakeoff.yaml"
    error = f"sftbench: error: {missing}: file not found"
    assert main(["run", str(missing)]) == 2
    once(capsys.readouterr().err, error)
    assert main(["run", str(missing), "--verbose", "--log-file", str(tmp_path / "run.log")]) == 2
    once(capsys.readouterr().err, error, "sftbench: exit code 2")  # --verbose shows the log: the exit code too
    kept = (tmp_path / "run.log").read_text()
    assert f"ERROR sftbench: {error}\n" in kept and kept.endswith("INFO sftbench: exit code 2\n"), kept


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    plain_process(monkeypatch)
    assert main(["run", "--log-file", str(tmp_path)]) == 2  # a folder
    once(capsys.readouterr().err, f"sftbench: error: --log-file {tmp_path}: Is a directory")


def test_compare_and_init_errors_are_printed_once(tmp_path, monkeypatch, capsys):
    plain_process(monkeypatch)
    assert main(["compare", "a", "b", "--store", str(tmp_path / "runs.sqlite")]) == 2
    once(capsys.readouterr().err, "sftbench: error: no run 'a' in the store")
    assert main(["init", "--from", str(tmp_path / "none.csv")]) == 2
    once(capsys.readouterr().err, "none.csv")


def test_an_interrupted_run_says_so_once_and_logs_exit_130(tmp_path, monkeypatch, capsys):
    plain_process(monkeypatch)
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.run.run", interrupted)
    argv = ["run", "--no-store", "--no-cache", "--out", str(tmp_path / "out")]
    assert main(argv) == 130
    once(capsys.readouterr().err, "sftbench: interrupted; nothing was kept (--no-cache); run the same command "
                                  "again to start over")
    assert main([*argv, "--verbose", "--log-file", str(tmp_path / "run.log")]) == 130
    once(capsys.readouterr().err, "sftbench: interrupted; nothing was kept (--no-cache); run the same command "
                                  "again to start over", "sftbench: exit code 130")
    kept = (tmp_path / "run.log").read_text()
    assert "WARNING sftbench: sftbench: interrupted; nothing was kept" in kept
    assert kept.endswith("INFO sftbench: exit code 130\n"), kept


def test_a_warning_of_the_harness_is_shown_once(tmp_path, monkeypatch, capsys):
    plain_process(monkeypatch)
    """A warning the harness logs (not printed by the CLI), as the Ray driver's lost progress queue: shown once on
    the terminal, and the error that follows once too."""
    from harness.errors import RunFailure

    def warns(store):
        logging.getLogger("harness.execution.ray_tasks").warning("live progress from the workers is lost")
        raise RunFailure("the run broke")

    monkeypatch.setattr("harness.storage.store.Store.runs", warns)
    assert main(["runs", "--store", str(tmp_path / "runs.sqlite")]) == 3
    once(capsys.readouterr().err, "live progress from the workers is lost", "sftbench: error: the run broke")


# ---- 2. mistakes caught before training --------------------------------------------------------------------------

def files(tmp_path, monkeypatch, changes: dict[str, str | bytes | None] | None = None) -> None:
    """tests/test_malformed.py's small bake-off (a fake model folder, a two-label benchmark), with `changes`, in the
    working directory."""
    from tests.test_malformed import write

    write(tmp_path, changes or {})
    monkeypatch.chdir(tmp_path)


def no_model(monkeypatch) -> None:
    def resolve(*args, **kwargs):
        raise AssertionError("a model was resolved")

    monkeypatch.setattr("harness.execution.suites.resolve", resolve)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_gate_on_a_metric_no_benchmark_produces_is_a_config_error(command, tmp_path, monkeypatch, capsys):
    from tests.test_malformed import config

    files(tmp_path, monkeypatch, {"bakeoff.yaml": config("gates: [{metric: bench.acuracy, value: 0.5}]\n")})
    no_model(monkeypatch)
    argv = [command, "bakeoff.yaml"] + ["--no-store", "--out", str(tmp_path / "out")] * (command == "run")
    assert main(argv) == 2
    err = capsys.readouterr().err
    once(err, "bakeoff.yaml: error: " * (command == "validate") + "gate 'bench.acuracy >= 0.5': benchmark 'bench' "
         "does not compute 'acuracy' (accuracy); did you mean 'bench.accuracy'?")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_misspelt_model_alias_gets_a_did_you_mean(command, tmp_path, monkeypatch, capsys):
    """`smollm2-13m` reads as a hub id: validate warns it is not cached, run cannot fetch it; both name the alias.
    `smol lm2` is no hub id: an error in both."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files(tmp_path, monkeypatch)
    run = ["--no-store", "--quiet", "--out", str(tmp_path / "out")] * (command == "run")
    assert main([command, "bakeoff.yaml", "candidates=[smollm2-13m]", *run]) == (0 if command == "validate" else 2)
    out = capsys.readouterr()
    line = next(line for line in out.err.splitlines() if "smollm2-13m" in line)
    assert line.endswith("; did you mean 'smollm2-135m'?"), out.err
    assert main([command, "bakeoff.yaml", "candidates=[smol lm2]", *run]) == 2
    line = next(line for line in capsys.readouterr().err.splitlines() if "smol lm2" in line)
    assert "unknown model 'smol lm2'" in line and line.endswith("; did you mean 'smollm2-135m'?")


# ---- 3. malformed inputs: exit 2, one line naming the file, no traceback -------------------------------------------
# (weights files and an empty sweep list are cases of tests/test_malformed.py)

STORE_COMMANDS = [["runs"], ["show", "20250101"], ["promote", "20250101"], ["compare", "a", "b"], ["gate", "a"],
                  ["report", "a"], ["gc"], ["run", "bakeoff.yaml", "--no-cache", "--quiet"]]


@pytest.mark.parametrize("store", ["folder", "not-sqlite"])
@pytest.mark.parametrize("argv", STORE_COMMANDS, ids=[a[0] for a in STORE_COMMANDS])
def test_a_store_that_is_a_folder_or_not_sqlite_is_one_line_exit_2(argv, store, tmp_path, monkeypatch, capsys):
    files(tmp_path, monkeypatch)
    no_model(monkeypatch)
    path = tmp_path / "runs.sqlite"
    if store == "folder":
        path.mkdir()
    else:
        path.write_text("name,score\nsmall,0.7\n")
    out_dir = ["--out", str(tmp_path / "out")] * (argv[0] == "run")
    assert main([*argv, "--store", str(path), *out_dir]) == 2
    out = capsys.readouterr()
    why = "the run store is a folder" if store == "folder" else "not a SQLite database"
    once(out.err, f"sftbench: error: {path}: {why}")
    assert "Traceback" not in out.err + out.out and not (tmp_path / "out").exists()
    assert store == "folder" or path.read_text() == "name,score\nsmall,0.7\n"  # left as it was: no lock, no WAL
    assert sorted(p.name for p in tmp_path.glob("runs.sqlite*")) == ["runs.sqlite"]


# ---- 2. data with several input fields: `init` takes a pair, and says what it used -----------------------------------
# (the duplicate and leakage lints over every field: tests/harness/test_validate.py)

PREMISES = ["a man in a blue coat reads the paper on a bench", "two dogs run across a snowy field at dawn",
            "a chef slices onions in a busy kitchen", "children fly a red kite on the beach",
            "an old woman waters the roses in her garden", "a cyclist waits at a red light in the rain",
            "a band plays jazz on a small stage", "a boy feeds ducks beside a quiet pond",
            "a nurse checks the chart at the end of a shift", "a farmer drives a tractor through the wheat"]


def pair_rows(first: str = "premise", second: str = "hypothesis") -> list[dict]:
    """Every premise three times, with three hypotheses (one per label), as NLI data is: 30 rows."""
    rows = []
    for p in PREMISES:
        subject = " ".join(p.split()[:2])
        for label, h in (("entailment", f"{subject} is outside"), ("contradiction", f"{subject} is asleep at home"),
                         ("neutral", f"{subject} is happy today")):
            rows.append({"id": len(rows), first: p, second: h, "label": label})
    return rows


def write_pairs(path, rows: list[dict]) -> None:
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix, names", [(".csv", ("premise", "hypothesis")), (".jsonl", ("sentence1", "sentence2")),
                                           (".parquet", ("text_a", "text_b"))])
def test_init_finds_a_sentence_pair_and_feeds_both_fields_to_each_model(suffix, names, tmp_path, capsys):
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark

    first, second = names
    data = tmp_path / f"nli{suffix}"
    write_pairs(data, pair_rows(first, second))
    assert main(["init", "--from", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == [f"columns used: text '{first}' and '{second}' (a text pair: both in the causal LM's prompt, "
                        "a pair for the encoder), label 'label'", "columns left out: 'id' (add one with --text COL)"]
    _, splits = load_benchmark(SuiteRef(str(tmp_path / "nli" / "benchmark.yaml")), tmp_path / "nli")
    ex = splits["train"].examples[0]
    assert ex.encoder_text == (ex.raw[first], ex.raw[second])  # [CLS] premise [SEP] hypothesis [SEP]
    shown = [name.replace("_", " ").capitalize() for name in names]  # text_a -> "Text a: ..."
    assert f"{shown[0]}: {ex.raw[first]}\n{shown[1]}: {ex.raw[second]}\nLabel:" in ex.prompt


def test_init_takes_the_text_columns_it_is_given_and_names_those_it_leaves_out(tmp_path, capsys):
    from harness.config import SuiteRef
    from harness.data.specs import load_benchmark

    data = tmp_path / "nli.csv"
    write_pairs(data, [r | {"Genre Note": f"note {r['id']}"} for r in pair_rows()])
    assert main(["init", "--from", str(data), "--text", "premise", "--out", str(tmp_path / "one")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == ["columns used: text 'premise', label 'label'",
                        "columns left out: 'id', 'hypothesis', 'Genre Note' (add one with --text COL)"]
    argv = ["init", "--from", str(data), "--text", "premise", "--text", "hypothesis", "--text", "Genre Note"]
    assert main([*argv, "--out", str(tmp_path / "three")]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("columns used: text 'premise' and 'hypothesis' and "
                                                              "'Genre Note' (all in the causal LM's prompt")
    _, splits = load_benchmark(SuiteRef(str(tmp_path / "three" / "benchmark.yaml")), tmp_path / "three")
    ex = splits["train"].examples[0]
    assert ex.encoder_text == f"{ex.raw['premise']}\n{ex.raw['hypothesis']}\n{ex.raw['Genre Note']}"
    assert f"\nGenre note: {ex.raw['Genre Note']}\nLabel:" in ex.prompt
    assert main([*argv[:5], "--text", "premise"]) == 2
    once(capsys.readouterr().err, "sftbench: error: " + str(data) + ": --text names a column twice")


# ---- 2. the duplicate and leakage lints read every field that reaches the model -------------------------------------

def test_a_pair_benchmark_written_by_init_validates_without_false_duplicates(tmp_path, capsys):
    """Every premise is in three rows, each with another hypothesis: no duplicate, and no leakage between the splits
    carved from the file (the lint itself: tests/harness/test_validate.py)."""
    data = tmp_path / "nli.csv"
    write_pairs(data, pair_rows())
    assert main(["init", "--from", str(data)]) == 0
    assert main(["validate", str(tmp_path / "nli" / "bakeoff.yaml")]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("bakeoff.yaml: 0 errors, 0 warnings\n") and "duplicate" not in captured.err


# ---- 2. long warning lists: a few of each kind on the terminal, all of them in warnings.txt --------------------------

def test_validate_lists_a_few_warnings_of_each_kind(tmp_path, monkeypatch, capsys):
    from tests.test_malformed import jsonl

    train = [f"please refund order {i} today" for i in range(4)] * 3  # rows 5-12 repeat rows 1-4
    files(tmp_path, monkeypatch, {"bench/train.jsonl": jsonl(train)})
    assert main(["validate", "bakeoff.yaml"]) == 0
    out = capsys.readouterr()
    listed = [line for line in out.err.splitlines() if "train.jsonl" in line]
    assert len(listed) == 6 and listed[-1] == f"{tmp_path / 'bench' / 'train.jsonl'}: warning: ... and 3 more " \
                                              "duplicate rows in train (8 in all)"
    assert out.out.endswith("bakeoff.yaml: 0 errors, 8 warnings\n")


def test_a_run_lists_a_few_warnings_of_each_kind_and_writes_them_all_beside_results_json(tiny_run):
    stored = tiny_run.results["warnings"]
    kinds = {w.get("kind") for w in stored}
    assert "shifted rows over recipe.max_length" in kinds
    many = [w for w in stored if w.get("kind") == "shifted rows over recipe.max_length"]
    assert len(many) > 6, "the tiny run's max_length no longer makes a long list"
    printed = [line for line in tiny_run.stdout.splitlines() if "shifted.jsonl" in line]
    assert len(printed) == 6 and printed[-1].endswith(f"... and {len(many) - 5} more shifted rows over "
                                                      f"recipe.max_length ({len(many)} in all)")
    assert f"all {len(stored)} data warnings: warnings.txt, beside results.json" in tiny_run.stdout
    full = (tiny_run.out / "warnings.txt").read_text().splitlines()
    assert len(full) == 1 + len(stored) and all(w["message"] in line for w, line in zip(stored, full[1:]))


# ---- 5. no silent stretch --------------------------------------------------------------------------------------------

STAGE = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")
STEP = re.compile(r" \d+/\d+ \(\d+%\)")


def test_every_long_stage_is_announced_in_order_outside_a_terminal(tiny_run):
    """The tiny bake-off's progress (no terminal: a line per stage): loading each model, the validation passes
    around training, measuring latency, comparing and writing the reports each say what they are doing."""
    stages = [m[1] for line in tiny_run.stderr.splitlines() if (m := STAGE.match(line)) and not STEP.search(line)]
    def tuned(who: str, probe: str, bias: bool) -> list[str]:
        tuning = f"{who}: tuning on support_intents"
        return [f"{who}: loading the model", f"{who}: probing base model: {probe}",
                *[f"{who}: bias probe on base model: intent_bias"] * bias, f"{tuning} (32 rows",
                f"{tuning} (validating before training: loss", f"{tuning} (training epoch 1 of 1)",
                f"{tuning} (validating after epoch 1: loss", f"{who}: scoring support_intents/test",
                f"{who}: scoring support_intents/shifted", f"{who}: probing tuned model: {probe}",
                *[f"{who}: bias probe on tuned model: intent_bias"] * bias]

    expected = ["tiny: linting the data", "tiny-llama: resolving model", "tiny-bert: resolving model",
                *tuned("tiny-llama", "general_knowledge", True), *tuned("tiny-bert", "paraphrase_probe", False),
                "tiny-llama: measuring latency on 24 support_intents test items, alone",  # after every unit
                "tiny-bert: measuring latency on 24 support_intents test items, alone",
                "tiny: comparing the candidates", "tiny: writing results.json and the reports"]
    assert len(stages) == len(expected) and all(s.startswith(e) for s, e in zip(stages, expected)), stages


def test_validate_examples_prints_no_library_bars_while_a_gguf_model_converts(tiny_llama, tmp_path, monkeypatch,
                                                                              capsys):
    """A stand-in GGUF conversion (the real one takes a minute): the reader draws its tqdm bar as transformers' does,
    through the name its module calls; the user sees sftbench's own progress line on stderr, and no bar."""
    import transformers
    from transformers import modeling_gguf_pytorch_utils

    monkeypatch.setenv("SFTBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    for auto in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = auto.from_pretrained.__func__

        def stand_in(cls, *args, _real=real, **kwargs):
            if "gguf_file" in kwargs:  # reading the GGUF file (later, the converted folder's tokenizer loads)
                for _ in modeling_gguf_pytorch_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors"):
                    pass
                return _real(cls, tiny_llama)
            return _real(cls, *args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", classmethod(stand_in))
    argv = ["validate", "--examples", "1", "--limit", "2", f"candidates=[{{model: '{gguf}', name: g}}]", "probes=[]",
            "bias=[]", "gates=[]"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 4 and "Converting" not in out.err and "it/s" not in out.err, out.err
    assert "g: resolving model 100/100 (100%)" in out.err
