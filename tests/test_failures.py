"""A candidate that fails at run time (corrupt weights, a diverging loss) is marked failed with the reason,
the other candidates finish, its gates fail closed, and the run exits 3 with every report written."""
from __future__ import annotations

import json
import shutil

from harness.cli import main


def test_failing_candidates_do_not_stop_the_others(tiny_config, tiny_llama, tmp_path, capsys):
    corrupt = tmp_path / "corrupt-llama"
    shutil.copytree(tiny_llama, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated mid-tensor
    text = tiny_config.read_text().replace("candidates:\n", f"""candidates:
  - {{model: "{corrupt}", name: corrupt}}
  - {{model: "{tiny_llama}", name: diverging, learning_rate: 1.0e+30}}
""")
    tiny_config.write_text(text)
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
    assert results["recommendation"] in ("tiny-llama", "tiny-bert")  # the failures never win
    for name in ("report.html", "summary.md", "junit.xml"):
        assert (tmp_path / "out" / name).stat().st_size > 0
