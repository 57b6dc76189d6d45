"""The renderer registry: one entry per report format, filled by the modules of reports/ (one module, one
`@renderer(...)` each). `sftbench report --format` offers its names; `write_reports` writes every entry that has a
file name beside results.json."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.registry import Registry
from harness.results.model import Results

Render = Callable[[Results], str]


@dataclass(frozen=True)
class Renderer:
    name: str  # the --format choice
    render: Render
    filename: str | None = None  # the file `sftbench run` writes beside results.json; None: on demand only


RENDERERS: Registry[Renderer] = Registry("report format")


def renderer(name: str, filename: str | None = None) -> Callable[[Render], Render]:
    """Register a function Results -> text as the report format `name`."""
    def add(render: Render) -> Render:
        RENDERERS.add(name, Renderer(name, render, filename))
        return render

    return add
