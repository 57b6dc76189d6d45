"""The `ray` executor on the session's local Ray (ray.init(num_cpus=2), tests/execution/conftest.py) against
`local`: the same results.json, timings aside, on a tiny-model bake-off that has every kind of unit (base and
tuned probes, a sweep of two learning rates, two training seeds, scoring, bias pairs); and a unit that fails fails
its candidate only, with an error that names the unit and the node it ran on."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import unloadable
from tests.execution.support import assert_same_results, read_results

SWEEP = ["sweep.learning_rate=[1e-3, 5e-3]", "recipe.seeds=2"]


def run(cfg: Path, out: Path, units: Path, monkeypatch, *extra: str) -> tuple[int, dict]:
    monkeypatch.setenv("SFTBENCH_UNITS", str(units))  # each arm its own unit cache: nothing is reused across arms
    code = main(["run", str(cfg), *extra, "--out", str(out), "--quiet"])
    return code, read_results(out)


def test_ray_gives_the_results_of_local(ray_local, tiny_config, tmp_path, monkeypatch):
    code_local, local = run(tiny_config, tmp_path / "local", tmp_path / "units-local", monkeypatch, *SWEEP)
    code_ray, distributed = run(tiny_config, tmp_path / "ray", tmp_path / "units-ray", monkeypatch, *SWEEP,
                                "executor.kind=ray")
    assert code_ray == code_local
    assert [c["status"] for c in local["candidates"]] == ["ok", "ok"]
    bench = local["candidates"][0]["benchmarks"][0]
    assert len(bench["sweep"]) == 2 and bench["seeds"] == [0, 1] and bench["probes"] and bench["bias"]
    assert distributed["units"]["computed"] == local["units"]["computed"] > 0
    assert distributed["units"]["reused"] == local["units"]["reused"] == 0
    assert_same_results(distributed, local)
    # every unit the ray run kept is in the driver's unit cache (no executor.units: records came back through
    # the object store), so the same command again recomputes nothing
    code_again, again = run(tiny_config, tmp_path / "again", tmp_path / "units-ray", monkeypatch, *SWEEP,
                            "executor.kind=ray")
    assert code_again == code_ray and again["units"]["computed"] == 0
    assert again["units"]["reused"] == distributed["units"]["computed"]
    assert_same_results(again, distributed)


@pytest.mark.slow  # 12 min here beside other helpers' runs: make test-slow, not CI
def test_adaptive_seeds_reach_the_decisions_of_local_on_ray(ray_local, tiny_llama, tiny_bert, tmp_path, monkeypatch):
    """Adaptive seeds (issue 30): each round's units run as Ray tasks, and the rounds decide as on local."""
    from tests.execution.test_adaptive_rounds import adaptive_config

    cfg = adaptive_config(tmp_path, tiny_llama, tiny_bert)
    code_local, local = run(cfg, tmp_path / "local", tmp_path / "units-local", monkeypatch)
    code_ray, distributed = run(cfg, tmp_path / "ray", tmp_path / "units-ray", monkeypatch, "executor.kind=ray")
    assert code_ray == code_local
    assert distributed["adaptive"]["arms"] == local["adaptive"]["arms"]
    def decisions(history):  # each round's device-hours are a measurement, not a decision
        return [{k: v for k, v in h.items() if k != "device_hours"} for h in history]
    assert decisions(distributed["adaptive"]["history"]) == decisions(local["adaptive"]["history"])
    assert distributed["units"]["computed"] == local["units"]["computed"] > 0


def test_a_failing_unit_fails_its_candidate_only(ray_local, tiny_config, tiny_llama, tmp_path, monkeypatch):
    """Two candidates fail on the worker (weights whose header reads but whose tensors do not: the model cannot load; a learning rate
    that makes the loss diverge); the other two finish with the numbers of a run without them."""
    corrupt = tmp_path / "corrupt-llama"
    shutil.copytree(tiny_llama, corrupt)
    unloadable(corrupt / "model.safetensors")  # loads no further than its header (a truncated file: exit 2 up front)
    clean = tiny_config.read_text()
    failing = tmp_path / "failing.yaml"
    failing.write_text(clean.replace("candidates:\n", f"""candidates:
  - {{model: "{corrupt}", name: corrupt}}
  - {{model: "{tiny_llama}", name: diverging, learning_rate: 1.0e+30}}
"""))
    code, results = run(failing, tmp_path / "out", tmp_path / "units", monkeypatch, "executor.kind=ray")
    assert code == 3
    by_name = {c["name"]: c for c in results["candidates"]}
    assert by_name["tiny-llama"]["status"] == by_name["tiny-bert"]["status"] == "ok"
    node = ray_local.get_runtime_context().get_node_id()  # the session Ray has one node: every unit ran there
    for name, why in (("corrupt", "cannot load weights"), ("diverging", "loss became")):
        reason = by_name[name]["reason"]
        assert by_name[name]["status"] == "failed" and why in reason, reason
        assert f"[unit {name}/support_intents/" in reason, f"the reason names the unit: {reason}"
        assert f"on node {ray_local.util.get_node_ip_address()} {node[:6]}" in reason, f"names the node: {reason}"
    _, alone = run(tiny_config, tmp_path / "alone", tmp_path / "units-alone", monkeypatch)
    expected = {c["name"]: c for c in alone["candidates"]}
    for name in ("tiny-llama", "tiny-bert"):
        assert_same_results(by_name[name], expected[name])


@pytest.mark.integration
def test_ray_gives_the_results_of_local_on_real_models(ray_local, tmp_path, monkeypatch):
    """The demo's two bundled models (SmolLM2-135M, MiniLM-L6), capped to a few minutes, on both executors."""
    capped = ["benchmarks=[{spec: support_intents, max_train: 24, max_validation: 8, max_test: 24}]",
              "probes=[{spec: general_knowledge, max_items: 8}, {spec: paraphrase_probe, max_items: 8}]",
              "bias=[]", "recipe.max_length=128", "bootstrap_resamples=200"]  # bias pairs: the tiny test has them
    code_local, local = run_demo(tmp_path / "local", tmp_path / "units-local", monkeypatch, capped)
    code_ray, distributed = run_demo(tmp_path / "ray", tmp_path / "units-ray", monkeypatch,
                                     [*capped, "executor.kind=ray"])
    assert code_ray == code_local
    assert [c["status"] for c in local["candidates"]] == ["ok", "ok"]
    assert distributed["units"]["computed"] == local["units"]["computed"] > 0
    assert_same_results(distributed, local)


def run_demo(out: Path, units: Path, monkeypatch, overrides: list[str]) -> tuple[int, dict]:
    monkeypatch.setenv("SFTBENCH_UNITS", str(units))
    code = main(["run", *overrides, "--out", str(out), "--quiet"])  # no config: the bundled demo
    return code, read_results(out)


def test_progress_is_display_only_a_lost_queue_fails_nothing(ray_local, caplog):
    """The workers' progress queue is an actor on the driver's node. If it dies (its node lost), the driver says
    so once and goes on, and a worker's progress calls do nothing rather than fail the unit they report."""
    from harness.execution.plan import Unit
    from harness.execution.ray_tasks import _Events, _Relay

    class Shown:
        def __init__(self):
            self.stages = []

        def stage(self, candidate, what):
            self.stages.append((candidate, what))

        def step(self, done, total, info=None):
            pass

    driver = _Relay(Shown())  # the driver's progress half: no plan is run
    unit = Unit(id="u", kind="tune", candidate="c", benchmark="b", seed=0)
    events = _Events(driver.events, unit, "node-1")
    events.stage("c", "tuning")
    driver.drain()
    assert driver.progress.stages == [("c", "tuning [node-1]")]  # the path that works, first
    ray_local.kill(driver.events.actor)
    with caplog.at_level("WARNING"):
        driver.drain()
        driver.drain()  # once lost, not asked again
    assert driver.events is None and sum("live progress" in r.getMessage() for r in caplog.records) == 1
    events.stage("c", "scoring")  # the worker side: the queue is gone, the unit goes on
    events.step(3, 3)
    assert events.queue is None
