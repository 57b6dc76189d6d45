"""Renderers of one results object (harness/results/model.py): terminal (rich), Markdown, HTML, JUnit, JSON.

Each module renders the typed Results and registers itself with `@renderer(...)` (harness/results/render.py);
`load()` imports them all, so the registry is complete. reports/ imports nothing else from the harness.
"""
from __future__ import annotations

import importlib

RENDERER_MODULES = ("terminal", "markdown", "html", "junit", "json_report", "data_warnings")


def load() -> None:
    """Import every renderer module (each registers its formats once)."""
    for name in RENDERER_MODULES:
        importlib.import_module(f"reports.{name}")
