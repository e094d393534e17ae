"""Entry point of the ``hermes`` command: the group, its global options and its error handling.

Nothing heavy is imported here (no pymongo, pyarrow, rich, pydantic, ZenML): ``hermes --help``
must answer at once. Each command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass

import click

from hermes import __version__
from hermes.cli.admin import load_sample, status, warehouse
from hermes.cli.backup import backup, migrate, restore, verify
from hermes.cli.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, describe_error, uris_in_use
from hermes.cli.state import CliState
from hermes.cli.transfer import export, import_data


@dataclass(frozen=True)
class LazyCommand:
    """A command living in a module that is imported only when the command runs."""

    module: str
    attribute: str
    short_help: str

    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except ImportError:
            return False

    def load(self) -> click.Command:
        return getattr(importlib.import_module(self.module), self.attribute)


LAZY_COMMANDS = {
    "export-artifacts": LazyCommand(
        "hermes.cli.zenml_commands", "export_artifacts", "Export ZenML pipeline artifacts to files."
    ),
}


class HermesGroup(click.Group):
    """A group that loads optional commands lazily and turns every error into one line + exit code.

    Errors are handled here once, for every command: Hermes errors exit with their own code,
    driver errors with 3 (credentials masked), Ctrl-C with 130, anything else with 70.
    ``--debug`` adds the traceback.
    """

    def _lazy(self) -> dict[str, LazyCommand]:
        return {n: c for n, c in LAZY_COMMANDS.items() if n not in self.commands and c.available()}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self._lazy()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self._lazy():
            command = LAZY_COMMANDS[cmd_name].load()
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands without importing the lazy ones (ZenML takes seconds to import)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        lazy = self._lazy()
        rows = []
        for name in names:
            if name in lazy:
                rows.append((name, lazy[name].short_help))
                continue
            command = self.commands[name]
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("\nInterrupted.", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if ctx.params.get("debug"):
                traceback.print_exc(file=sys.stderr)
            code, message = describe_error(exc, uris_in_use(ctx.params.get("uri")))
            click.echo(f"Error: {message}", err=True)
            raise click.exceptions.Exit(code) from None


@click.group("hermes", cls=HermesGroup, epilog=EXIT_CODES_HELP)
@click.option(
    "--uri",
    metavar="URI",
    help="MongoDB URI of the warehouse (overrides MONGODB_URI). Default: the embedded warehouse.",
)
@click.option(
    "--database",
    metavar="NAME",
    help="Database to use (overrides HERMES_DATABASE; default hermes).",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Print nothing on success: no progress, no summary."
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs on errors.")
@click.version_option(__version__, prog_name="hermes")
@click.pass_context
def cli(
    ctx: click.Context, uri: str | None, database: str | None, quiet: bool, debug: bool
) -> None:
    """Hermes: lossless, streaming export/import for the LLM-twin data warehouse.

    Moves the warehouse's collections (raw_documents, cleaned_documents, chunks,
    embedded_chunks) to and from JSON, JSON Lines, CSV/TSV and Parquet files, and backs
    it up and restores it. With no MONGODB_URI, Hermes runs its own embedded warehouse
    under HERMES_HOME (default ~/.hermes).

    \b
    Try it:
      hermes load-sample
      hermes export --format parquet --output-dir exports/
      hermes backup && hermes verify --backup-dir backups/<timestamp>
    """
    if debug:  # Hermes' own debug logs; the driver's heartbeat chatter stays out
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        logging.getLogger("hermes").setLevel(logging.DEBUG)
    ctx.obj = CliState(uri=uri, database=database, quiet=quiet, debug=debug)


for _command in (
    export,
    import_data,
    backup,
    restore,
    migrate,
    verify,
    status,
    load_sample,
    warehouse,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="hermes")
