"""Scoring: metrics by their reference libraries (metrics), task kinds (tasks), forward passes (lm), knowledge probes
and forgetting (probes), counterfactual bias pairs (bias), chance and the learned rule (chance), scoring outside
files (files)."""
