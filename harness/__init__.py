"""sftbench harness: the bake-off pipeline (config -> models -> data -> tune -> score -> probe -> gate)."""
from __future__ import annotations

__version__ = "0.1.0"
