"""Where a run's wall time went, stage by stage, from its log (`sftbench run --log-file PATH`): every progress stage
line carries a millisecond timestamp, and with the local executor a stage lasts until the next stage line (the last
one until the log's last line: the exit code). Stages are grouped per candidate into the demo's steps: resolve and
convert (a bundled GGUF model is dequantised on first use), load, probe before, bias before, tune (validation before
training, the epochs, validation after), score each split, probe after, bias after; the run's own lint, compare and
write steps are listed under the run's name.

    python tools/stage_profile.py LOG [LOG ...]     # one column per log, seconds and share of the wall time
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ sftbench\.progress: ([^:]+): (.*)$")
ANY = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
# (pattern of the stage text, the step it belongs to): the first match wins
STEPS = [
    (r"^resolving model", "resolve and convert"),
    (r"^loading the model", "load"),
    (r"^probing base model", "probe before"),
    (r"^bias probe on base model", "bias before"),
    (r"^tuning on .*\(validating before training", "tune: validation before"),
    (r"^tuning on .*\(validating after", "tune: validation after"),
    (r"^tuning on", "tune: training"),
    (r"^validating lr", "tune: validation after"),
    (r"^scoring \S+/(\S+)", "score {0}"),
    (r"^probing tuned model", "probe after"),
    (r"^bias probe on tuned model", "bias after"),
    (r"^linting the data", "lint the data"),
    (r"^comparing the candidates", "compare, gates"),
    (r"^writing results\.json", "write results and reports"),
]


def step_of(what: str) -> str:
    what = re.sub(r" \[[^\]]*\]$", "", what)  # a Ray node's name
    for pattern, step in STEPS:
        found = re.match(pattern, what)
        if found:
            return step.format(*found.groups())
    return what.split(" (")[0]


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def profile(log: Path) -> tuple[dict[tuple[str, str], float], float]:
    """Seconds per (candidate, step), and the wall time from the first stage line to the log's last line."""
    stages: list[tuple[float, str, str]] = []
    last = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        when = ANY.match(line)
        if when:
            last = stamp(when.group(1))
        found = LINE.match(line)
        if found and not re.search(r" \d+/\d+ \(\d+%\)", found.group(3)):  # a loop's progress line is not a stage
            stages.append((stamp(found.group(1)), found.group(2), step_of(found.group(3))))
    if not stages or last is None:
        raise SystemExit(f"{log}: no stage lines (was it written by `sftbench run --log-file`?)")
    out: dict[tuple[str, str], float] = {}
    for (start, who, step), (end, _, _) in zip(stages, stages[1:] + [(last, "", "")]):
        out[(who, step)] = out.get((who, step), 0.0) + end - start
    return out, last - stages[0][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    runs = [profile(log) for log in args.logs]
    rows: list[tuple[str, str]] = []
    for stages, _ in runs:
        rows += [key for key in stages if key not in rows]
    print("| candidate | stage | " + " | ".join(log.parent.name or str(log) for log in args.logs) + " |")
    print("|---|---|" + "---|" * len(runs))
    for who, step in rows:
        cells = [f"{stages[(who, step)]:.1f} s ({100 * stages[(who, step)] / wall:.0f}%)"
                 if (who, step) in stages else "" for stages, wall in runs]
        print(f"| {who} | {step} | " + " | ".join(cells) + " |")
    print("| | **wall** | " + " | ".join(f"**{wall:.1f} s**" for _, wall in runs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
