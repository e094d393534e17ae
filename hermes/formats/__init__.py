"""File formats: one module per format, one table to choose them.

    read_documents(path)            -> iterator of Batch (documents with their file positions)
    write_documents(path, docs)     -> WriteResult (count, bytes, sha256), written atomically

The format comes from the file name (``.json``, ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``,
``.parquet``), optionally followed by ``.gz`` or ``.zst``; or it is named explicitly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hermes.errors import UnsupportedFormatError
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    ErrorHandler,
    FileFormat,
    RecordError,
    WriteResult,
    atomic_output,
    open_input,
    split_compression,
)

__all__ = [
    "EXTENSIONS",
    "Batch",
    "FileFormat",
    "RecordError",
    "WriteResult",
    "detect_format",
    "format_name",
    "get_format",
    "iter_documents",
    "read_documents",
    "supported_extensions",
    "write_documents",
]


#: How to build each format: its module, its class and the class's arguments. A module is
#: imported on first use only: naming a ``.jsonl`` file must not import pyarrow.
_CLASSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "json": ("hermes.formats.json", "JsonFormat", {}),
    "jsonl": ("hermes.formats.jsonl", "JsonLinesFormat", {}),
    "csv": ("hermes.formats.csv", "CsvFormat", {}),
    "tsv": ("hermes.formats.csv", "CsvFormat", {"delimiter": "\t", "name": "tsv"}),
    "parquet": ("hermes.formats.parquet", "ParquetFormat", {}),
}
_LOADED: dict[str, FileFormat] = {}
_ALIASES = {"ndjson": "jsonl", "jsonlines": "jsonl", "json_lines": "jsonl", "pq": "parquet"}


def formats() -> dict[str, FileFormat]:
    """Every format by name (imports them all)."""
    return {name: _load(name) for name in EXTENSIONS}


def _load(name: str) -> FileFormat:
    fmt = _LOADED.get(name)
    if fmt is None:
        module, cls, arguments = _CLASSES[name]
        fmt = _LOADED[name] = getattr(importlib.import_module(module), cls)(**arguments)
    return fmt


def format_names() -> list[str]:
    return list(EXTENSIONS)


def supported_extensions() -> list[str]:
    return [ext for extensions in EXTENSIONS.values() for ext in extensions]


def format_name(name: str) -> str:
    """The registry's name for ``name`` (``ndjson`` -> ``jsonl``), without loading the format."""
    key = _ALIASES.get(name.lower().lstrip("."), name.lower().lstrip("."))
    if key not in EXTENSIONS:
        raise UnsupportedFormatError(
            f"Unknown format {name!r}; choose one of: {', '.join(format_names())}"
        )
    return key


def get_format(name: str) -> FileFormat:
    """The format called ``name`` (``json``, ``jsonl``, ``csv``, ``tsv``, ``parquet``)."""
    return _load(format_name(name))


def detect_format(path: str | Path) -> tuple[FileFormat, str | None]:
    """The format and compression a file name stands for, or a clear error listing the choices."""
    base, compression = split_compression(path)
    lower = base.lower()
    for name, extensions in EXTENSIONS.items():
        if lower.endswith(extensions):
            return _load(name), compression
    choices = ", ".join(supported_extensions())
    raise UnsupportedFormatError(
        f"Cannot tell the format of {str(path)!r} from its name; supported extensions: {choices} "
        "(each optionally followed by .gz or .zst)"
    )


def _resolve(path: str | Path, file_format: str | None) -> tuple[FileFormat, str | None]:
    if file_format:
        return get_format(file_format), split_compression(path)[1]
    return detect_format(path)


def read_documents(
    path: str | Path,
    file_format: str | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: ErrorHandler | None = None,
    **options: Any,
) -> Iterator[Batch]:
    """Stream a file's documents in batches; unreadable records go to ``on_error`` (or raise)."""
    fmt, compression = _resolve(path, file_format)
    with open_input(path, compression) as stream:
        yield from fmt.read_batches(
            stream, str(path), batch_size=batch_size, on_error=on_error, **options
        )


def iter_documents(
    path: str | Path, file_format: str | None = None, **options: Any
) -> Iterator[dict]:
    """Every document of a file, one at a time."""
    for batch in read_documents(path, file_format, **options):
        yield from batch.documents


def write_documents(
    path: str | Path,
    documents: Iterable[Mapping[str, Any]],
    file_format: str | None = None,
    *,
    overwrite: bool = True,
    **options: Any,
) -> WriteResult:
    """Write documents to ``path`` atomically; compression follows the name's suffix."""
    fmt, compression = _resolve(path, file_format)
    # Formats that spill (CSV's second pass, Parquet's segments) spill beside the output: the
    # same disk the user chose for the data, rather than a possibly small system temp folder.
    options.setdefault("temp_dir", Path(path).parent)
    with atomic_output(path, compression, overwrite=overwrite) as out:
        count = fmt.write_stream(out.stream, documents, **options)
    return WriteResult(
        path=Path(path),
        format=fmt.name,
        count=count,
        bytes=out.bytes,
        sha256=out.sha256,
        compression=compression,
    )
