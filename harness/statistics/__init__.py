"""The statistics stage: intervals (intervals.py), paired tests and multiplicity corrections on per-item scores
(paired.py), seed-aware estimates over training seeds (seeds.py) and the generalisation gap (gap.py). Numbers only:
nothing here imports the metric registry (a caller passes a metric's direction or scale), the gates or the results
(tie groups are harness/results/ties.py); the layers contract in pyproject.toml checks it."""
