"""Progress display for long steps (rich): the current stage and a bar with ETA for training steps."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichProgress:
    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self.task: Any = None

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def stage(self, candidate: str, what: str) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        self.console.print(
            f"[{time.strftime('%H:%M:%S')}] {candidate}: {what}", highlight=False)
        self.label = f"{candidate}: {what.split(' (')[0]}"

    def step(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)
