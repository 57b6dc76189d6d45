"""Progress display for long steps: a line per stage, and for every loop that reports `step(done, total, info)`
(GGUF conversion, training steps, scoring, generation, probing) a bar with ETA on a terminal (RichProgress), or
without one (a CI log) a line at most every 30 s or 10% of the loop, and its last (LineProgress). Training steps
carry `info`: the epoch's mean loss so far, tokens and training seconds, for loss and tokens/s. Every line printed
is also logged (logger `sftbench.progress`), so `--log-file` keeps it."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reports.logs import PRINTED


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
        _print(self.console, f"{candidate}: {what}")
        self.label = f"{candidate}: {what.split(' (')[0]}"

    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None:
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


log = logging.getLogger("sftbench.progress")


def _print(console: Console, line: str) -> None:
    # soft_wrap: a line is never cut at the console width (80 columns when it is not a terminal)
    console.print(f"[{time.strftime('%H:%M:%S')}] {line}", highlight=False, markup=False, soft_wrap=True)
    log.info(line, extra=PRINTED)


class LineProgress:
    """Progress as plain lines, for a log without a terminal: a line per stage, and per loop a line when
    `every_s` seconds or `every_fraction` of the loop have passed since the last one (whichever comes first), and
    when it ends. `clock` is injectable for tests."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic, every_s: float = 30.0,
                 every_fraction: float = 0.1):
        self.console, self.clock, self.every_s, self.every_fraction = console, clock, every_s, every_fraction
        self.label, self.looping = "", False
        self.done, self.start, self.last_at, self.last_done = 0, 0.0, 0.0, 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def stage(self, candidate: str, what: str) -> None:
        _print(self.console, f"{candidate}: {what}")
        self.label, self.looping = f"{candidate}: {what.split(' (')[0]}", False

    def step(self, done: int, total: int, info: dict[str, float] | None = None) -> None:
        now = self.clock()
        if not self.looping or done < self.done:  # a new loop (or a second pass of one): its own speed and ETA
            self.start, self.last_at, self.last_done, self.looping = now, now, 0, True
        self.done = done
        due = now - self.last_at >= self.every_s or done - self.last_done >= self.every_fraction * total
        if done >= total or due:
            self.last_at, self.last_done = now, done
            _print(self.console, f"{self.label} {step_line(done, total, now - self.start, info)}")


def step_line(done: int, total: int, elapsed: float, info: dict[str, float] | None = None) -> str:
    """`12/40 (30%), loss 1.234, 850 tokens/s, ETA 1m05s` (loss and tokens/s for training steps)."""
    parts = [f"{done}/{total} ({100 * done // max(total, 1)}%)"]
    if info and "loss" in info:
        parts.append(f"loss {info['loss']:.4f}")
    if info and info.get("seconds"):
        parts.append(f"{info['tokens'] / info['seconds']:.0f} tokens/s")
    if done >= total:
        parts.append(f"done in {clock_time(elapsed)}")
    elif done and elapsed > 0:  # (the first step only starts the clock)
        parts.append(f"ETA {clock_time(elapsed / done * (total - done))}")
    return ", ".join(parts)


def clock_time(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s" if rest >= 60 else f"{rest}s"
