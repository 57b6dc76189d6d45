"""A candidate that fails at run time (weights that pass the pre-flight check but do not load, a diverging loss) is
marked failed with the reason, the other candidates finish with the numbers they have alone, its gates fail closed,
and the run exits 3 with every report naming the failed candidates and their reasons."""
from __future__ import annotations

import html
import json
import shutil
import xml.etree.ElementTree as ET

from harness.cli import main
from reports.markdown import escape as md_escape
from tests.conftest import unloadable


def test_failing_candidates_do_not_stop_the_others(tiny_config, tiny_llama, tmp_path, capsys):
    corrupt = tmp_path / "corrupt-llama"
    shutil.copytree(tiny_llama, corrupt)
    unloadable(corrupt / "model.safetensors")  # (a truncated file is refused before any model loads: exit 2)
    clean = tiny_config.read_text()
    tiny_config.write_text(clean.replace("candidates:\n", f"""candidates:
  - {{model: "{corrupt}", name: corrupt}}
  - {{model: "{tiny_llama}", name: diverging, learning_rate: 1.0e+30}}
"""))
    code = main(["run", str(tiny_config), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["corrupt"]["status"] == "failed" and "cannot load weights" in by_name["corrupt"]["reason"]
    assert by_name["diverging"]["status"] == "failed" and "loss became" in by_name["diverging"]["reason"]
    assert by_name["tiny-llama"]["status"] == by_name["tiny-bert"]["status"] == "ok"
    gates = {(g["candidate"], g["passed"]) for g in results["gates"]}
    assert ("corrupt", False) in gates and ("diverging", False) in gates and ("tiny-llama", True) in gates
    # the tiny models pass the 0.0 gate but stay at chance (tests/conftest.py TINY_EXIT): no recommendation either
    assert results["recommendation"] is None and by_name["tiny-llama"]["did_not_learn"] == ["support_intents"]
    reasons = {"corrupt": by_name["corrupt"]["reason"], "diverging": by_name["diverging"]["reason"]}
    out = tmp_path / "out"
    # every report names both failed candidates with their reasons
    for page, escape in (("summary.md", md_escape), ("report.md", md_escape), ("report.html", html.escape)):
        content = (out / page).read_text()
        for name, reason in reasons.items():
            assert escape(name) in content and escape(reason) in content, (page, name)
    suite = ET.fromstring((out / "junit.xml").read_text()).find("testsuite")
    ran = {case.get("classname"): case.find("failure") for case in suite.iter("testcase") if case.get("name") == "ran"}
    assert set(ran) == {"corrupt", "diverging", "tiny-llama", "tiny-bert"}
    assert ran["corrupt"].get("message") == f"candidate failed: {reasons['corrupt']}"
    assert ran["diverging"].get("message") == f"candidate failed: {reasons['diverging']}"
    assert ran["tiny-llama"] is None and ran["tiny-bert"] is None
    gate_cases = [c for c in suite.iter("testcase") if c.get("name") != "ran"]
    assert {c.get("classname"): c.find("failure") is None for c in gate_cases} == {
        "corrupt": False, "diverging": False, "tiny-llama": True, "tiny-bert": True}
    # the other candidates' numbers are those of a run without the failing candidates (nothing shared: no cache)
    (tmp_path / "clean.yaml").write_text(clean)
    main(["run", str(tmp_path / "clean.yaml"), "--out", str(tmp_path / "clean"), "--quiet", "--no-cache", "--no-store"])
    alone = {c["name"]: c for c in json.loads((tmp_path / "clean" / "results.json").read_text())["candidates"]}
    assert set(alone) == {"tiny-llama", "tiny-bert"}
    for name in alone:
        for got, expected in zip(by_name[name]["benchmarks"], alone[name]["benchmarks"], strict=True):
            for key in ("scores", "predictions", "probes", "bias", "generalisation", "per_class_f1"):
                assert got[key] == expected[key], (name, key)
            assert got["train"]["train_loss"] == expected["train"]["train_loss"]
