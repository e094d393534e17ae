"""File formats: one module per format, one table to choose them.

    read_documents(path)            -> iterator of Batch (documents with their file positions)
    write_documents(path, docs)     -> WriteResult (count, bytes, sha256), written atomically
    convert_file(source, target)    -> WriteResult: one file into another format, streaming

The format comes from the file name (``.json``, ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``,
``.parquet``), optionally followed by ``.gz`` or ``.zst``; or it is named explicitly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hermes.errors import UnsupportedFormatError
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    BsonChunks,
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
    "convert_file",
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


def convert_file(
    source: str | Path,
    target: str | Path,
    source_format: str | None = None,
    target_format: str | None = None,
    *,
    overwrite: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int], None] | None = None,
    **options: Any,
) -> WriteResult:
    """Stream one file into another format (``options`` go to the writer); a record that
    cannot be read stops it. ``on_progress`` is told how many documents each batch read.

    JSON Lines are read straight to BSON by the C decoder where it is built, and handed on as
    :class:`BsonChunks`, which the JSON, JSON Lines, Parquet and CSV writers turn into their
    output without Python objects per field; the file is the same as through decoded documents.
    If a line the decoder declines holds what BSON cannot hold as it is (a key with NUL, an
    integer over 64 bits, an ``_id`` after other fields), the conversion starts again through
    decoded documents, which write it or say why (``on_progress`` then hears the batches read
    again).
    """
    fmt, _ = _resolve(source, source_format)
    if getattr(fmt, "reads_bson", False):
        from hermes.formats import jsonbson

        if jsonbson.AVAILABLE:
            batches = read_documents(source, fmt.name, batch_size=batch_size, raw_bson=True)
            chunks = _told(_bson_chunks(batches), on_progress)
            try:
                documents = BsonChunks(chunks, jsonbson.CODEC_OPTIONS)
                return write_documents(
                    target, documents, target_format, overwrite=overwrite, **options
                )
            except jsonbson.NotBson:
                pass
    batches = read_documents(source, fmt.name, batch_size=batch_size)
    told = _told((batch.documents for batch in batches), on_progress)
    documents = (document for chunk in told for document in chunk)
    return write_documents(target, documents, target_format, overwrite=overwrite, **options)


def _bson_chunks(batches: Iterable[Batch]) -> Iterator[list[bytes]]:
    """Each batch of a raw BSON read as a list of BSON documents (the lines the C decoder
    declined were read as dicts: encoded here)."""
    from bson.raw_bson import RawBSONDocument

    from hermes.formats.jsonbson import encode_document

    for batch in batches:
        yield [
            document.raw if type(document) is RawBSONDocument else encode_document(document)
            for document in batch.documents
        ]


def _told(
    chunks: Iterable[list[Any]], on_progress: Callable[[int], None] | None
) -> Iterator[list[Any]]:
    """Pass chunks through, telling ``on_progress`` the size of each once it is handed on."""
    for chunk in chunks:
        yield chunk
        if on_progress is not None:
            on_progress(len(chunk))
