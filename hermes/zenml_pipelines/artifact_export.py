"""Export ZenML artifacts to files: by name, from a past pipeline run, or as a pipeline.

- :func:`export_artifacts` (``NAME`` or ``NAME:VERSION``, latest by default) and
  :func:`export_artifacts_from_run` (every output of a run, or those a filter names) run in the
  caller's process with ZenML's ``Client``: no pipeline run, so they are fast; the CLI uses them.
  One artifact that fails does not stop the others: the result lists the files written and,
  for each failure, why.
- :data:`artifact_export_pipeline` and :data:`multi_artifact_export_pipeline` do the same work
  as ZenML steps, so the exports are tracked by ZenML with their metadata.

Files are named after the artifact (``<output_dir>/raw_documents.json``); when one export holds
several versions of an artifact, each name gets its version (``raw_documents-v2.json``).

ZenML is imported only inside functions, and the pipeline objects are built on first access:
importing this module stays cheap, and works without ZenML installed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes.errors import ConfigurationError, HermesError, InvalidNameError
from hermes.formats import get_format
from hermes.zenml_steps.export_steps import (
    export_format,
    require_zenml,
    write_artifact,
)

if TYPE_CHECKING:
    from zenml.client import Client
    from zenml.models import ArtifactVersionResponse, PipelineRunResponse

#: Where exports go unless told otherwise.
DEFAULT_OUTPUT_DIR = Path("exports/artifacts")
#: The pipelines of this module, built on first access.
PIPELINE_NAMES = ("artifact_export_pipeline", "multi_artifact_export_pipeline")


class ArtifactLookupError(HermesError, LookupError):
    """A pipeline run or an artifact version does not exist, or a prefix names several."""


@dataclass(frozen=True)
class ArtifactSpec:
    """An artifact to export: its name, and a version (``None``: the latest)."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ArtifactSpec:
        """``raw_documents`` or ``raw_documents:3``. ZenML's own names hold ``::``
        (``pipeline::step::output``): a doubled colon is part of the name."""
        text = text.strip()
        name, colon, version = text.rpartition(":")
        if colon and name and not name.endswith(":"):
            if not version:
                raise InvalidNameError(f"Artifact {text!r} has an empty version: use NAME:VERSION")
            return cls(name, version)
        if not text or text.startswith(":"):
            raise InvalidNameError(f"Invalid artifact {text!r}: use NAME or NAME:VERSION")
        return cls(text)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


@dataclass
class ExportRunResult:
    """What an export did: the file written for each artifact, and why any other failed.

    Keys are the artifacts as asked for (``raw_documents``, ``raw_documents:2``), or a filter
    pattern that matched nothing. ``run_name`` is the run exported from, if any.
    """

    exported: dict[str, Path] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


# ------------------------------------------------------------------------------------------
# File names
# ------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.-]+")


def file_stem(name: str) -> str:
    """A file name for an artifact name: anything but letters, digits, ``.``, ``-`` and ``_``
    becomes ``_`` (``pipeline::step::output`` -> ``pipeline_step_output``); never hidden."""
    return _UNSAFE.sub("_", name).strip("._") or "artifact"


def output_files(
    specs: Sequence[ArtifactSpec], output_dir: str | Path, file_format: str
) -> dict[ArtifactSpec, Path]:
    """The file each artifact goes to: ``<output_dir>/<name><ext>``, with ``-v<version>`` when
    several versions of one name are exported together. No two artifacts share a file."""
    extension = get_format(file_format).extensions[0]
    names = Counter(spec.name for spec in dict.fromkeys(specs))
    taken: set[Path] = set()
    paths: dict[ArtifactSpec, Path] = {}
    for spec in dict.fromkeys(specs):
        stem = file_stem(spec.name)
        if names[spec.name] > 1:
            stem += f"-v{file_stem(spec.version or 'latest')}"
        path = Path(output_dir) / f"{stem}{extension}"
        number = 1
        while path in taken:
            number += 1
            path = Path(output_dir) / f"{stem}-{number}{extension}"
        taken.add(path)
        paths[spec] = path
    return paths


# ------------------------------------------------------------------------------------------
# Looking things up in ZenML
# ------------------------------------------------------------------------------------------


def _client() -> Client:
    require_zenml()
    from zenml.client import Client

    return Client()


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())


def find_run(client: Client, reference: str) -> PipelineRunResponse:
    """The run whose name or id is ``reference``, or the only one it is a prefix of."""
    from zenml.exceptions import ZenKeyError

    try:
        return client.get_pipeline_run(reference)
    except ZenKeyError:
        names = _runs_starting_with(client, reference)
        raise ArtifactLookupError(
            f"{reference!r} starts the name or id of {len(names)} pipeline runs "
            f"({', '.join(names)}): give more of it"
        ) from None
    except KeyError:
        raise ArtifactLookupError(
            f"No pipeline run has the name or id {reference!r}, or one starting with it"
        ) from None


def _runs_starting_with(client: Client, prefix: str) -> list[str]:
    found: dict[Any, str] = {}
    for field_name in ("name", "id"):
        page = client.list_pipeline_runs(**{field_name: f"startswith:{prefix}"}, hydrate=False)
        found.update((run.id, run.name) for run in page.items)
    return sorted(found.values())


def find_artifact_version(client: Client, spec: ArtifactSpec) -> ArtifactVersionResponse:
    """The artifact version a spec names (the latest when it names no version)."""
    try:
        return client.get_artifact_version(spec.name, spec.version)
    except KeyError:
        if spec.version is None:
            message = f"No artifact {spec.name!r} in the ZenML store"
        else:
            message = f"No version {spec.version!r} of artifact {spec.name!r} in the ZenML store"
        raise ArtifactLookupError(message) from None


def run_outputs(run: PipelineRunResponse) -> list[ArtifactVersionResponse]:
    """Every output artifact version of a run's steps, in step order, each once."""
    seen: dict[Any, ArtifactVersionResponse] = {}
    for step_run in run.steps.values():
        for versions in step_run.outputs.values():
            for version in versions:
                seen.setdefault(version.id, version)
    return list(seen.values())


# ------------------------------------------------------------------------------------------
# Plain exports (no pipeline)
# ------------------------------------------------------------------------------------------


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, HermesError):
        return str(exc)
    return f"{type(exc).__name__}: {_one_line(exc)}"


def _export_each(
    jobs: Iterable[tuple[str, str, Callable[[], Any], Path]], file_format: str
) -> ExportRunResult:
    """Load and write each artifact ``(key, name, load, path)``; a failure is recorded and the
    next artifact exported."""
    result = ExportRunResult()
    for key, name, load, path in jobs:
        try:
            write_artifact(load(), name, path, file_format)
        except Exception as exc:  # one bad artifact must not stop the others
            result.failures[key] = _describe_failure(exc)
        else:
            result.exported[key] = path
    return result


def export_artifacts(
    artifact_specs: Sequence[str],
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    file_format: str = "json",
) -> ExportRunResult:
    """Export artifacts named ``NAME`` (latest version) or ``NAME:VERSION`` to ``output_dir``.

    JSON works for any artifact; JSON Lines and Parquet for lists of documents. An artifact
    that cannot be found, loaded or written is reported in ``failures``; the others are written.
    """
    file_format = export_format(file_format)
    specs = [ArtifactSpec.parse(text) for text in artifact_specs]
    client = _client()

    def loader(spec: ArtifactSpec) -> Callable[[], Any]:
        return lambda: find_artifact_version(client, spec).load()

    paths = output_files(specs, output_dir, file_format)
    return _export_each(
        ((str(spec), spec.name, loader(spec), path) for spec, path in paths.items()), file_format
    )


def _patterns(artifact_filter: str | Sequence[str] | None) -> list[str]:
    if artifact_filter is None:
        return []
    return [artifact_filter] if isinstance(artifact_filter, str) else list(artifact_filter)


def export_artifacts_from_run(
    run_name: str | None = None,
    run_id: str | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    artifact_filter: str | Sequence[str] | None = None,
    file_format: str = "json",
) -> ExportRunResult:
    """Export the output artifacts of a past pipeline run to ``output_dir``.

    The run is found by name or id, or by a prefix of either that only it has (an unknown or
    ambiguous one is an :class:`ArtifactLookupError`). ``artifact_filter`` keeps the artifacts
    whose name matches one of its patterns: names, or globs such as ``"*_documents"``; a pattern
    that matches nothing is reported in ``failures``. The exported versions are the run's own,
    not the latest ones.
    """
    if (run_name is None) == (run_id is None):
        raise ValueError("Give either run_name or run_id")
    file_format = export_format(file_format)
    client = _client()
    run = find_run(client, run_name if run_name is not None else str(run_id))
    outputs = run_outputs(run)
    patterns = _patterns(artifact_filter)
    if patterns:
        outputs = [v for v in outputs if any(fnmatchcase(v.name, p) for p in patterns)]
    names = Counter(version.name for version in outputs)
    specs = {
        ArtifactSpec(v.name, str(v.version) if names[v.name] > 1 else None): v for v in outputs
    }
    paths = output_files(list(specs), output_dir, file_format)
    result = _export_each(
        ((str(spec), spec.name, specs[spec].load, path) for spec, path in paths.items()),
        file_format,
    )
    result.run_name = run.name
    for pattern in patterns:
        if not any(fnmatchcase(name, pattern) for name in names):
            result.failures[pattern] = f"no output artifact of run {run.name!r} matches it"
    return result


# ------------------------------------------------------------------------------------------
# Pipelines (built on first access)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportConfig:
    """One export of :data:`multi_artifact_export_pipeline`: an artifact version, a file and a
    format (by default the one the file name says)."""

    name: str
    output_file: str
    version: str | None = None
    file_format: str | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> ExportConfig:
        """From ``{"name", "output_file", "version"?, "format"?}``; anything else is an error."""
        known = {"name", "output_file", "version", "format"}
        problems = []
        if unknown := sorted(set(config) - known):
            problems.append(f"unknown keys {unknown}")
        if missing := sorted({"name", "output_file"} - set(config)):
            problems.append(f"missing keys {missing}")
        if problems:
            raise ConfigurationError(
                f"Export config {dict(config)!r}: {'; '.join(problems)} (keys: {sorted(known)})"
            )
        version = config.get("version")
        export = cls(
            name=str(config["name"]),
            output_file=str(config["output_file"]),
            version=None if version is None else str(version),
            file_format=config.get("format"),
        )
        export_format(export.file_format, export.output_file)  # a bad format fails now
        return export


def _step_id(action: str, index: int, name: str) -> str:
    return f"{action}_{index}_{re.sub(r'[^A-Za-z0-9_]+', '_', name).strip('_')}"


def _define_pipelines() -> dict[str, Any]:
    """The pipeline objects (see :func:`hermes.zenml_steps.export_steps._define_steps` for why
    their functions are named like the module attributes holding them)."""
    require_zenml()
    from zenml import pipeline
    from zenml.client import Client

    from hermes.zenml_steps import export_steps

    @pipeline(enable_cache=False)
    def artifact_export_pipeline(artifact_names: list[str], output_dir: str) -> None:
        """Export each artifact (``NAME`` or ``NAME:VERSION``, latest by default) to
        ``<output_dir>/<name>.json``: a serializing step records the artifact's name, type,
        record count and size as metadata of its output, a second step writes the file."""
        specs = [ArtifactSpec.parse(text) for text in artifact_names]
        client = Client()
        for index, (spec, path) in enumerate(output_files(specs, output_dir, "json").items()):
            # Inside a pipeline the client answers lazily: the version is looked up at run time.
            artifact = client.get_artifact_version(spec.name, spec.version)
            data = export_steps.serialize_zenml_artifact(
                artifact, spec.name, id=_step_id("serialize", index, spec.name)
            )
            export_steps.write_to_json(data, str(path), id=_step_id("write", index, spec.name))

    @pipeline(enable_cache=False)
    def multi_artifact_export_pipeline(export_configs: list[dict[str, Any]]) -> None:
        """Export artifacts, each to its own file and format: every config holds ``name``,
        ``output_file``, and optionally ``version`` (default: latest) and ``format`` (json,
        jsonl or parquet; default: from the file name)."""
        client = Client()
        for index, config in enumerate(map(ExportConfig.from_mapping, export_configs)):
            artifact = client.get_artifact_version(config.name, config.version)
            export_steps.export_artifact_to_file(
                artifact,
                config.name,
                config.output_file,
                config.file_format,
                id=_step_id("export", index, config.name),
            )

    return {
        "artifact_export_pipeline": artifact_export_pipeline,
        "multi_artifact_export_pipeline": multi_artifact_export_pipeline,
    }


def __getattr__(name: str) -> Any:
    if name in PIPELINE_NAMES:
        pipelines = _define_pipelines()
        globals().update(pipelines)
        return pipelines[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
