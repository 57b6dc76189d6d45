"""The leaderboard rendered into a fixed-width, colourless console equals the golden text."""
from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from reports.terminal import render
from tests.reports.sample import sample_results

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.txt"


def rendered(width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    render(sample_results(), console)
    return console.file.getvalue()


def test_leaderboard_matches_golden_text():
    text = rendered(120)
    if os.environ.get("SFTBENCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_plain_ascii_and_width_aware():
    for width in (80, 120):
        text = rendered(width)
        assert text.isascii(), "box characters must survive CI logs"
        assert max(len(line) for line in text.splitlines()) <= width
    assert "smollm2-135m: FAIL support_intents.accuracy >= 0.7 (value 0.6800 misses >= 0.7)" in rendered(120)
