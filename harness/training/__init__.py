"""Training: the one loop every tuner shares (loop). The tuning methods themselves are tuners/<name>/."""
