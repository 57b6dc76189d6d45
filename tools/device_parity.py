"""The same small bake-off on the CPU and on an accelerator: the same verdict, and metrics within bf16 noise.

Two tiny models built from configs (tests/conftest.py build_tiny: a 2-layer Llama and BERT with tokenizers trained
here; nothing is downloaded) on the bundled intents benchmark, with probes and a bias suite, through the real CLI:
`sftbench run ... recipe.device=cpu` and `recipe.device=DEVICE`. It compares the exit codes, the recommendation,
every gate verdict and, per candidate and benchmark, the test main metric and the final training loss. Exit 0 when
they agree, 1 when they do not (printing what differs), 2 when the accelerator is missing.

    python3 tools/device_parity.py [--device cuda] [--out DIR]       (tools/gpu_check.sh runs it)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# bf16 noise on 24 test rows: a prediction or two may flip (1/24 ~ 0.04 each); the loss agrees to about 1%
METRIC_TOLERANCE = 0.09
LOSS_TOLERANCE = 0.03  # relative

CONFIG = """
name: parity
candidates:
  - {{model: "{llama}", name: tiny-llama}}
  - {{model: "{bert}", name: tiny-bert, learning_rate: 5e-3}}
recipe: {{epochs: 2, batch_size: 8, max_length: 96, learning_rate: 1e-3, seeds: 2}}
benchmarks:
  - {{spec: support_intents, max_train: 64, max_validation: 16, max_test: 24}}
probes:
  - {{spec: general_knowledge, max_items: 12}}
  - {{spec: paraphrase_probe, max_items: 12}}
bias: [intent_bias]
bootstrap_resamples: 200
gates:
  - {{metric: support_intents.accuracy, op: ">=", value: 0.0}}
  - {{forgetting: general_knowledge, max: 0.5}}
"""


def run(cfg: Path, out: Path, device: str) -> tuple[int, dict[str, Any]]:
    from harness.cli import main

    code = main(["run", str(cfg), "--out", str(out), f"recipe.device={device}", "--force"])
    return code, json.loads((out / "results.json").read_text())


def summary(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"recommendation": results.get("recommendation"),
                           "gates": sorted((g.get("candidate"), g.get("gate"), g.get("passed"))
                                           for g in results.get("gates", []))}
    for c in results["candidates"]:
        for b in c["benchmarks"]:
            test = (b.get("scores") or {}).get("test", {})
            train = b.get("train") or {}
            out[f"{c['name']}/{b['benchmark']}"] = {"metrics": {m: v.get("value") for m, v in test.items()},
                                                   "loss": (train.get("train_loss") or [None])[-1]}
    return out


def compare(cpu: dict[str, Any], other: dict[str, Any]) -> list[str]:
    problems = [f"{k}: cpu {cpu[k]!r}, device {other[k]!r}" for k in ("recommendation", "gates") if cpu[k] != other[k]]
    for name in (k for k in cpu if "/" in k):
        a, b = cpu[name], other.get(name, {"metrics": {}})
        for metric, value in a["metrics"].items():
            there = b["metrics"].get(metric)
            if value is not None and (there is None or abs(value - there) > METRIC_TOLERANCE * max(1.0, abs(value))):
                problems.append(f"{name}: test {metric} cpu {value}, device {there}")
        if a["loss"] and (not b.get("loss") or abs(a["loss"] - b["loss"]) > LOSS_TOLERANCE * abs(a["loss"])):
            problems.append(f"{name}: final training loss cpu {a['loss']}, device {b.get('loss')}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None, help="keep both runs' folders here")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"{args.device}: torch sees no CUDA device", file=sys.stderr)
        return 2
    from tests.conftest import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        base = args.out or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        cfg = base / "parity.yaml"
        cfg.write_text(CONFIG.format(llama=build_tiny("llama", base / "llama"), bert=build_tiny("bert", base / "bert")))
        cpu_code, cpu = run(cfg, base / "cpu", "cpu")
        dev_code, dev = run(cfg, base / args.device.replace(":", "_"), args.device)
        a, b = summary(cpu), summary(dev)
        problems = compare(a, b) + ([f"exit code: cpu {cpu_code}, device {dev_code}"] if cpu_code != dev_code else [])
        print(json.dumps({"cpu": a, args.device: b, "cpu_exit": cpu_code, "device_exit": dev_code}, indent=1))
        for p in problems:
            print("DIFFERS:", p)
        print("parity:", "same verdict, metrics within bf16 noise" if not problems else f"{len(problems)} differences")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
