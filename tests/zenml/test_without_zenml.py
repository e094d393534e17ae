"""What works without ZenML: importing Hermes, serializing and writing artifacts, file naming;
and what fails clearly (the steps, the pipelines, the exports, the command).

None of these tests needs the ZenML store; those that need ZenML missing run in a subprocess
where ``import zenml`` fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from hermes.domain.documents import RawDocument
from hermes.errors import InvalidNameError, UnsupportedFormatError, UnsupportedValueError
from hermes.formats import iter_documents
from hermes.sample import raw_document
from hermes.zenml_pipelines.artifact_export import ArtifactSpec, file_stem, output_files
from hermes.zenml_steps.export_steps import (
    artifact_metadata,
    serialize_artifact,
    write_artifact,
    write_json,
)

INSTALL_HINT = "pip install 'hermes-llm[zenml]'"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_zenml_hermes_imports_and_zenml_features_name_the_extra() -> None:
    """One subprocess where ``import zenml`` fails: what still works, and each clear error."""
    probe = run_python(
        """
        import json, sys
        sys.modules["zenml"] = None  # as if ZenML were not installed

        import hermes, hermes.cli.zenml_commands
        from hermes.zenml_pipelines import artifact_export
        from hermes.zenml_steps import export_steps

        report = {"serialized": export_steps.serialize_artifact([1, 2], "numbers")}

        def error_of(call):
            try:
                call()
            except Exception as exc:
                return [type(exc).__name__, str(exc)]
            return None

        report["step"] = error_of(lambda: export_steps.serialize_zenml_artifact)
        report["pipeline"] = error_of(lambda: artifact_export.artifact_export_pipeline)
        report["by_name"] = error_of(lambda: artifact_export.export_artifacts(["a"], "out"))
        report["by_run"] = error_of(
            lambda: artifact_export.export_artifacts_from_run(run_name="r", output_dir="out")
        )
        print(json.dumps(report))

        from hermes.cli import cli
        cli(["export-artifacts", "--artifact", "raw_documents"], prog_name="hermes")
        """
    )

    report = json.loads(probe.stdout.splitlines()[0])
    assert report["serialized"] == {"artifact_data": [1, 2]}
    for feature in ("step", "pipeline", "by_name", "by_run"):
        kind, message = report[feature]
        assert kind == "MissingDependencyError", feature
        assert INSTALL_HINT in message, feature
    assert probe.returncode == 2
    assert INSTALL_HINT in probe.stderr


def test_importing_the_exports_does_not_import_zenml() -> None:
    probe = run_python(
        """
        import sys
        import hermes.cli.zenml_commands, hermes.zenml_pipelines.artifact_export
        import hermes.zenml_steps.export_steps
        print("zenml" in sys.modules)
        """
    )

    assert probe.stdout.strip() == "False", probe.stderr


# ------------------------------------------------------------------------------------------
# Plain functions
# ------------------------------------------------------------------------------------------


def test_a_mapping_serializes_as_it_is_and_anything_else_is_wrapped() -> None:
    document = RawDocument.from_mongo(raw_document(0))

    assert serialize_artifact({"train": [1], "test": []}, "datasets") == {"train": [1], "test": []}
    assert serialize_artifact("text", "note") == {"artifact_data": "text"}
    assert serialize_artifact([document], "docs")["artifact_data"][0]["_id"] == document.id
    # A model serializes to a JSON object: kept as it is, not wrapped.
    assert serialize_artifact(document, "doc")["_id"] == document.id


def test_a_value_the_serializer_refuses_names_the_artifact() -> None:
    loop: list = []
    loop.append(loop)

    with pytest.raises(UnsupportedValueError, match="Artifact 'loop'.*reference cycle"):
        serialize_artifact(loop, "loop")


def test_documents_keep_their_bson_types_in_jsonl(tmp_path: Path) -> None:
    documents = [RawDocument.from_mongo(raw_document(index)) for index in range(3)]

    result = write_artifact(documents, "raw", tmp_path / "raw.jsonl")

    assert result.count == 3
    records = list(iter_documents(tmp_path / "raw.jsonl"))
    assert [RawDocument.from_mongo(record) for record in records] == documents
    assert records[0]["created_at"] == documents[0].created_at  # a date, not a string


def test_json_export_is_one_object_written_atomically(tmp_path: Path) -> None:
    result = write_artifact({"a": [1, 2, 3]}, "data", tmp_path / "data.json.gz")

    assert result.compression == "gzip"
    import gzip

    assert orjson.loads(gzip.decompress((tmp_path / "data.json.gz").read_bytes())) == {
        "a": [1, 2, 3]
    }


def test_a_value_json_cannot_hold_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedValueError, match="Cannot write the value as JSON"):
        write_json({"text": "\ud800"}, tmp_path / "bad.json")  # a lone surrogate
    assert list(tmp_path.iterdir()) == []


def test_metadata_counts_items_keys_or_one() -> None:
    document = RawDocument.from_mongo(raw_document(0))

    assert artifact_metadata([document] * 3, "docs") == {
        "artifact_name": "docs",
        "python_type": "builtins.list",
        "record_count": 3,
    }
    assert artifact_metadata({"train": [1, 2], "test": [3]}, "sets")["record_count"] == 2
    single = artifact_metadata(document, "doc")
    assert single["python_type"] == "hermes.domain.documents.RawDocument"
    assert single["record_count"] == 1


def test_only_json_jsonl_and_parquet_are_export_formats(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="not to csv"):
        write_artifact([{"a": 1}], "data", tmp_path / "data.csv")
    assert list(tmp_path.iterdir()) == []


def test_items_that_are_not_documents_cannot_be_records(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedValueError, match="item 1 is a builtins.int"):
        write_artifact([{"a": 1}, 2], "mixed", tmp_path / "mixed.jsonl")
    assert list(tmp_path.iterdir()) == []  # the half-written file is gone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("raw_documents", ArtifactSpec("raw_documents")),
        ("raw_documents:3", ArtifactSpec("raw_documents", "3")),
        ("etl::clean::output", ArtifactSpec("etl::clean::output")),
        ("etl::clean::output:2", ArtifactSpec("etl::clean::output", "2")),
    ],
)
def test_artifact_specs_read_name_and_version(text: str, expected: ArtifactSpec) -> None:
    assert ArtifactSpec.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", ":3", "raw_documents:"])
def test_bad_artifact_specs_are_refused(text: str) -> None:
    with pytest.raises(InvalidNameError):
        ArtifactSpec.parse(text)


def test_file_names_are_safe_and_never_collide() -> None:
    specs = [ArtifactSpec.parse(t) for t in ("a:1", "a:2", "etl::out", "etl/out", "../up")]

    paths = output_files(specs, "exports", "jsonl")

    assert [p.name for p in paths.values()] == [
        "a-v1.jsonl",
        "a-v2.jsonl",
        "etl_out.jsonl",
        "etl_out-2.jsonl",
        "up.jsonl",
    ]
    assert all(p.parent == Path("exports") for p in paths.values())
    assert file_stem("...") == "artifact"
