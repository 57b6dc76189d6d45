"""Progress display for long steps (rich): a line per stage, and a bar with ETA for every loop that reports
`step(done, total)` (GGUF conversion, training steps, scoring, generation, probing)."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichProgress:
    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self.task: Any = None
        self.label = ""
        self.done = 0

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def stage(self, candidate: str, what: str) -> None:
        self._drop_bar()
        self.console.print(f"[{time.strftime('%H:%M:%S')}] {candidate}: {what}", highlight=False, markup=False)
        self.label = f"{candidate}: {what.split(' (')[0]}"

    def step(self, done: int, total: int) -> None:
        """One loop's progress. A count that goes back down is a new pass within the same stage (the second
        side of the bias pairs, reference losses after generation): it gets a fresh bar, so the ETA comes
        from that pass's own speed."""
        if self.task is not None and done < self.done:
            self._drop_bar()
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)
        self.done = done

    def _drop_bar(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task, self.done = None, 0
