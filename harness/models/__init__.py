"""Models: resolving a candidate to local weights and loading them (loading); the device and precision (device)."""
