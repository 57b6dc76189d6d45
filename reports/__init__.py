"""Renderers of one results object (harness/results/model.py): terminal (rich), Markdown, HTML, JUnit, JSON, and
the data warnings.

Each module renders the typed Results and registers its formats with `@renderer(...)` (harness/results/render.py).
The formats are registered here lazily, by name (harness/registry.py): `sftbench report --format` lists them
without importing matplotlib, and a module is imported when one of its formats is first rendered.
`write_reports` writes results.json and every format that has a file name. reports/ imports nothing else from the
harness.
"""
from __future__ import annotations

from pathlib import Path

from harness.results.model import Results, write_json
from harness.results.render import RENDERERS

for _name, _module in (("terminal", "terminal"), ("summary", "markdown"), ("md", "markdown"), ("html", "html"),
                       ("junit", "junit"), ("json", "json_report"), ("warnings", "data_warnings")):
    RENDERERS.register(_name, lazy=f"reports.{_module}")


def write_reports(results: Results, out: Path) -> list[str]:
    """results.json, then every registered renderer that has a file name, beside it; the names written."""
    write_json(results, out / "results.json")
    written = []
    for _, renderer in RENDERERS.items():
        if renderer.filename:
            (out / renderer.filename).write_text(renderer.render(results), encoding="utf-8")
            written.append(renderer.filename)
    return written
