"""``hermes export-artifacts``: ZenML artifacts to files.

ZenML is imported only when the command runs (it takes seconds), never by ``hermes --help``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from hermes.cli.errors import EXIT_REJECTED
from hermes.cli.state import CliState, pass_state

#: What artifacts export to (JSON Lines and Parquet hold lists of documents).
ARTIFACT_FORMATS = ("json", "jsonl", "parquet")


def _quiet_zenml(debug: bool) -> None:
    """ZenML logs to stdout, where the summary goes: errors only, unless --debug or the user
    chose a verbosity. Its rich traceback hook is left off: Hermes reports errors itself."""
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "DEBUG" if debug else "ERROR")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")


@click.command("export-artifacts")
@click.option(
    "--artifact",
    "-a",
    "artifacts",
    multiple=True,
    metavar="NAME[:VERSION]",
    help="Artifact to export, latest version unless one is given (repeat for several).",
)
@click.option(
    "--run",
    metavar="NAME_OR_ID",
    help="Export the output artifacts of this pipeline run (name, id, or a prefix of either).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("exports/artifacts"),
    show_default=True,
    help="Folder for the files, one per artifact (<name>.<format>).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(ARTIFACT_FORMATS, case_sensitive=False),
    default="json",
    show_default=True,
    help="File format; jsonl and parquet need artifacts that are lists of documents.",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="PATTERN",
    help="With --run: only artifacts with this name or matching this glob (repeatable).",
)
@pass_state
def export_artifacts(
    state: CliState,
    artifacts: tuple[str, ...],
    run: str | None,
    output_dir: Path,
    file_format: str,
    filters: tuple[str, ...],
) -> None:
    """Export ZenML artifacts to files, by name or from a pipeline run.

    JSON holds any artifact: a dict as it is, anything else as {"artifact_data": ...}.
    JSON Lines and Parquet write one record per document of a list artifact. An artifact
    that cannot be found, loaded or written is reported and the others are still exported;
    the command then exits with 1.

    \b
    Examples:
      hermes export-artifacts -a raw_documents -a instruct_datasets:2
      hermes export-artifacts --run document_pipeline-2024_05_01 --format jsonl
      hermes export-artifacts --run 3f2a --filter '*_documents' --output-dir out/
    """
    if bool(artifacts) == bool(run):
        raise click.UsageError("Give either --artifact (one or more) or --run.")
    if filters and not run:
        raise click.UsageError("--filter selects artifacts of a --run.")
    _quiet_zenml(state.debug)
    from hermes.zenml_pipelines.artifact_export import export_artifacts, export_artifacts_from_run

    if run:
        result = export_artifacts_from_run(
            run_name=run,
            output_dir=output_dir,
            artifact_filter=list(filters) or None,
            file_format=file_format,
        )
    else:
        result = export_artifacts(list(artifacts), output_dir, file_format)

    from hermes.cli.summary import table

    title = f"Exported from run {result.run_name}" if result.run_name else "Exported"
    state.show(table(f"{title} to {output_dir}", ("artifact", "file"), result.exported.items()))
    for key, reason in result.failures.items():
        state.warn(f"Failed: {key}: {reason}")
    if result.failures:
        raise click.exceptions.Exit(EXIT_REJECTED)
