"""Hardware and latency, recorded with the numbers (issue 26, points 3 and 4), on the session's tiny bake-off:
results.json and every report record the machine (CPU model and its bf16 instructions, GPU, threads); latency per
item is measured alone after every unit, under conditions recorded beside it, and a re-run reuses the measurement;
`compare` notes different hardware and refuses latencies measured under different conditions, and so does a baseline
gate. The Ray executor's results.json carries the same conditions as local's (tests/execution/test_ray_executor.py
compares everything but timings). No test here times anything."""
from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET

from harness.gates.baseline import baseline_test
from harness.models.device import cpu_has_bf16
from harness.models.hardware import cpu_model, latency_comparable
from harness.results.compare import environment_notes
from reports.compare import notes as compare_notes
from reports.terminal import render_text
from tests.reports.sample import typed


def test_results_and_reports_record_the_hardware(tiny_run):
    hw = tiny_run.results["hardware"]
    assert hw["cpu"] == cpu_model() and hw["cpu"] != "unknown" and hw["cpu_bf16"] is cpu_has_bf16()
    assert hw["cores"] == len(os.sched_getaffinity(0)) and hw["threads"] >= 1 and hw["executor"] == "local"
    assert hw["gpu"] is None  # the CPU test machine
    line = f"hardware: {hw['cpu']} (bf16 instructions: {'yes' if hw['cpu_bf16'] else 'no'})"
    assert line in tiny_run.stdout
    assert f"hardware: {hw['cpu']}" in (tiny_run.out / "summary.md").read_text()
    assert f"hardware <code>{hw['cpu']}" in (tiny_run.out / "report.html").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(tiny_run.out / "junit.xml").iter("property")}
    assert props["hardware"].startswith(hw["cpu"])


def test_latency_is_measured_alone_under_recorded_conditions(tiny_run, tmp_path):
    for cand in tiny_run.results["candidates"]:
        (bench,) = cand["benchmarks"]
        cond = bench["latency_conditions"]
        assert bench["latency_ms_per_item"] > 0 and cand["cost"]["latency_ms_per_item"] == bench["latency_ms_per_item"]
        assert cand["cost"]["latency_conditions"] == cond
        # the conditions the figure depends on: nothing else of the run shared the node, every CPU, the device
        assert cond["shared"] is False and cond["threads"] == len(os.sched_getaffinity(0))
        assert cond["device"] == "cpu" and cond["precision"] == "fp32" and cond["items"] == 24  # max_test 24
        assert cond["cpu"] == cpu_model() and cond["gpu"] is None
    assert "latency ms/item: measured alone after every unit ran (nothing else running), 24 test items" in \
        tiny_run.stdout
    # the same bake-off again reuses the measurement with everything else: the very same figure, nothing loaded
    _, again = tiny_run.again("--quiet", out=tmp_path / "again")
    assert [c["cost"] for c in again["candidates"]] == [c["cost"] for c in tiny_run.results["candidates"]]


def _with(results, *, cpu=None, threads=None):
    changed = copy.deepcopy(results)
    changed["run_id"] = "other"
    if cpu:
        changed["hardware"]["cpu"] = cpu
    for cand in changed["candidates"]:
        for where in (cand["cost"], *cand["benchmarks"]):
            if threads:
                where["latency_conditions"]["threads"] = threads
    return changed


def test_compare_notes_other_hardware_and_refuses_latencies_under_other_conditions(tiny_run):
    a = tiny_run.results
    same = environment_notes(a, _with(a))
    assert not any("hardware" in n for n in same)
    assert "latency of tiny-llama: a " in same[0] and "(a/b 1.00), measured under the same conditions" in same[0]
    other = environment_notes(a, _with(a, cpu="Intel(R) Xeon(R) Platinum 8480+", threads=16))
    assert other[0].startswith(f"the runs came from different hardware (cpu {a['hardware']['cpu']} vs Intel(R) "
                               "Xeon(R) Platinum 8480+)")
    cores = len(os.sched_getaffinity(0))
    assert f"latency of tiny-llama not compared: measured under different conditions: threads {cores} vs 16" in other
    shown = compare_notes({"a": {"run_id": "x"}, "b": {"run_id": "y"}, "correction": "holm", "alpha": 0.05,
                           "rows": [], "notes": other})
    assert other[0] in shown
    old = _with(a)
    del old["hardware"]
    assert environment_notes(a, old)[0] == ("hardware: run other records none (written before sftbench recorded it): "
                                            "whether the runs came from the same machine is unknown")


def test_a_baseline_gate_refuses_latencies_measured_under_other_conditions(tiny_run):
    a = tiny_run.results
    cand = a["candidates"][0]
    res, why = baseline_test(cand, "support_intents.latency_ms_per_item", (_with(a, threads=16), cand["name"]))
    assert res is None and "not compared with tiny-llama: measured under different conditions: threads" in why
    assert "{cost: latency_ms_per_item, max: ...}" in why
    res, why = baseline_test(cand, "support_intents.latency_ms_per_item", (a, cand["name"]))
    assert res is None and "under the same conditions, but one figure per run has no per-item values" in why
    assert "different conditions" in latency_comparable({"threads": 2}, {"threads": 16})
    assert "no fixed measuring conditions" in latency_comparable(None, {"threads": 2})  # a run from before


def test_runs_written_before_hardware_and_latency_conditions_still_load_and_render(tiny_run):
    old = copy.deepcopy(tiny_run.results)
    del old["hardware"]
    for cand in old["candidates"]:
        del cand["cost"]["latency_conditions"]
        for bench in cand["benchmarks"]:
            for key in ("latency_conditions", "params", "trainable_params"):
                del bench[key]
    results = typed(old)
    assert results.hardware is None and results.candidates[0].cost.latency_conditions is None
    text = render_text(results)
    assert "hardware:" not in text and "latency ms/item: measured" not in text and "ms/item" in text
