"""ZenML steps that turn an artifact into a file: JSON, JSON Lines or Parquet.

The work is done by plain functions that need no ZenML (:func:`serialize_artifact`,
:func:`artifact_metadata`, :func:`write_json`, :func:`write_artifact`), so the exports run by
:mod:`hermes.zenml_pipelines.artifact_export` outside a pipeline and the steps share one code path.

The steps (``serialize_zenml_artifact``, ``write_to_json``, ``export_artifact_to_json``,
``export_artifact_to_file``) are built on first access: ZenML's ``@step`` needs ZenML when a step
is defined, ZenML takes seconds to import, and Hermes must import without it. Without ZenML,
using a step raises :class:`~hermes.errors.MissingDependencyError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import orjson

from hermes.errors import MissingDependencyError, UnsupportedFormatError, UnsupportedValueError
from hermes.formats import WriteResult, detect_format, extjson, get_format, write_documents
from hermes.formats.base import atomic_output

#: The key a value that is not a JSON object is wrapped under in its JSON export.
ARTIFACT_DATA_KEY = "artifact_data"
#: What an artifact can be exported to; JSON Lines and Parquet need a list of documents.
EXPORT_FORMATS = ("json", "jsonl", "parquet")
#: The ZenML steps of this module, built on first access.
STEP_NAMES = (
    "serialize_zenml_artifact",
    "write_to_json",
    "export_artifact_to_json",
    "export_artifact_to_file",
)


def require_zenml() -> ModuleType:
    """The ``zenml`` module, or a :class:`MissingDependencyError` naming the extra to install."""
    try:
        import zenml
    except ImportError as exc:
        raise MissingDependencyError("ZenML export", "zenml") from exc
    return zenml


# ------------------------------------------------------------------------------------------
# Plain functions (no ZenML)
# ------------------------------------------------------------------------------------------


def _serialize(value: Any, artifact_name: str) -> Any:
    from hermes.utils.export_import import ArtifactSerializer

    try:
        return ArtifactSerializer.serialize(value)
    except UnsupportedValueError as exc:
        raise UnsupportedValueError(f"Artifact {artifact_name!r}: {exc}") from exc


def serialize_artifact(artifact: Any, artifact_name: str) -> dict[str, Any]:
    """The JSON-compatible form of an artifact, exactly as its ``.json`` export holds it.

    A value that serializes to a JSON object is kept as it is (a dataset dict exports as that
    dict); any other value (a list of documents, a number, a string) is wrapped as
    ``{"artifact_data": value}``, so that every export is a JSON object. No metadata is added to
    the data: the artifact's name, type and size are ZenML metadata (:func:`artifact_metadata`).
    ``artifact_name`` only names the artifact in errors.
    """
    data = _serialize(artifact, artifact_name)
    return data if isinstance(data, dict) else {ARTIFACT_DATA_KEY: data}


def type_name(value: Any) -> str:
    """``hermes.domain.documents.RawDocument``, ``builtins.list``: the value's full type name."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def record_count(value: Any) -> int:
    """How many records a value holds: items of a list, keys of a dict, rows of a DataFrame;
    1 for anything without a length (a model, a number, a string)."""
    if isinstance(value, str | bytes | bytearray):
        return 1
    try:
        return len(value)
    except TypeError:
        return 1


def artifact_metadata(artifact: Any, artifact_name: str) -> dict[str, Any]:
    """What ZenML records about an exported artifact: its name, Python type and record count."""
    return {
        "artifact_name": artifact_name,
        "python_type": type_name(artifact),
        "record_count": record_count(artifact),
    }


def export_format(file_format: str | None, output_file: str | Path | None = None) -> str:
    """The export format named ``file_format``, else the one ``output_file``'s name says."""
    if file_format or output_file is None:
        fmt = get_format(file_format or "json")
    else:
        fmt = detect_format(output_file)[0]
    if fmt.name not in EXPORT_FORMATS:
        raise UnsupportedFormatError(
            f"Artifacts export to {', '.join(EXPORT_FORMATS)}; not to {fmt.name}"
        )
    return fmt.name


def dumps_json(data: Any, option: int = 0) -> bytes:
    """JSON bytes of a JSON-compatible value, or a clear error saying what is not."""
    try:
        return orjson.dumps(data, option=option)
    except orjson.JSONEncodeError as exc:
        raise UnsupportedValueError(f"Cannot write the value as JSON: {exc}") from None


def write_json(data: Any, output_file: str | Path) -> WriteResult:
    """Write one JSON-compatible value to ``output_file`` atomically (indented; ``.gz``/``.zst``
    names are compressed). The result counts one document: the value."""
    payload = dumps_json(data, orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    with atomic_output(output_file) as out:
        out.stream.write(payload)
    return WriteResult(
        path=Path(output_file),
        format="json",
        count=1,
        bytes=out.bytes,
        sha256=out.sha256,
        compression=out.compression,
    )


def artifact_documents(artifact: Any, artifact_name: str) -> Iterator[Mapping[str, Any]]:
    """The documents of a list artifact, the records of a JSON Lines or Parquet export.

    Dicts are written as they are and models in their warehouse form (``to_mongo()``), as
    ``hermes export`` writes them, so BSON values keep their types; any other item is serialized
    (with the BSON types it holds restored) and must be a JSON object. An artifact that is not a
    list of documents is a clear error, raised before anything is written.
    """
    if isinstance(artifact, list | tuple):
        items: Iterable[Any] = artifact
    else:
        # A DataFrame serializes to its records; the BSON types they hold are restored.
        items = extjson.from_extended(_serialize(artifact, artifact_name))
        if not isinstance(items, list):
            raise UnsupportedValueError(
                f"Artifact {artifact_name!r} is a {type_name(artifact)}, not a list of "
                "documents: export it as json"
            )
    return (_document(item, index, artifact_name) for index, item in enumerate(items))


def _document(item: Any, index: int, artifact_name: str) -> Mapping[str, Any]:
    from pydantic import BaseModel

    from hermes.utils.export_import import model_document

    if isinstance(item, Mapping):
        return item
    if isinstance(item, BaseModel):
        return model_document(item)
    document = extjson.from_extended(_serialize(item, artifact_name))
    if not isinstance(document, dict):
        raise UnsupportedValueError(
            f"Artifact {artifact_name!r}: item {index} is a {type_name(item)}, not a "
            "document: export the artifact as json"
        )
    return document


def _write_json_export(artifact: Any, artifact_name: str, output_file: Path, _: str) -> WriteResult:
    return write_json(serialize_artifact(artifact, artifact_name), output_file)


def _write_documents_export(
    artifact: Any, artifact_name: str, output_file: Path, file_format: str
) -> WriteResult:
    return write_documents(output_file, artifact_documents(artifact, artifact_name), file_format)


_WRITERS = {
    "json": _write_json_export,
    "jsonl": _write_documents_export,
    "parquet": _write_documents_export,
}


def write_artifact(
    artifact: Any, artifact_name: str, output_file: str | Path, file_format: str | None = None
) -> WriteResult:
    """Export an artifact's value to a file atomically; ``count`` is its record count.

    JSON holds :func:`serialize_artifact`'s object; JSON Lines and Parquet one record per
    document of a list artifact (through :func:`hermes.formats.write_documents`).
    """
    name = export_format(file_format, output_file)
    result = _WRITERS[name](artifact, artifact_name, Path(output_file), name)
    return replace(result, count=record_count(artifact))


def export_metadata(artifact: Any, artifact_name: str, result: WriteResult) -> dict[str, Any]:
    """What ZenML records about an export: the artifact's metadata and the file written."""
    return {
        **artifact_metadata(artifact, artifact_name),
        "output_file": str(result.path),
        "file_format": result.format,
        "file_size_bytes": result.bytes,
        "sha256": result.sha256,
    }


# ------------------------------------------------------------------------------------------
# ZenML steps (built on first access)
# ------------------------------------------------------------------------------------------


def _define_steps() -> dict[str, Any]:
    """The step objects. Their functions are named like the module attributes that hold them,
    so ZenML finds a step from its source (``hermes.zenml_steps.export_steps.write_to_json``)."""
    require_zenml()
    from zenml import log_metadata, step
    from zenml.metadata.metadata_types import StorageSize

    def export_step(
        artifact: Any, artifact_name: str, output_file: str, file_format: str | None
    ) -> str:
        result = write_artifact(artifact, artifact_name, output_file, file_format)
        metadata = export_metadata(artifact, artifact_name, result)
        metadata["file_size_bytes"] = StorageSize(result.bytes)
        log_metadata(metadata=metadata)
        return str(result.path)

    @step
    def serialize_zenml_artifact(
        artifact: Any, artifact_name: str
    ) -> Annotated[dict[str, Any], "serialized_artifact"]:
        """Serialize an artifact (see ``serialize_artifact``); the output's metadata records
        the artifact's name, Python type, record count and serialized size in bytes."""
        data = serialize_artifact(artifact, artifact_name)
        metadata = artifact_metadata(artifact, artifact_name)
        metadata["serialized_size_bytes"] = StorageSize(len(dumps_json(data)))
        log_metadata(metadata=metadata, infer_artifact=True)
        return data

    @step(enable_cache=False)  # it writes a file: never skip it
    def write_to_json(data: Any, to_file: str) -> Annotated[str, "exported_file"]:
        """Write JSON-compatible data to ``to_file`` atomically; return the file's path."""
        return str(write_json(data, to_file).path)

    @step(enable_cache=False)
    def export_artifact_to_json(
        artifact: Any, artifact_name: str, output_file: str
    ) -> Annotated[str, "exported_file"]:
        """Serialize an artifact and write it as JSON in one step; return the file's path."""
        return export_step(artifact, artifact_name, output_file, "json")

    @step(enable_cache=False)
    def export_artifact_to_file(
        artifact: Any, artifact_name: str, output_file: str, file_format: str | None = None
    ) -> Annotated[str, "exported_file"]:
        """Export an artifact as JSON, JSON Lines or Parquet (by ``file_format`` or the file
        name); the step's metadata records the artifact and the file. Return the file's path."""
        return export_step(artifact, artifact_name, output_file, file_format)

    return {
        "serialize_zenml_artifact": serialize_zenml_artifact,
        "write_to_json": write_to_json,
        "export_artifact_to_json": export_artifact_to_json,
        "export_artifact_to_file": export_artifact_to_file,
    }


def __getattr__(name: str) -> Any:
    if name in STEP_NAMES:
        steps = _define_steps()
        globals().update(steps)
        return steps[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
