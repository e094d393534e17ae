"""``hermes backup``, ``restore``, ``migrate`` and ``verify``: whole-warehouse copies as folders."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hermes.cli.options import compression_option, format_option
from hermes.cli.state import CliState, pass_state, stream_is_terminal
from hermes.cli.transfer import report_rejects

_BACKUP_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def _warehouse_manager(state: CliState):
    from hermes.storage.warehouse import DataWarehouseManager

    return DataWarehouseManager(state.manager())


@click.command("backup")
@click.option(
    "--backup-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create. Default: backups/<UTC timestamp>.",
)
@format_option(default="json", help="File format of the collections.")
@click.option(
    "--collections",
    "--collection",
    "-c",
    "collections",
    multiple=True,
    metavar="NAME",
    help="Collection to back up (repeat for several). Default: every collection.",
)
@compression_option(help="Compress the collection files.")
@click.option("--force", is_flag=True, help="Replace an existing backup folder of that name.")
@pass_state
def backup(
    state: CliState,
    backup_dir: Path | None,
    file_format: str,
    collections: tuple[str, ...],
    compression: str | None,
    force: bool,
) -> None:
    """Back up the warehouse to a folder (files + manifest).

    One file per collection, then manifest.json.

    The manifest (written last) records each file's document count, size, SHA-256, indexes
    and collection options; `hermes verify` and `hermes restore` check it.

    \b
    Examples:
      hermes backup
      hermes backup --backup-dir backups/before-cleanup --format parquet
      hermes backup --collections raw_documents --compression zstd
    """
    manager = _warehouse_manager(state)
    target = backup_dir or manager.default_backup_dir()
    with state.progress() as progress:
        result = manager.backup(
            target,
            file_format,
            list(collections) or None,
            compression=compression,
            overwrite=force,
            progress=progress,
        )
    from hermes.cli.summary import written_table

    state.show(
        written_table(f"Backup in {result.path} (manifest {result.manifest})", result.results)
    )


def _confirm_restore(state: CliState, backup_dir: Path, mode: str) -> None:
    """Ask before replacing data; without a terminal to ask on, refuse (exit 2)."""
    from hermes.errors import ConfirmationRequiredError

    manager = state.manager()
    where = f"database {manager.database_name!r} of the {manager.location}"
    effect = "replaces the backed-up collections in" if mode == "replace" else "merges into"
    if not stream_is_terminal(sys.stdin):
        raise ConfirmationRequiredError(
            f"restoring {backup_dir} {effect} {where}; pass --confirm to go ahead "
            "(there is no terminal to ask on), or --dry-run to check it first"
        )
    if not click.confirm(f"Restoring {backup_dir} {effect} {where}. Go ahead?", err=True):
        raise ConfirmationRequiredError("restore cancelled; nothing was changed")


@click.command("restore")
@click.option("--backup-dir", type=_BACKUP_DIR, required=True, help="The backup folder.")
@format_option(
    help="The format the backup's files must be in: refused if the manifest records another. "
    "Default: the manifest's."
)
@click.option(
    "--collections",
    "--collection",
    "-c",
    "collections",
    multiple=True,
    metavar="NAME",
    help="Collection to restore (repeat for several). Default: every one in the backup.",
)
@click.option(
    "--mode",
    type=click.Choice(["replace", "merge"]),
    default="replace",
    show_default=True,
    help="replace: drop each collection and load the backup; merge: upsert into what is there.",
)
@click.option("--confirm", is_flag=True, help="Do not ask before changing the warehouse.")
@click.option("--dry-run", is_flag=True, help="Verify the backup and say what would happen.")
@pass_state
def restore(
    state: CliState,
    backup_dir: Path,
    file_format: str | None,
    collections: tuple[str, ...],
    mode: str,
    confirm: bool,
    dry_run: bool,
) -> None:
    """Restore a backup into the warehouse.

    The backup is checked against its manifest before anything is written.

    Asks first when run on a terminal; elsewhere (scripts, CI) it needs --confirm.

    \b
    Examples:
      hermes restore --backup-dir backups/20250101T120000Z --dry-run
      hermes restore --backup-dir backups/20250101T120000Z --confirm
      hermes --database staging restore --backup-dir backups/20250101T120000Z \\
          --mode merge --confirm
    """
    if not (confirm or dry_run):
        _confirm_restore(state, backup_dir, mode)
    with state.progress() as progress:
        report = _warehouse_manager(state).restore(
            backup_dir,
            file_format,
            list(collections) or None,
            mode=mode,
            confirm=True,
            dry_run=dry_run,
            progress=progress,
        )
    from hermes.cli.summary import imported_table, restore_plan_table

    if dry_run:
        state.show(
            restore_plan_table(f"Dry run: {backup_dir} is intact; nothing was written", report)
        )
        return
    state.show(imported_table(f"Restored {backup_dir} into {report.database!r}", report.reports))
    report_rejects(state, report.reports)


@click.command("migrate")
@click.option("--source-dir", type=_BACKUP_DIR, required=True, help="Folder of files to convert.")
@click.option(
    "--target-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the converted files.",
)
@format_option("--source-format", help="Format of the source files. Default: from their names.")
@format_option("--target-format", required=True, help="Format to write.")
@click.option(
    "--force", is_flag=True, help="Overwrite files (or a backup) already in --target-dir."
)
@pass_state
def migrate(
    state: CliState,
    source_dir: Path,
    target_dir: Path,
    source_format: str | None,
    target_format: str,
    force: bool,
) -> None:
    """Convert files (or a backup) to another format.

    A backup folder (with manifest.json) is verified, then converted into a new backup
    with a fresh manifest.

    No warehouse is needed: documents stream from file to file with their exact types.

    \b
    Examples:
      hermes migrate --source-dir exports/ --target-dir parquet/ --target-format parquet
      hermes migrate --source-dir backups/20250101T120000Z --target-dir jsonl/ \\
          --source-format json --target-format jsonl
    """
    with state.progress() as progress:
        result = _warehouse_manager(state).migrate(
            source_dir, target_dir, source_format, target_format, overwrite=force, progress=progress
        )
    from hermes.cli.summary import written_table

    state.show(written_table(f"Converted into {target_dir}", result.results))


@click.command("verify")
@click.option("--backup-dir", type=_BACKUP_DIR, required=True, help="The backup folder.")
@pass_state
def verify(state: CliState, backup_dir: Path) -> None:
    """Check a backup against its manifest.

    Every file must be present, with the checksum and count the manifest records.

    Exits with 0 when the backup is intact, 2 when it is not (each problem on stderr).

    \b
    Example:
      hermes verify --backup-dir backups/20250101T120000Z
    """
    report = _warehouse_manager(state).verify(backup_dir)
    if not report.ok:
        for problem in report.problems:
            state.warn(f"Problem: {problem}")
        from hermes.errors import IntegrityError

        raise IntegrityError(
            f"backup {backup_dir} does not match its manifest ({len(report.problems)} problem(s))"
        )
    from hermes.cli.summary import verified_table

    state.show(verified_table(f"Backup {backup_dir} is intact", report.collections))
