"""The gates stage: thresholds and caps (check.py), baseline non-inferiority gates (baseline.py), what they
share (lookup.py), the bootstrap agreement of the recommendation (stability.py) and power before compute
(power.py), and the adaptive-seed rule (adaptive.py, with its simulation of known truth in simulate.py).
Gates use harness/statistics/ and never the other way round."""
