"""``hermes status``, ``load-sample`` and ``warehouse stop``: looking after the warehouse."""

from __future__ import annotations

from pathlib import Path

import click

from hermes.cli.state import CliState, pass_state


@click.command("status")
@click.option(
    "--backups-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("backups"),
    show_default=True,
    help="Where to look for the newest backup.",
)
@pass_state
def status(state: CliState, backups_root: Path) -> None:
    """Show the warehouse, its collections, the newest backup.

    Where the warehouse is (credentials masked), each collection's documents and size.

    \b
    Examples:
      hermes status
      hermes --uri mongodb://localhost:27017 --database twin status
    """
    from hermes.storage.warehouse import DataWarehouseManager

    report = DataWarehouseManager(state.manager()).status(backups_root)
    if state.quiet:
        return
    from hermes.cli.summary import size_text, table

    console = state.console()
    console.print(f"Warehouse: {report.location}")
    console.print(f"Database:  {report.database}")
    console.print(
        table(
            "Collections",
            ("collection", "documents", "size"),
            ((c.name, c.count, size_text(c.size)) for c in report.collections),
        )
    )
    if report.newest_backup is None:
        console.print(f"Newest backup: none under {backups_root}")
    else:
        created = (
            f" (created {report.newest_backup_created})" if report.newest_backup_created else ""
        )
        console.print(f"Newest backup: {report.newest_backup}{created}")


@click.command("load-sample")
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Number of raw documents; cleaned documents, chunks and embedded chunks follow.",
)
@click.option("--force", is_flag=True, help="Replace sample collections that already hold data.")
@pass_state
def load_sample(state: CliState, size: int, force: bool) -> None:
    """Load the deterministic sample corpus, to try Hermes out.

    Fills raw_documents, cleaned_documents, chunks and embedded_chunks with the same
    documents every time (Unicode text, nested content, dates, 384-dimension embeddings).

    \b
    Examples:
      hermes load-sample
      hermes --database playground load-sample --size 1000 --force
    """
    from hermes.sample import COLLECTIONS, load_corpus

    manager = state.manager()
    db = manager.get_database()
    if not force:
        filled = [name for name in COLLECTIONS if db[name].estimated_document_count()]
        if filled:
            from hermes.errors import ConfirmationRequiredError

            raise ConfirmationRequiredError(
                f"{', '.join(filled)} already hold documents in database "
                f"{manager.database_name!r}; pass --force to replace them"
            )
    counts = load_corpus(db, raw_count=size)
    from hermes.cli.summary import table

    state.show(
        table(
            f"Sample corpus in database {manager.database_name!r} ({manager.location})",
            ("collection", "documents"),
            counts.items(),
        )
    )


@click.group("warehouse")
def warehouse() -> None:
    """Manage the embedded warehouse server.

    Hermes runs it when no MONGODB_URI is set.

    \b
    Example:
      hermes warehouse stop
    """


@warehouse.command("stop")
@pass_state
def stop(state: CliState) -> None:
    """Stop the embedded warehouse server of HERMES_HOME (the next command starts it again).

    \b
    Example:
      HERMES_HOME=~/.hermes hermes warehouse stop
    """
    from hermes.config import get_settings
    from hermes.storage.embedded import EmbeddedWarehouse

    home = get_settings().hermes_home
    was_running = EmbeddedWarehouse(home).stop()
    if was_running:
        state.show(f"Stopped the embedded warehouse in {home}.")
    else:
        state.show(f"No embedded warehouse was running in {home}.")
