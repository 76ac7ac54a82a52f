"""The command line's progress display: one line per stage, with a percent bar through long recordings.

It is a `progress(stage, fraction)` callback (see `eventsep.pipeline.Progress`) drawn with rich on
stderr while a terminal is there to see it; when stderr is piped or `--quiet` is given it draws
nothing at all.
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn


def _parallel(first: str, second: str) -> bool:
    """Stages that run side by side (the separators) stay open together."""
    return "separate (" in first and "separate (" in second


class ProgressDisplay:
    """Use as a context manager; call it with (stage, fraction): fraction None when a stage starts, then
    0 to 1. A stage that starts removes the ones before it (except parallel ones), so the display shows
    what runs now however many recordings a batch has."""

    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = not quiet and self.console.is_terminal
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._bars: Progress | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._bars = Progress(SpinnerColumn(), TextColumn("{task.description:<22}"), BarColumn(),
                                  TaskProgressColumn(), TimeElapsedColumn(), console=self.console, transient=True)
            self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()

    def __call__(self, stage: str, fraction: float | None) -> None:
        if self._bars is None:
            return
        with self._lock:
            if stage not in self._tasks:
                for other in [other for other in self._tasks if not _parallel(other, stage)]:
                    self._bars.remove_task(self._tasks.pop(other))
                self._tasks[stage] = self._bars.add_task(stage, total=None)
            if fraction is not None:
                self._bars.update(self._tasks[stage], total=1, completed=min(max(fraction, 0.0), 1.0))
