"""The typed results model (harness/results/): results.json of a real tiny run survives from_json -> to_json to the
byte, version-1 files from the run store still read, tie groups are stored once and read back by the renderers
(never recomputed), renderers come from one registry, and reports/ imports nothing from the harness but the model."""
from __future__ import annotations

import ast
import copy
import json
import sys
from pathlib import Path

import pytest

import harness.results.ties
from harness.results.finish import restore
from harness.results.model import SCHEMA_VERSION, MetricScore, Results
from harness.results.render import RENDERERS
from tests.conftest import ROOT
from tests.harness.test_store import make_results
from tests.reports.sample import sample_results, typed

ALLOWED_HARNESS = {"harness.results", "harness.results.model", "harness.results.render"}
ALLOWED_OTHERS = {"reports", "rich", "matplotlib"}


def test_results_json_of_a_real_run_round_trips(tiny_run):
    text = (tiny_run.out / "results.json").read_text()
    stored = json.loads(text)
    assert stored["schema_version"] == SCHEMA_VERSION == 2
    assert [t["benchmark"] for t in stored["tie_groups"]] == ["support_intents"] and stored["tie_rule"]
    results = Results.from_json(stored)
    assert json.dumps(results.to_json(), indent=1, default=float) == text  # same keys, order and values
    assert results.candidates[0].benchmarks[0].score("test", "accuracy") == MetricScore.from_json(
        stored["candidates"][0]["benchmarks"][0]["scores"]["test"]["accuracy"])
    assert {g.candidate for g in results.gates} == {c.name for c in results.candidates}


def test_version_1_results_read_and_gain_their_tie_groups():
    v1 = make_results("run-1", accuracies={"a": 0.9, "b": 0.2}, n=60)
    assert v1["schema_version"] == 1 and "tie_groups" not in v1
    plain = Results.from_json(v1)
    assert plain.schema_version == 1 and plain.tie_groups == ()
    out = plain.to_json()
    assert out["schema_version"] == 2
    assert {k: v for k, v in out.items() if k not in ("schema_version", "tie_groups", "tie_rule")} == \
        {k: v for k, v in v1.items() if k != "schema_version"}  # nothing of version 1 lost or changed
    restored = restore(v1)
    (ties,) = restored.tie_groups
    assert ties.order == ["a", "b"] and ties.group == {"a": 1, "b": 2}
    assert restored.tie_rule == harness.results.ties.RULE
    again = restore(json.loads(json.dumps(restored.to_json())))  # stored as version 2: read back, not recomputed
    assert again.tie_groups == restored.tie_groups


def test_an_unknown_schema_version_is_refused():
    with pytest.raises(ValueError, match="schema_version 3"):
        Results.from_json({"schema_version": 3})


def test_keys_the_model_does_not_name_survive():
    d = make_results("run-x")
    d["candidates"][0]["benchmarks"][0]["scores"]["test"]["accuracy"]["newer_field"] = [1, 2]
    assert Results.from_json(d).to_json() == d | {"schema_version": 2, "tie_groups": [], "tie_rule": ""}
    d["added_by_a_newer_writer"] = {"x": 1}
    out = Results.from_json(d).to_json()
    assert out["added_by_a_newer_writer"] == {"x": 1}
    assert out["candidates"][0]["benchmarks"][0]["scores"]["test"]["accuracy"]["newer_field"] == [1, 2]


def test_renderers_read_the_stored_tie_groups_and_never_recompute_them(monkeypatch):
    results = typed(sample_results())
    (ties,) = results.tie_groups
    assert ties.group == {"minilm-l6": 1, "gpt2-small": 1, "smollm2-135m": 2}
    moved = results.with_changes(tie_groups=(type(ties)(ties.benchmark, ties.metric, ties.order,
                                                        {"minilm-l6": 1, "gpt2-small": 2, "smollm2-135m": 3}),))

    def refuse(*args, **kwargs):
        raise AssertionError("a renderer recomputed tie groups")

    monkeypatch.setattr(harness.results.ties, "tie_groups", refuse)
    monkeypatch.setattr(harness.results.ties, "all_tie_groups", refuse)
    import reports  # noqa: F401  (registers the report formats)

    for name, renderer in RENDERERS.items():
        assert renderer.render(moved), name
    md = RENDERERS.get("md").render(moved)
    assert "| gpt2-small |" in md
    row = [line for line in md.splitlines() if line.startswith("| gpt2-small |")][1]  # the full leaderboard's row
    assert row.split(" | ")[2] == "2"  # the stored group, not the 1 the statistics would give


def test_report_formats_and_written_files_come_from_the_registry(tiny_run):
    import reports  # noqa: F401  (registers the report formats)
    from harness.cli import _parser

    report = next(a for a in _parser()._subparsers._group_actions[0].choices["report"]._actions  # type: ignore
                  if a.dest == "format")
    assert list(report.choices) == list(RENDERERS) and {"terminal", "md", "html", "json", "junit"} <= set(RENDERERS)
    written = {p.name for p in tiny_run.out.iterdir()}
    assert written == {"results.json"} | {r.filename for _, r in RENDERERS.items() if r.filename}
    assert "report.html, junit.xml, report.md, summary.md, warnings.txt beside it" in tiny_run.stdout


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_reports_import_nothing_from_the_harness_but_the_results_model():
    bad = []
    for path in sorted((ROOT / "reports").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if name.startswith("harness"):
                ok = name in ALLOWED_HARNESS
            else:
                ok = top in ALLOWED_OTHERS or top in sys.stdlib_module_names
            bad += [] if ok else [f"{path.name}: {name}"]
    assert bad == []


def test_the_import_rule_would_catch_a_harness_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from harness.results.ties import RULE\nimport harness.results.model\n")
    assert [n for n in _imports(probe) if n not in ALLOWED_HARNESS] == ["harness.results.ties"]


def test_metric_score_of_a_probe_keeps_its_extras():
    d = copy.deepcopy(sample_results())
    rate = d["candidates"][0]["benchmarks"][0]["bias"][0]["flip_rate_after"]
    results = Results.from_json(d)
    after = results.candidates[0].benchmarks[0].bias[0].flip_rate_after
    assert after is not None and after.extra == {"count": rate["count"]} and after.to_json() == rate


def test_stage_imports_go_one_way_statistics_then_gates_then_finish():
    """statistics <- gates <- finish: no module of a stage imports a later stage (lazy imports included)."""
    later = {"statistics": ("harness.gates", "harness.results.finish", "harness.results.compare"),
             "gates": ("harness.results.finish", "harness.results.compare")}
    bad = [f"{stage}/{path.name}: {name}" for stage, banned in later.items()
           for path in sorted((ROOT / "harness" / stage).glob("*.py")) for name in _imports(path)
           if name.startswith(banned)]
    assert bad == []
