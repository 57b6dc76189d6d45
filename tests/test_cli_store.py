"""The store and cache options and the stored-run commands, end to end through `main(argv)` on the tiny bake-off
(tests/conftest.py) cut to one encoder candidate, no probes and no bias suite, so each run takes seconds:
`--no-cache`, `--store PATH`, `sftbench show`, `sftbench report --format ...` and `sftbench compare`."""
from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from sklearn.metrics import f1_score

from harness.cli import main
from harness.storage.store import Store
from reports.terminal import render
from tests.conftest import INTENTS
from tests.reports.sample import typed


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def bakeoff(tiny_config, tiny_bert, out: Path, capsys, *options: str) -> dict:
    """The tiny bake-off with tiny-bert alone; returns its results.json. A tiny model may not beat chance, so
    the verdict may be a gate failure (exit 1); anything else is a broken run."""
    code, _, err = run(["run", str(tiny_config), "--out", str(out), "--quiet", "probes=[]", "bias=[]",
                        f"candidates=[{{model: '{tiny_bert}', name: tiny-bert, learning_rate: 5e-3}}]", *options], capsys)
    assert code in (0, 1), err
    return json.loads((out / "results.json").read_text())


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time: what a write would change."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def test_no_cache_neither_reads_nor_keeps_units(tiny_config, tiny_bert, tmp_path, capsys, monkeypatch):
    units = tmp_path / "units"  # beside $SFTBENCH_STORE (conftest), where a cached run keeps them
    monkeypatch.delenv("SFTBENCH_UNITS", raising=False)
    first = bakeoff(tiny_config, tiny_bert, tmp_path / "a", capsys, "--no-cache")
    assert snapshot(units) == {}, "--no-cache kept units"
    assert first["units"] == {"reused": 0, "computed": first["units"]["computed"], "root": None}
    assert first["units"]["computed"] >= 3  # tune, score test, score shifted
    cached = bakeoff(tiny_config, tiny_bert, tmp_path / "b", capsys)
    assert cached["units"]["reused"] == 0, "the --no-cache run kept something a later run reused"
    assert cached["units"]["root"] == str(units) and snapshot(units)  # the folder checked above is the real one
    kept = snapshot(units)
    again = bakeoff(tiny_config, tiny_bert, tmp_path / "c", capsys, "--no-cache")
    assert again["units"]["reused"] == 0 and again["units"]["computed"] == cached["units"]["computed"]
    assert snapshot(units) == kept, "--no-cache rewrote kept units"
    rerun = bakeoff(tiny_config, tiny_bert, tmp_path / "d", capsys)  # and the cache itself does work
    assert rerun["units"] == {"reused": cached["units"]["computed"], "computed": 0, "root": str(units)}
    predictions = [r["candidates"][0]["benchmarks"][0]["predictions"] for r in (first, cached, again)]
    assert predictions[0] == predictions[1] == predictions[2]


def test_store_option_show_and_report_formats(tiny_config, tiny_bert, tmp_path, capsys, monkeypatch):
    default, elsewhere = tmp_path / "runs.sqlite", tmp_path / "other" / "mine.sqlite"  # $SFTBENCH_STORE is default
    results = bakeoff(tiny_config, tiny_bert, tmp_path / "out", capsys, "--store", str(elsewhere))
    run_id = results["run_id"]
    with Store(elsewhere) as store:
        assert [r["run_id"] for r in store.runs()] == [run_id] and store.get(run_id) == results
    assert not default.exists() or Store(default).runs() == []
    assert results["units"]["root"] == str(elsewhere.parent / "units")  # units live beside the chosen store
    code, _, err = run(["show", run_id], capsys)
    assert code == 2 and f"no run '{run_id}'" in err  # the default store never saw it
    code, stdout, _ = run(["runs", "--store", str(elsewhere)], capsys)
    header, _, row = stdout.splitlines()[:3]  # a header, its rule, then one row per run
    assert code == 0 and header.split()[:2] == ["run", "id"] and row.startswith(run_id)

    monkeypatch.setenv("COLUMNS", "120")
    board = Console(file=io.StringIO(), width=120, color_system=None)
    render(typed(results), board)
    code, shown, _ = run(["show", run_id[:12], "--store", str(elsewhere)], capsys)  # a unique prefix will do
    assert code == 0 and shown == board.file.getvalue() and "tiny-bert" in shown
    out = tmp_path / "out"
    expected = {"terminal": board.file.getvalue(), "md": (out / "report.md").read_text() + "\n",
                "html": (out / "report.html").read_text() + "\n", "junit": (out / "junit.xml").read_text() + "\n"}
    for fmt, text in expected.items():
        code, printed, err = run(["report", run_id, "--store", str(elsewhere), "--format", fmt], capsys)
        assert code == 0, err
        assert printed == text, f"report --format {fmt} differs from what the run wrote"
    code, printed, _ = run(["report", run_id, "--store", str(elsewhere), "--format", "json"], capsys)
    assert code == 0 and json.loads(printed) == results
    code, _, err = run(["report", run_id, "--store", str(elsewhere), "--format", "pdf"], capsys)
    assert code == 2 and "invalid choice" in err


def test_compare_two_stored_runs_on_macro_f1(tiny_config, tiny_bert, tmp_path, capsys, monkeypatch):
    """Two runs (the second on more training data): the compare row named macro_f1 is the difference
    of scikit-learn's macro-F1 on the first 24 gold labels of the test file; an old run without references gets
    no macro_f1 numbers, only the reason."""
    a = bakeoff(tiny_config, tiny_bert, tmp_path / "a", capsys)
    more = "benchmarks=[{spec: support_intents, max_train: 96, max_validation: 16, max_test: 24}]"
    b = bakeoff(tiny_config, tiny_bert, tmp_path / "b", capsys, more)
    gold = [json.loads(line)["label"] for line in (INTENTS / "test.jsonl").read_text().splitlines()[:24]]
    assert a["references"]["support_intents"]["test"]["items"] == [[g] for g in gold]
    pa, pb = (r["candidates"][0]["benchmarks"][0]["predictions"]["test"] for r in (a, b))

    def macro_f1(pred):  # harness.scoring.metrics's definition: the gold labels, zero_division 0
        return f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)

    code, printed, err = run(["compare", a["run_id"], b["run_id"], "--format", "json"], capsys)
    assert code == 0, err
    rows = {(r["split"], r["metric"]): r for r in map(json.loads, printed.splitlines())}
    f1, acc = rows[("test", "macro_f1")], rows[("test", "accuracy")]
    assert f1["a"] == macro_f1(pa) and f1["b"] == macro_f1(pb)
    assert abs(f1["diff"] - (macro_f1(pa) - macro_f1(pb))) < 1e-12 and f1["test"].startswith("macro-F1 from")
    assert (f1["a"], f1["b"]) != (acc["a"], acc["b"])  # accuracy under the macro_f1 name would fail here
    assert set(rows) == {(s, m) for s in ("test", "shifted") for m in ("accuracy", "macro_f1")}

    monkeypatch.setenv("COLUMNS", "100")
    code, table, _ = run(["compare", a["run_id"], b["run_id"]], capsys)  # the default is the table
    assert code == 0 and table.startswith("sftbench compare - a: run " + a["run_id"])
    assert "macro_f1 %" in table and f"{100 * f1['diff']:+.1f}" in table and "{" not in table

    old = a | {"run_id": "19990101-000000-000000"}
    del old["references"]
    with Store() as store:
        store.save(old)
    code, printed, _ = run(["compare", old["run_id"], b["run_id"], "--format", "json"], capsys)
    rows = {(r["split"], r["metric"]): r for r in map(json.loads, printed.splitlines())}
    assert code == 0 and "a" not in rows[("test", "macro_f1")]
    assert "stores no references for support_intents/test" in rows[("test", "macro_f1")]["omitted"]
    code, table, _ = run(["compare", old["run_id"], b["run_id"]], capsys)
    assert "macro_f1 %" not in table and "not compared: tiny-bert / support_intents/test macro_f1" in table
