"""What every command shares: the global options, the warehouse connection, progress, output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from hermes.progress import Progress
    from hermes.storage.database import MongoDBManager


def stream_is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@dataclass
class CliState:
    """The group's options, handed to every command with :data:`pass_state`."""

    uri: str | None = None
    database: str | None = None
    quiet: bool = False
    debug: bool = False
    _manager: MongoDBManager | None = field(default=None, repr=False)

    def manager(self) -> MongoDBManager:
        """The warehouse connection (opened on first use, closed when the command ends)."""
        if self._manager is None:
            from hermes.storage.database import MongoDBManager

            self._manager = MongoDBManager(
                self.uri, self.database, on_embedded_start=self._starting
            )
            click.get_current_context().call_on_close(self._manager.close)
        return self._manager

    def _starting(self, data_dir: Path) -> None:
        if not self.quiet:
            click.echo(
                f"Starting the embedded warehouse (data in {data_dir}); "
                "a large one takes a minute to open...",
                err=True,
            )

    @contextlib.contextmanager
    def progress(self) -> Iterator[Progress]:
        """A progress bar on stderr when it is a terminal and not ``--quiet``; else nothing."""
        if self.quiet or not stream_is_terminal(sys.stderr):
            from hermes.progress import NO_PROGRESS

            yield NO_PROGRESS
            return
        from hermes.cli.progress import RichProgress

        with RichProgress() as bar:
            yield bar

    def console(self) -> Console:
        """Where summaries go: stdout, wide enough not to wrap file names when piped."""
        from rich.console import Console

        terminal = stream_is_terminal(sys.stdout)
        return Console(highlight=False, width=None if terminal else 200, soft_wrap=not terminal)

    def show(self, renderable: Any) -> None:
        """Print a summary (a rich table or text) on stdout, unless ``--quiet``."""
        if not self.quiet:
            self.console().print(renderable)

    def warn(self, message: str) -> None:
        """A line on stderr that matters even with ``--quiet`` (rejected records, say)."""
        click.echo(message, err=True)


pass_state = click.make_pass_decorator(CliState, ensure=True)
