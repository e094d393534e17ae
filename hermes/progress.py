"""Progress reporting between the library and whoever shows it.

Library functions take a ``progress`` object and tell it what they do; they never draw anything.
The CLI passes one that draws a bar on a terminal; everything else gets :data:`NO_PROGRESS`.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Progress(Protocol):
    #: Whether totals are shown. Counting a collection can take a full scan (the embedded
    #: warehouse has no count metadata), so callers skip it when nobody looks.
    shows_total: bool

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        """A new task begins (``total`` when known, e.g. a collection's estimated count)."""

    def advance(self, count: int = 1) -> None:
        """``count`` more units of the current task are done."""

    def finish(self) -> None:
        """The current task is over (successfully or not)."""


class NullProgress:
    """Shows nothing."""

    shows_total = False

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


NO_PROGRESS: Progress = NullProgress()


def shows_total(progress: Progress) -> bool:
    """``progress.shows_total``, true for a progress object that does not say."""
    return getattr(progress, "shows_total", True)


class SharedProgress:
    """One task advanced from several threads (parallel parts or collections): the workers'
    own start/finish are ignored, their counts are added under a lock."""

    shows_total = False

    def __init__(self, inner: Progress) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        pass

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self._inner.advance(count)

    def finish(self) -> None:
        pass
