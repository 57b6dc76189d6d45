"""The unit runner and the workspace's lifecycle (no Ray): a workspace is set up for a group and loads nothing
until a unit needs its model, is used unit by unit, and released; the runner holds one at a time and both
executors drive it the same way."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.config import load_config
from harness.errors import RunFailure
from harness.execution.compute import QUIET, Context
from harness.execution.plan import plan
from harness.execution.runner import Runner
from harness.execution.suites import load_suites, resolve_all
from harness.execution.workspace import BASE, TRAINING, Workspace
from harness.models.device import resolve


@pytest.fixture()
def planned(tiny_config):
    cfg = load_config(tiny_config, ["sweep.learning_rate=[1e-3, 5e-3]", "bias=[]"])
    suites, handles = load_suites(cfg), resolve_all(cfg, QUIET)
    return Context(cfg, suites, handles), plan(cfg, suites, handles, resolve("cpu", "off"))


def test_a_workspace_owns_its_state_from_setup_to_release(planned):
    ctx, p = planned
    llama = [u for u in p.units if u.candidate == "tiny-llama"]
    probe, tune, other_tune = llama[0], llama[1], llama[2]
    assert probe.kind == "probe" and tune.kind == other_tune.kind == "tune" and tune.snapshot
    ws = Workspace.setup(probe, ctx.benchmark(probe.benchmark).spec, ctx.handles["tiny-llama"])
    assert ws.model is None and ws.holding is None  # set up: nothing loaded
    assert ws.use(probe) is ws and not ws.snapshot
    ws.base()
    assert ws.holding == BASE and not ws.prepared
    ws.use(tune)  # a tune unit with other settings after it: the initial state will be kept
    assert ws.snapshot
    model = ws.fresh()
    assert ws.holding == TRAINING and ws.initial is not None
    initial = {n: t.clone() for n, t in ws.initial.items()}
    with torch.no_grad():
        for p_ in (p_ for p_ in model.parameters() if p_.requires_grad):
            p_.add_(1.0)  # as training would
    ws.trained(tune.key)
    assert ws.holding == tune.key
    ws.fresh()  # the next setting starts from the kept initial state, without loading the base again
    assert ws.holding == TRAINING and all(torch.equal(initial[n], t) for n, t in ws.trainable_state().items())
    ws.tuned(other_tune.key, lambda: initial)
    assert ws.holding == other_tune.key
    stranger = dataclasses.replace(tune, candidate="tiny-bert")
    with pytest.raises(RunFailure, match="not of this workspace's group"):
        ws.use(stranger)
    ws.release()
    assert ws.model is None and ws.holding is None and ws.initial is None and not ws.memos


def test_the_runner_holds_one_workspace_and_releases_it_when_another_group_begins(planned):
    ctx, p = planned
    runner = Runner()
    llama = [u for u in p.units if u.candidate == "tiny-llama"]
    bert = next(u for u in p.units if u.candidate == "tiny-bert")
    first = runner.workspace(llama[0], ctx)
    first.base()
    assert runner.workspace(llama[1], ctx) is first and first.snapshot  # same group: the loaded model stays
    second = runner.workspace(bert, ctx)
    assert second is not first and first.model is None  # the old one released before the new one is set up
    runner.release()
    assert runner.ws is None and second.model is None
