"""A rich progress bar implementing :class:`hermes.progress.Progress`, drawn on stderr.

One bar per task the library starts (a collection, a file): what is done out of the total,
the rate and the time left. Tasks counted in bytes (file reads) show sizes and bytes per second.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def _amount(value: float, unit: str) -> str:
    return decimal(int(value)) if unit == "bytes" else f"{int(value):,}"


class _DoneColumn(ProgressColumn):
    """``1,200/5,000 docs`` or ``1.2 MB/5.0 MB``."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "docs")
        done = _amount(task.completed, unit)
        total = "?" if task.total is None else _amount(task.total, unit)
        suffix = "" if unit == "bytes" else f" {unit}"
        return Text(f"{done}/{total}{suffix}", style="progress.download")


class _RateColumn(ProgressColumn):
    """``3,400 docs/s`` or ``12.5 MB/s``."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("", style="progress.data.speed")
        unit = task.fields.get("unit", "docs")
        rate = f"{decimal(int(speed))}/s" if unit == "bytes" else f"{int(speed):,} {unit}/s"
        return Text(rate, style="progress.data.speed")


class RichProgress:
    """Draws the library's progress on stderr; use as a context manager around one command."""

    shows_total = True

    def __init__(self, console: Console | None = None) -> None:
        self._bars = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            _DoneColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()
        self._bars.stop()

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        self.finish()
        self._task = self._bars.add_task(label, total=total, unit=unit)

    def advance(self, count: int = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, count)

    def finish(self) -> None:
        """Close the current bar at what was done (a total may have been an estimate)."""
        if self._task is None:
            return
        done = next(t.completed for t in self._bars.tasks if t.id == self._task)
        self._bars.update(self._task, total=done)
        self._bars.stop_task(self._task)
        self._task = None
