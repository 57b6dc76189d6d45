"""`sftbench init --from FILE`: a benchmark.yaml and a bake-off config from a data file of text(s) and a label
(harness/data/scaffold.py), and what it used, left out and wrote."""
from __future__ import annotations

import argparse
from typing import Any

from harness.data.scaffold import init
from harness.errors import EXIT_OK


def main(args: argparse.Namespace, console: Any) -> int:
    made = init(args.data, args.out, args.text, args.label, args.force)
    labels = ", ".join(f"{k} ({n})" for k, n in made.labels.items())
    sizes = ", ".join(f"{s} {n}" for s, n in made.splits.items())
    dropped = f"; {made.dropped} row(s) without a text or a label left out" if made.dropped else ""
    texts = " and ".join(f"'{t}'" for t in made.texts)
    how = {1: "", 2: " (a text pair: both in the causal LM's prompt, a pair for the encoder)"}.get(
        len(made.texts), " (all in the causal LM's prompt, and in the encoder's text)")
    print(f"wrote {made.benchmark} (labels: {labels})")
    print(f"columns used: text {texts}{how}, label '{made.label}'")
    print("columns left out: " + (", ".join(f"'{c}'" for c in made.left_out) + " (add one with --text COL)"
                                   if made.left_out else "none"))
    print(f"wrote {made.config}; splits carved from {args.data.name}: {sizes}{dropped}")
    print(f"next: sftbench validate {made.config}, then sftbench run {made.config} --limit 50 for a smoke run")
    return EXIT_OK
