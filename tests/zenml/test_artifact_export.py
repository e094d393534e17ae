"""Exporting ZenML artifacts to files, on a real local ZenML store.

The demo pipeline ran twice (see ``conftest.py``): versions 1 and 2 of ``raw_documents``,
``cleaned_documents``, ``instruct_datasets`` and ``document_lineage`` (a cyclic graph, which no
JSON export can hold). Every export is read back and compared with the artifact as ZenML loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hermes.domain.documents import CleanedDocument, RawDocument
from hermes.formats import iter_documents
from hermes.formats.base import sha256_file
from hermes.zenml_pipelines.artifact_export import (
    ArtifactLookupError,
    export_artifacts,
    export_artifacts_from_run,
)
from tests.zenml.conftest import DEMO_COUNT, DemoRuns

# ZenML reads fields Pydantic deprecated; not ours to fix.
pytestmark = [pytest.mark.zenml, pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")]

MODELS = {"raw_documents": RawDocument, "cleaned_documents": CleanedDocument}


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def json_models(path: Path, model: type) -> list[Any]:
    """The documents of a JSON export of a list artifact, as models."""
    return [model.from_mongo(record) for record in read_json(path)["artifact_data"]]


def file_models(path: Path, model: type) -> list[Any]:
    """The documents of a JSON Lines or Parquet export, as models."""
    return [model.from_mongo(record) for record in iter_documents(path)]


def files_in(folder: Path) -> set[str]:
    """Every file name in a folder, hidden ones (an atomic write's temporary file) included."""
    return {path.name for path in folder.iterdir()}


# ------------------------------------------------------------------------------------------
# By name (no pipeline run)
# ------------------------------------------------------------------------------------------


def test_a_name_alone_exports_the_latest_version(demo_runs: DemoRuns, tmp_path: Path) -> None:
    result = export_artifacts(["raw_documents"], tmp_path)

    assert result.failures == {}
    assert result.exported == {"raw_documents": tmp_path / "raw_documents.json"}
    exported = json_models(tmp_path / "raw_documents.json", RawDocument)
    assert exported == demo_runs.value("raw_documents", 2)
    assert exported != demo_runs.value("raw_documents", 1)
    assert len(exported) == DEMO_COUNT


def test_name_and_version_export_that_version_and_keep_both_files(
    demo_runs: DemoRuns, tmp_path: Path
) -> None:
    result = export_artifacts(["cleaned_documents:1", "cleaned_documents:2"], tmp_path)

    assert result.exported == {
        "cleaned_documents:1": tmp_path / "cleaned_documents-v1.json",
        "cleaned_documents:2": tmp_path / "cleaned_documents-v2.json",
    }
    for version in (1, 2):
        exported = json_models(tmp_path / f"cleaned_documents-v{version}.json", CleanedDocument)
        assert exported == demo_runs.value("cleaned_documents", version)


def test_a_dict_artifact_exports_as_the_dict_itself(demo_runs: DemoRuns, tmp_path: Path) -> None:
    export_artifacts(["instruct_datasets:1"], tmp_path)

    assert read_json(tmp_path / "instruct_datasets.json") == demo_runs.value("instruct_datasets", 1)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_document_lists_export_one_record_per_document(
    demo_runs: DemoRuns, tmp_path: Path, file_format: str
) -> None:
    result = export_artifacts(["raw_documents", "cleaned_documents"], tmp_path, file_format)

    assert result.failures == {}
    for name, model in MODELS.items():
        path = tmp_path / f"{name}.{file_format}"
        assert result.exported[name] == path
        assert file_models(path, model) == demo_runs.value(name)


def test_a_dict_artifact_cannot_be_written_as_document_records(
    demo_runs: DemoRuns, tmp_path: Path
) -> None:
    result = export_artifacts(["instruct_datasets", "raw_documents"], tmp_path, "jsonl")

    assert "not a list of documents" in result.failures["instruct_datasets"]
    assert files_in(tmp_path) == {"raw_documents.jsonl"}


def test_an_artifact_that_fails_does_not_stop_the_others(
    demo_runs: DemoRuns, tmp_path: Path
) -> None:
    result = export_artifacts(
        ["document_lineage", "no_such_artifact", "raw_documents:99", "instruct_datasets"],
        tmp_path,
    )

    assert result.exported == {"instruct_datasets": tmp_path / "instruct_datasets.json"}
    assert "reference cycle" in result.failures["document_lineage"]
    assert "No artifact 'no_such_artifact'" in result.failures["no_such_artifact"]
    assert "No version '99' of artifact 'raw_documents'" in result.failures["raw_documents:99"]
    assert files_in(tmp_path) == {"instruct_datasets.json"}  # nothing half-written


# ------------------------------------------------------------------------------------------
# From a past run
# ------------------------------------------------------------------------------------------


def test_a_run_found_by_name_exports_its_own_versions(demo_runs: DemoRuns, tmp_path: Path) -> None:
    result = export_artifacts_from_run(run_name=demo_runs.first.name, output_dir=tmp_path)

    assert result.run_name == demo_runs.first.name
    assert set(result.exported) == {"raw_documents", "cleaned_documents", "instruct_datasets"}
    assert set(result.failures) == {"document_lineage"}
    for name, model in MODELS.items():  # version 1, although version 2 is the latest
        assert json_models(result.exported[name], model) == demo_runs.value(name, 1)
    assert read_json(result.exported["instruct_datasets"]) == demo_runs.value(
        "instruct_datasets", 1
    )


def test_a_run_found_by_id_or_by_a_prefix_of_either(demo_runs: DemoRuns, tmp_path: Path) -> None:
    second = demo_runs.second
    references = {
        "id": {"run_id": str(second.id)},
        "id prefix": {"run_id": str(second.id)[:13]},
        "name prefix": {"run_name": second.name[:-1]},
    }
    for label, reference in references.items():
        result = export_artifacts_from_run(
            **reference, output_dir=tmp_path / label, artifact_filter="raw_documents"
        )
        assert result.run_name == second.name, label
        exported = json_models(result.exported["raw_documents"], RawDocument)
        assert exported == demo_runs.value("raw_documents", 2), label


def test_a_filter_takes_names_and_globs_and_reports_what_matches_nothing(
    demo_runs: DemoRuns, tmp_path: Path
) -> None:
    result = export_artifacts_from_run(
        run_id=str(demo_runs.second.id),
        output_dir=tmp_path,
        artifact_filter=["*_documents", "instruct_datasets", "missing*"],
        file_format="jsonl",
    )

    assert set(result.exported) == {"raw_documents", "cleaned_documents"}
    assert "not a list of documents" in result.failures["instruct_datasets"]
    assert "matches it" in result.failures["missing*"]


def test_an_unknown_or_ambiguous_run_is_a_clear_error(demo_runs: DemoRuns, tmp_path: Path) -> None:
    with pytest.raises(ArtifactLookupError, match="No pipeline run"):
        export_artifacts_from_run(run_name="no-such-run", output_dir=tmp_path)

    with pytest.raises(ArtifactLookupError, match="give more of it") as error:
        export_artifacts_from_run(run_name="document_pipeline", output_dir=tmp_path)
    assert demo_runs.first.name in str(error.value)
    assert demo_runs.second.name in str(error.value)


# ------------------------------------------------------------------------------------------
# As ZenML pipelines
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_export(demo_runs: DemoRuns, tmp_path_factory: pytest.TempPathFactory):
    """One run of ``artifact_export_pipeline``: latest raw documents, cleaned version 1."""
    from hermes.zenml_pipelines.artifact_export import artifact_export_pipeline

    output_dir = tmp_path_factory.mktemp("pipeline-export")
    run = artifact_export_pipeline(
        artifact_names=["raw_documents", "cleaned_documents:1"], output_dir=str(output_dir)
    )
    return run, output_dir


def test_the_export_pipeline_writes_one_json_file_per_artifact(
    demo_runs: DemoRuns, pipeline_export
) -> None:
    run, output_dir = pipeline_export

    assert files_in(output_dir) == {"raw_documents.json", "cleaned_documents.json"}
    raw = json_models(output_dir / "raw_documents.json", RawDocument)
    assert raw == demo_runs.value("raw_documents", 2)
    cleaned = json_models(output_dir / "cleaned_documents.json", CleanedDocument)
    assert cleaned == demo_runs.value("cleaned_documents", 1)


def test_the_serializing_step_records_what_it_serialized(pipeline_export) -> None:
    from zenml.client import Client

    run, output_dir = pipeline_export
    steps = Client().get_pipeline_run(run.id).steps
    output = steps["serialize_0_raw_documents"].outputs["serialized_artifact"][0]

    metadata = output.run_metadata
    assert metadata["artifact_name"] == "raw_documents"
    assert metadata["python_type"] == "builtins.list"
    assert metadata["record_count"] == DEMO_COUNT
    serialized = read_json(output_dir / "raw_documents.json")
    assert metadata["serialized_size_bytes"] == len(orjson.dumps(serialized))
    assert output.load() == serialized


@pytest.fixture(scope="module")
def multi_export(demo_runs: DemoRuns, tmp_path_factory: pytest.TempPathFactory):
    """One run of ``multi_artifact_export_pipeline``, one file and format per artifact."""
    from hermes.zenml_pipelines.artifact_export import multi_artifact_export_pipeline

    output_dir = tmp_path_factory.mktemp("multi-export")
    configs = [
        {"name": "raw_documents", "version": 1, "output_file": str(output_dir / "raw.jsonl")},
        {"name": "cleaned_documents", "output_file": str(output_dir / "cleaned.parquet")},
        {
            "name": "instruct_datasets",
            "output_file": str(output_dir / "datasets.out"),
            "format": "json",
        },
    ]
    return multi_artifact_export_pipeline(export_configs=configs), output_dir


def test_the_multi_export_pipeline_writes_each_artifact_in_its_format(
    demo_runs: DemoRuns, multi_export
) -> None:
    run, output_dir = multi_export

    assert file_models(output_dir / "raw.jsonl", RawDocument) == demo_runs.value("raw_documents", 1)
    assert file_models(output_dir / "cleaned.parquet", CleanedDocument) == demo_runs.value(
        "cleaned_documents", 2
    )
    assert read_json(output_dir / "datasets.out") == demo_runs.value("instruct_datasets", 2)


def test_each_export_step_records_the_file_it_wrote(multi_export) -> None:
    from zenml.client import Client

    run, output_dir = multi_export
    steps = Client().get_pipeline_run(run.id).steps

    metadata = steps["export_1_cleaned_documents"].run_metadata
    path = output_dir / "cleaned.parquet"
    assert metadata["output_file"] == str(path)
    assert metadata["file_format"] == "parquet"
    assert metadata["record_count"] == DEMO_COUNT
    assert metadata["file_size_bytes"] == path.stat().st_size
    assert metadata["sha256"] == sha256_file(path)
    assert steps["export_2_instruct_datasets"].run_metadata["file_format"] == "json"


def test_a_bad_export_config_fails_before_anything_runs(demo_runs: DemoRuns) -> None:
    from hermes.errors import ConfigurationError, UnsupportedFormatError
    from hermes.zenml_pipelines.artifact_export import multi_artifact_export_pipeline

    with pytest.raises(ConfigurationError, match="missing keys"):
        multi_artifact_export_pipeline(export_configs=[{"name": "raw_documents"}])
    with pytest.raises(UnsupportedFormatError, match="not to csv"):
        multi_artifact_export_pipeline(
            export_configs=[{"name": "raw_documents", "output_file": "raw.csv"}]
        )


def test_the_one_step_json_export_runs_on_its_own(demo_runs: DemoRuns, tmp_path: Path) -> None:
    from zenml.client import Client

    from hermes.zenml_steps.export_steps import export_artifact_to_json

    path = tmp_path / "datasets.json"
    written = export_artifact_to_json(
        artifact=Client().get_artifact_version("instruct_datasets", "1"),
        artifact_name="instruct_datasets",
        output_file=str(path),
    )

    assert written == str(path)
    assert read_json(path) == demo_runs.value("instruct_datasets", 1)


# ------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------


def hermes(*args: str):
    from hermes.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_the_command_exports_artifacts_and_reports_failures(
    demo_runs: DemoRuns, tmp_path: Path
) -> None:
    result = hermes(
        "export-artifacts",
        "-a", "raw_documents:1",
        "--artifact", "document_lineage",
        "--output-dir", str(tmp_path),
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    assert str(tmp_path / "raw_documents.json") in result.stdout
    assert "Failed: document_lineage:" in result.stderr
    assert "reference cycle" in result.stderr
    exported = json_models(tmp_path / "raw_documents.json", RawDocument)
    assert exported == demo_runs.value("raw_documents", 1)


def test_the_command_exports_a_run_with_a_filter(demo_runs: DemoRuns, tmp_path: Path) -> None:
    result = hermes(
        "export-artifacts",
        "--run", str(demo_runs.first.id)[:13],
        "--filter", "*_documents",
        "--format", "parquet",
        "--output-dir", str(tmp_path),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert demo_runs.first.name in result.stdout
    assert files_in(tmp_path) == {"raw_documents.parquet", "cleaned_documents.parquet"}
    for name, model in MODELS.items():
        assert file_models(tmp_path / f"{name}.parquet", model) == demo_runs.value(name, 1)


def test_the_command_reports_an_unknown_run_as_a_usage_error(demo_runs: DemoRuns) -> None:
    result = hermes("export-artifacts", "--run", "no-such-run")

    assert result.exit_code == 2
    assert "No pipeline run has the name or id 'no-such-run'" in result.stderr
