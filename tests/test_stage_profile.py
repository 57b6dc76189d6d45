"""tools/stage_profile.py reads a run's --log-file into seconds per candidate and stage: a stage lasts until the next
stage line (the last until the log's last line), loop progress lines are not stages, and each stage text falls in
its step of the demo."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("stage_profile", ROOT / "tools" / "stage_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = "INFO sftbench.progress: smollm2-135m: tuning on support_intents"
LOG = "".join(f"2026-12-07 {line}\n" for line in [
    "14:39:22,100 INFO sftbench.progress: demo: linting the data (duplicates, leakage, labels, lengths)",
    "14:39:22,600 INFO sftbench.progress: smollm2-135m: resolving model",
    "14:39:40,000 INFO sftbench.progress: smollm2-135m: resolving model 25/100 (25%)",
    "14:40:12,600 INFO sftbench.progress: smollm2-135m: loading the model (LlamaForCausalLM, cpu)",
    "14:40:14,600 INFO sftbench.progress: smollm2-135m: probing base model: general_knowledge",
    f"14:40:24,600 {S} (449 rows, 1 epochs, lr 0.001)",
    f"14:40:24,700 {S} (validating before training: loss and main metric on 114 rows)",
    f"14:40:34,700 {S} (training epoch 1 of 1)",
    f"14:41:34,700 {S} 57/57 (100%), loss 0.5, done in 1m00s",
    f"14:41:34,700 {S} (validating after epoch 1: loss and main metric on 114 rows)",
    "14:41:44,700 INFO sftbench.progress: smollm2-135m: scoring support_intents/test [node-1]",
    "14:41:54,700 INFO sftbench.progress: smollm2-135m: scoring support_intents/shifted",
    "14:41:59,700 INFO sftbench.progress: smollm2-135m: bias probe on tuned model: intent_bias",
    "14:42:09,700 INFO sftbench.progress: demo: writing results.json and the reports to runs/demo",
    "14:42:10,700 INFO sftbench: exit code 0"])


def test_stage_profile_splits_the_wall_time_by_stage(tmp_path, capsys):
    tool = _tool()
    log = tmp_path / "run" / "log.txt"
    log.parent.mkdir()
    log.write_text(LOG, encoding="utf-8")
    stages, wall = tool.profile(log)
    assert round(wall, 3) == 168.6  # the first stage line to the last line
    assert {k: round(v, 3) for k, v in stages.items()} == {
        ("demo", "lint the data"): 0.5, ("smollm2-135m", "resolve and convert"): 50.0,
        ("smollm2-135m", "load"): 2.0, ("smollm2-135m", "probe before"): 10.0,
        ("smollm2-135m", "tune: training"): 60.1, ("smollm2-135m", "tune: validation before"): 10.0,
        ("smollm2-135m", "tune: validation after"): 10.0, ("smollm2-135m", "score test"): 10.0,
        ("smollm2-135m", "score shifted"): 5.0, ("smollm2-135m", "bias after"): 10.0,
        ("demo", "write results and reports"): 1.0}
    assert abs(sum(stages.values()) - wall) < 1e-6
    assert tool.main([str(log), str(log)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| candidate | stage | run | run |"
    assert "| smollm2-135m | resolve and convert | 50.0 s (30%) | 50.0 s (30%) |" in table
    assert table[-1] == "| | **wall** | **168.6 s** | **168.6 s** |"


def test_the_log_format_is_the_one_the_cli_writes():
    from reports.logs import FORMAT  # the --log-file format

    record = logging.LogRecord("sftbench.progress", logging.INFO, __file__, 1, "demo: linting the data", None, None)
    line = logging.Formatter(FORMAT).format(record)
    assert _tool().LINE.match(line), line
