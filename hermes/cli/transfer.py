"""``hermes export`` and ``hermes import-data``: the warehouse to files and back."""

from __future__ import annotations

from pathlib import Path

import click

from hermes.cli.errors import EXIT_REJECTED
from hermes.cli.options import (
    DOCUMENT_TYPES,
    compression_option,
    format_option,
    library_parser,
    parse_list,
)
from hermes.cli.state import CliState, pass_state


@click.command("export")
@click.option(
    "--collection",
    "-c",
    "collections",
    multiple=True,
    metavar="NAME",
    help="Collection to export (repeat for several). Default: every collection.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("exports"),
    show_default=True,
    help="Folder for the files, one per collection (<collection>.<format>).",
)
@format_option(default="json", help="File format.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many documents each.")
@click.option(
    "--query",
    callback=library_parser("parse_query"),
    metavar="JSON",
    help='Filter in (Extended) JSON, e.g. \'{"platform": "medium"}\'. Parsed, never evaluated.',
)
@click.option(
    "--fields",
    callback=library_parser("parse_fields"),
    metavar="A,B",
    help="Only these fields (comma-separated; _id is always kept).",
)
@click.option(
    "--sort",
    callback=library_parser("parse_sort"),
    metavar="A,-B",
    help='Sort keys, "-" for descending: "created_at,-_id", "created_at:desc" or '
    "'{\"created_at\": -1}'.",
)
@click.option(
    "--json-format",
    type=click.Choice(["relaxed", "canonical"]),
    default="relaxed",
    show_default=True,
    help="Extended JSON flavour of json/jsonl files, CSV json() cells and Parquet Extended JSON "
    "text columns: relaxed reads as plain JSON; canonical keeps every numeric type explicit.",
)
@compression_option(help="Compress the files (.gz or .zst appended to the name).")
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Split each collection into this many ranges of _id, exported at once as part files "
    "(<collection>.part-0000.<format>...) listed in <collection>.parts.json.",
)
@click.option(
    "--neutralize-formulas",
    is_flag=True,
    help="CSV/TSV for spreadsheets: prefix cells starting with =, +, -, @ with a quote so "
    "they are not run as formulas. Lossy: such files no longer round-trip exactly.",
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@pass_state
def export(
    state: CliState,
    collections: tuple[str, ...],
    output_dir: Path,
    file_format: str,
    limit: int | None,
    query: dict | None,
    fields: dict | None,
    sort: list[tuple[str, int]] | None,
    json_format: str,
    compression: str | None,
    parallel: int,
    neutralize_formulas: bool,
    force: bool,
) -> None:
    """Export collections to files, one file per collection.

    Values keep their exact BSON types (ObjectId, dates, Int64, Decimal128, binary...):
    Extended JSON for json/jsonl, typed columns for Parquet, a typed header for CSV/TSV.
    Files appear complete or not at all. Existing files are an error unless --force.

    \b
    Examples:
      hermes export
      hermes export -c raw_documents -c chunks --format parquet --output-dir out/
      hermes export -c raw_documents --format jsonl --compression gzip \\
          --query '{"platform": "medium"}' --sort=-created_at --limit 100
    """
    from hermes.storage.warehouse import DataWarehouseExporter

    if neutralize_formulas and file_format not in ("csv", "tsv"):
        raise click.UsageError("--neutralize-formulas applies to --format csv or tsv only")
    format_options = {"neutralize_formulas": True} if neutralize_formulas else {}
    names = list(collections) or None
    exporter = DataWarehouseExporter(state.manager())
    with state.progress() as progress:
        results = exporter.export_all_collections(
            output_dir,
            file_format,
            collections=names,
            compression=compression,
            query=query,
            limit=limit,
            fields=fields,
            sort=sort,
            json_format=json_format,
            overwrite=force,
            parallel=parallel,
            progress=progress,
            **format_options,
        )
    from hermes.cli.summary import written_table

    state.show(written_table(f"Exported to {output_dir}", results))


def _collection_for(input_file: Path) -> str:
    """``exports/raw_documents.jsonl.gz`` (or ``raw_documents.parts.json``) -> ``raw_documents``."""
    from hermes.formats.base import split_compression
    from hermes.storage.parallel import part_set_name

    return part_set_name(input_file) or Path(split_compression(input_file)[0]).stem


@click.command("import-data")
@click.option(
    "--collection",
    metavar="NAME",
    help="Target collection (with --input-file). Default: the --document-type's collection, "
    "else the file name without its extensions.",
)
@click.option(
    "--input-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One file to import.",
)
@click.option(
    "--input-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of files, one per collection (<collection>.<format>), as export writes them.",
)
@format_option(help="File format. Default: from the file name.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Documents per bulk write.",
)
@click.option(
    "--mode",
    type=click.Choice(["insert", "upsert", "merge"]),
    default="insert",
    show_default=True,
    help="insert: new documents (duplicates are rejected); upsert: replace matching documents; "
    "merge: update the fields given, keep the others.",
)
@click.option(
    "--upsert-fields",
    callback=parse_list,
    metavar="A,B",
    help="Fields that identify a document for upsert/merge (default _id).",
)
@click.option("--drop", is_flag=True, help="Drop the collection before importing.")
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parts of a part set (given by its .parts.json or its first part) imported at once.",
)
@click.option(
    "--document-type",
    type=click.Choice(DOCUMENT_TYPES),
    help="Validate every document as this warehouse type: invalid ones are rejected, valid "
    "ones stored unchanged.",
)
@click.option(
    "--stop-on-error",
    is_flag=True,
    help="Stop at the first bad record (exit 2): the records before it are written, none after.",
)
@click.option(
    "--rejects-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected records go, with their location and reason (JSON Lines). "
    "Default: <input file>.rejects.jsonl. With --input-dir: a folder for one file per input.",
)
@pass_state
def import_data(
    state: CliState,
    collection: str | None,
    input_file: Path | None,
    input_dir: Path | None,
    file_format: str | None,
    batch_size: int,
    mode: str,
    upsert_fields: list[str] | None,
    drop: bool,
    parallel: int,
    document_type: str | None,
    stop_on_error: bool,
    rejects_file: Path | None,
) -> None:
    """Import files into the warehouse, with a rejects file.

    Documents go in batches of unordered bulk writes, and no record is lost silently:
    every record that cannot be read, validated or written is counted and written to the
    rejects file with its file position and reason; the command then exits with 1.

    \b
    Examples:
      hermes import-data --input-file exports/raw_documents.json
      hermes import-data --input-file new.jsonl --collection chunks --mode upsert
      hermes import-data --input-file posts.csv --document-type raw --rejects-file bad.jsonl
      hermes import-data --input-dir exports/ --drop
    """
    if (input_file is None) == (input_dir is None):
        raise click.UsageError("give exactly one of --input-file or --input-dir")
    if input_dir is not None and collection is not None:
        raise click.UsageError(
            "--collection goes with --input-file; with --input-dir, names come from the files"
        )
    from hermes.domain import DocumentType
    from hermes.storage.warehouse import DataWarehouseImporter

    doc_type = DocumentType.parse(document_type) if document_type else None
    options = {
        "file_format": file_format,
        "document_class": doc_type.model if doc_type else None,
        "batch_size": batch_size,
        "mode": mode,
        "upsert_fields": upsert_fields,
        "drop": drop,
        "stop_on_error": stop_on_error,
        "rejects_file": rejects_file,
        "parallel": parallel,
    }
    importer = DataWarehouseImporter(state.manager())
    with state.progress() as progress:
        if input_file is not None:
            target = collection or (doc_type.collection_name if doc_type else None)
            reports = [
                importer.import_collection(
                    target or _collection_for(input_file), input_file, progress=progress, **options
                )
            ]
        else:
            reports = importer.import_all_collections(input_dir, progress=progress, **options)
    from hermes.cli.summary import imported_table

    state.show(imported_table("Imported", reports))
    report_rejects(state, reports)


def report_rejects(state: CliState, reports: list) -> None:
    """Name the rejects files on stderr and exit with 1 when any record was rejected."""
    rejected = [r for r in reports if r.rejected]
    if not rejected:
        return
    for report in rejected:
        state.warn(
            f"{report.rejected:,} record(s) of {report.collection} rejected; "
            f"see {report.rejects_file or 'the errors above'}"
        )
    click.get_current_context().exit(EXIT_REJECTED)
