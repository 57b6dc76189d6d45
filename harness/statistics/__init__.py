"""The statistics stage: intervals (intervals.py), paired tests and multiplicity corrections on per-item scores
(paired.py), seed-aware estimates over training seeds (seeds.py), the generalisation gap (gap.py) and tie groups
(ties.py). Nothing here imports the gates (harness/gates/) or the finishing of a run (harness/results/)."""
