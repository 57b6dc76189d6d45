"""A candidate whose units ran on a GPU shows its GPU peak and GPU-seconds in every cost table; a CPU-only run shows
no GPU columns (issue 16)."""
from __future__ import annotations

from rich.console import Console

from reports.html import leaderboard
from reports.markdown import render_markdown
from reports.terminal import cost_table
from tests.reports.sample import sample_results, typed


def _with_gpu(results):
    """The results as a run on a GPU writes them: the cost keys in results.json, read back into the model."""
    data = results.to_json()
    data["candidates"][0]["cost"] |= {"peak_gpu_mb": 20480.4, "gpu_seconds": 731.6}
    return type(results).from_json(data)


def _text(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_gpu_columns_appear_only_when_a_unit_ran_on_a_gpu():
    cpu = typed(sample_results())
    gpu = _with_gpu(cpu)
    assert cpu.candidates[0].cost.gpu_seconds is None  # the sample is a CPU run
    for render in (lambda r: _text(cost_table(r)), leaderboard, render_markdown):
        assert "GPU" not in render(cpu)
        shown = render(gpu)
        assert "GPU-s" in shown and "20480" in shown and "732" in shown
    assert gpu.to_json()["candidates"][0]["cost"]["gpu_seconds"] == 731.6
