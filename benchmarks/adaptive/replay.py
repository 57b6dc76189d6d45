"""Replay the adaptive-seed rounds (harness/results/rounds.py, this checkout's rule) on the seeds of a stored full-grid
run: each round reads a prefix of every setting's validation seeds (the sweep table) and of the selected setting's
per-item test scores, as the simulation reads prefixes of its draws. No training. It answers what the rule of this
checkout decides on the seeds a real run trained, when that run was made by other code.

    python benchmarks/adaptive/replay.py benchmarks/adaptive/intents_adaptive.yaml runs/intents-grid/results.json
"""
from __future__ import annotations

import json
import sys
from typing import Any

from harness.config import BakeoffConfig, load_config
from harness.results.model import Results
from harness.results.rounds import run_rounds


def replayer(grid: dict[str, Any]):  # type: ignore[no-untyped-def]
    rows = {c["name"]: c for c in grid["candidates"]}

    def finish_round(cfg: BakeoffConfig, arms: dict[str, Any]) -> Results:
        out = []
        for name, (seeds, settings) in arms.items():
            row = rows[name]
            bench = row["benchmarks"][0]
            table = {(s["learning_rate"], s["epochs"]): s["seeds"] for s in bench.get("sweep") or []}
            cut = len(seeds)
            means = {s: sum(table[s][:cut]) / cut for s in settings}
            chosen = max(settings, key=lambda s: means[s])
            grid_chosen = next(s for s in table if next(e for e in bench["sweep"] if (e["learning_rate"],
                                                                                        e["epochs"]) == s)["chosen"])
            assert chosen == grid_chosen, f"{name}: {cut} seeds select {chosen}, the grid {grid_chosen}: no test scores"
            test = bench["scores"]["test"]["accuracy"]
            per_seed = test["per_seed"][:cut]
            out.append({"name": name, "model": row["model"], "status": "ok", "params": row["params"],
                        "cost": {"train_seconds": row["cost"]["train_seconds"]},
                        "did_not_learn": row.get("did_not_learn") or [],
                        "benchmarks": [{"benchmark": bench["benchmark"], "status": "ok",
                                        "sweep": [{"learning_rate": lr, "epochs": ep, "seeds": table[(lr, ep)][:cut]}
                                                  for lr, ep in settings] if len(settings) > 1 else [],
                                        "scores": {"test": {"accuracy": {
                                            "value": sum(map(sum, per_seed)) / sum(map(len, per_seed)),
                                            "per_seed": per_seed,
                                            "seeds": [sum(p) / len(p) for p in per_seed]}}}}]})
        return Results.from_json({"name": cfg.name, "candidates": out, "gates": []})

    return finish_round


def main(argv: list[str]) -> int:
    cfg = load_config(argv[0])
    grid = json.loads(open(argv[1]).read())
    ad = run_rounds(cfg, replayer(grid)).adaptive or {}
    print(json.dumps({k: ad[k] for k in ("fine_tunes", "full_grid", "rounds", "stability", "stopped_because",
                                          "arms", "history")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
