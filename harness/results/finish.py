"""Finishing a bake-off inside the harness: from harness.run's Bakeoff to the typed Results every renderer reads.

The stages, in order (one screen):
  candidate rows (the results model's CandidateRow, built by harness/execution/assemble.py: scores, probes, bias,
  the generalisation gap and its interval)
  -> compare (harness/results/ties.py: tie groups, computed once and stored)
  -> gates (harness/gates/check.py: thresholds, caps, baseline verdicts against the promoted baseline)
  -> recommend (harness/gates/check.py), its bootstrap agreement and the recommendation_stability gate
     (harness/gates/stability.py).

`regate` runs the last two stages again on stored results with other gates (`sftbench gate`); `restore` reads a
stored results.json of either schema version, giving a version-1 run the tie groups it did not store.
The stages read the results model's rows; a stored baseline (results.json) is read into the same rows.
`finish` builds Results from the typed rows directly: no JSON is written and parsed back.
"""
from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.config import BakeoffConfig, GateConfig
from harness.execution.assemble import Bakeoff
from harness.gates.check import Verdict, check, per_benchmark, recommend
from harness.gates.lookup import Rows, as_rows
from harness.gates.stability import Agreement, bootstrap_agreement
from harness.models.hardware import describe
from harness.results.model import Results, TieGroup
from harness.results.ties import RULE, all_tie_groups
from harness.scoring.hf_evaluate import display_scales
from harness.storage.units import package_versions


def git_sha(where: Path | None = None) -> str:
    """The commit of the user's repository: the one the command runs in (`where`, default the working directory),
    not sftbench's own (its version is in `packages`). "unknown" outside a git repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=where or Path.cwd())
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def finish(bakeoff: Bakeoff, cfg: BakeoffConfig, baselines: dict[str, Any] | None = None) -> Results:
    """The finished run: candidate rows -> tie groups -> gate verdicts -> recommendation."""
    config = dataclasses.asdict(cfg)
    cands = list(bakeoff.candidates)
    ties = all_tie_groups({"candidates": [c.to_json() for c in cands], "config": config})
    verdicts = check(cands, cfg.gates, baselines, cfg.bootstrap_resamples, cfg.recipe.seed, cfg.gate_correction)
    verdicts, choice, reason, agreement = conclude(cands, verdicts, cfg.gates, cfg.bootstrap_resamples,
                                                   cfg.recipe.seed, cfg.recommendation_tentative_below)
    return Results(run_id=bakeoff.run_id, name=cfg.name, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   config_hash=cfg.hash(), config=config, git_sha=git_sha(), packages=package_versions(),
                   passed=choice is not None, recommendation=choice, recommendation_reason=reason,
                   recommendation_stability=agreement.share, gates=tuple(verdicts), candidates=tuple(cands),
                   warnings=bakeoff.warnings, references=bakeoff.references, tie_groups=tuple(ties), tie_rule=RULE,
                   recommendation_agreement=agreement.to_json(), hardware=describe(cfg.executor.kind),
                   metric_scales=display_scales(sorted({m for c in cands for b in c.benchmarks for split in b.scores
                                                        for m in b.scores[split]})) or None)


def conclude(cands: Rows, verdicts: list[Verdict], gates: list[GateConfig], resamples: int,
             seed: int, tentative_below: float = 0.8) -> tuple[list[Verdict], str | None, str, Agreement]:
    """The recommendation and its bootstrap agreement (in words: reliable, or tentative below `tentative_below`),
    each benchmark's own pick beside it, with each recommendation_stability gate's verdict appended:
    (verdicts, recommended candidate or None, why, agreement)."""
    cands = as_rows(cands)
    choice, reason = recommend(cands, verdicts)
    agreement = bootstrap_agreement(cands, verdicts, gates, choice, min(resamples, 500), seed, tentative_below)
    agreement = dataclasses.replace(agreement, per_benchmark=tuple(per_benchmark(cands, verdicts, gates)))
    share = agreement.share
    held = f"; held fixed: {', '.join(agreement.held_fixed)}" if agreement.held_fixed else ""
    for gate in gates:
        minimum = gate.recommendation_stability
        if minimum is None:
            continue
        ok = share >= minimum
        verdicts = [*verdicts, Verdict(choice or "-", gate.name, ok, share,
                                       f"bootstrap agreement: the same candidate is recommended in {share:.0%} of "
                                       f"resamples of seeds and items ({'meets' if ok else 'misses'} {minimum:g}"
                                       f"{held})")]
        if not ok and choice is not None:
            reason = (f"{choice} would be recommended, but only in {share:.0%} of resamples of seeds and items "
                      f"(bootstrap agreement; gate: {minimum:g}): not a stable choice; {reason}")
            choice = None
    return verdicts, choice, reason, agreement


def regate(results: Results, gates: list[GateConfig], correction: str,
           baselines: dict[str, Any] | None = None) -> Results:
    """Verdicts and the recommendation again on stored results, under `gates`, with the run's own bootstrap
    resamples and seed (so the run's own gates reproduce its verdicts)."""
    resamples = int(results.config.get("bootstrap_resamples") or 1000)
    seed = int((results.config.get("recipe") or {}).get("seed") or 0)
    cands = list(results.candidates)
    verdicts = check(cands, gates, baselines, resamples, seed, correction)
    verdicts, choice, reason, agreement = conclude(cands, verdicts, gates, resamples, seed,
                                                   float(results.config.get("recommendation_tentative_below") or 0.8))
    return results.with_changes(passed=choice is not None, recommendation=choice, recommendation_reason=reason,
                                recommendation_stability=agreement.share, gates=tuple(verdicts),
                                recommendation_agreement=agreement.to_json())


def restore(stored: dict[str, Any]) -> Results:
    """Stored results.json (schema 1 or 2) as Results; a version-1 run gets its tie groups computed here, once,
    as the run would have stored them."""
    results = Results.from_json(stored)
    if "tie_groups" in stored:
        return results
    ties: list[TieGroup] = all_tie_groups(stored)
    return results.with_changes(tie_groups=tuple(ties), tie_rule=RULE)
