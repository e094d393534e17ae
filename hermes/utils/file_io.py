"""File managers: whole files of documents in one call, or streamed in batches.

    JsonFileManager.write("authors.json", [{"name": "Zoë"}])      # -> Path, indented JSON
    JsonFileManager.read("authors.json")                           # -> [{"name": "Zoë"}]
    JsonFileManager.append("authors.json", {"name": "Li"})
    get_file_manager("chunks.jsonl.zst").read_batches(path, batch_size=500)

Every method is a classmethod, so a manager works as a class or as an instance. Bytes go through
:mod:`hermes.formats` (Extended JSON, typed CSV, Parquet with BSON metadata), so values survive
exactly or are refused with a clear error, files are UTF-8, and every write goes to a temporary
file that is renamed into place only when complete: a failure leaves the old file (or none), never
a partial one. A ``.gz`` or ``.zst`` suffix compresses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from hermes.errors import UnsupportedFormatError
from hermes.formats import detect_format, get_format
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    Batch,
    FileFormat,
    WriteResult,
    atomic_output,
    open_input,
    split_compression,
)
from hermes.formats.jsonl import _is_canonical

__all__ = [
    "CsvFileManager",
    "FileManager",
    "JsonFileManager",
    "JsonLinesFileManager",
    "ParquetFileManager",
    "get_file_manager",
]


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


class FileManager:
    """What every manager shares; a subclass names its formats (the first is its default)."""

    #: Format names this manager writes; the file name picks among them (``.tsv`` -> ``tsv``).
    formats: ClassVar[tuple[str, ...]] = ()
    #: Write options used unless the call gives its own.
    write_defaults: ClassVar[dict[str, Any]] = {}
    #: Whether a lone mapping is written as it is (a JSON object) rather than as one document.
    writes_single_object: ClassVar[bool] = False

    @classmethod
    def _format(cls, path: Path, options: dict[str, Any]) -> FileFormat:
        """This manager's format for ``path``; ``options`` may be consumed (see CSV)."""
        with contextlib.suppress(UnsupportedFormatError):
            detected, _ = detect_format(path)
            if detected.name in cls.formats:
                return detected
        return get_format(cls.formats[0])

    @classmethod
    def write_stream(
        cls, path: str | Path, documents: Iterable[Any], **options: Any
    ) -> WriteResult:
        """Write documents from any iterable with bounded memory; returns count, bytes, sha256."""
        target = _resolved(path)
        options = {**cls.write_defaults, **options}
        fmt = cls._format(target, options)
        compression = split_compression(target)[1]
        with atomic_output(target, compression) as out:
            count = fmt.write_stream(out.stream, documents, **options)
        return WriteResult(target, fmt.name, count, out.bytes, out.sha256, compression)

    @classmethod
    def write(
        cls, path: str | Path, data: Iterable[Any] | Mapping[str, Any], **options: Any
    ) -> Path:
        """Write ``data`` (documents, or for JSON a single object) and return the absolute path."""
        if isinstance(data, str | bytes | bytearray) or not isinstance(data, Iterable):
            raise TypeError(
                f"expected documents (a list or iterable of dicts), got {type(data).__name__}"
            )
        if isinstance(data, Mapping) and not cls.writes_single_object:
            data = [data]
        return cls.write_stream(path, data, **options).path

    @classmethod
    def read_batches(
        cls, path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any
    ) -> Iterator[list[dict[str, Any]]]:
        """Lists of at most ``batch_size`` documents, streamed (``on_error=`` skips bad records)."""
        for batch in cls._batches(path, batch_size, options):
            yield batch.documents

    @classmethod
    def iter_documents(cls, path: str | Path, **options: Any) -> Iterator[dict[str, Any]]:
        """Every document of the file, one at a time."""
        for batch in cls._batches(path, DEFAULT_BATCH_SIZE, options):
            yield from batch.documents

    @classmethod
    def read(cls, path: str | Path, **options: Any) -> Any:
        """The whole file: a list of documents (JSON: whatever the file holds, see the class)."""
        source = _resolved(path)
        fmt = cls._format(source, options)
        load = getattr(fmt, "load", None)
        with open_input(source) as stream:
            if load is not None:
                return load(stream, str(source), **options)
            batches = fmt.read_batches(stream, str(source), **options)
            return [document for batch in batches for document in batch.documents]

    @classmethod
    def _batches(
        cls, path: str | Path, batch_size: int, options: dict[str, Any]
    ) -> Iterator[Batch]:
        source = _resolved(path)
        fmt = cls._format(source, options)
        with open_input(source) as stream:
            yield from fmt.read_batches(stream, str(source), batch_size=batch_size, **options)


class JsonFileManager(FileManager):
    """A JSON array of Extended JSON documents, indented by 4 unless ``indent=None`` (compact).

    ``write`` also takes a single dict (written as a JSON object); ``read`` returns what the file
    holds: a list for an array (its objects decoded as documents), a dict for one object.
    ``json_format="canonical"`` writes canonical Extended JSON.
    """

    formats = ("json",)
    write_defaults: ClassVar[dict[str, Any]] = {"indent": 4}
    writes_single_object = True

    @classmethod
    def append(cls, path: str | Path, item: Any, **options: Any) -> Path:
        """Add ``item`` at the end of the JSON array in ``path`` (created as ``[item]`` if it is
        missing or empty) and return the absolute path.

        The file is copied chunk by chunk into a temporary file with the item inserted before the
        closing ``]``, which then replaces it: memory stays bounded, compressed files work, and a
        failure (an unwritable item, a file that is not an array, a full disk, a crash) leaves
        the file as it was. Time grows with the file size: to add many items, use
        :meth:`write_stream`. Only the file's shape is checked, not every element.
        """
        from hermes.formats.json import append_element, encode_value

        target = _resolved(path)
        options = {**cls.write_defaults, **options}
        canonical = _is_canonical(options.get("json_format", "relaxed"))
        element = encode_value(item, canonical, options.get("indent"), level=1)
        if not target.exists():
            return cls.write(target, [item], **options)
        compression = split_compression(target)[1]
        with open_input(target, compression) as source, atomic_output(target, compression) as out:
            append_element(source, out.stream, element, str(target))
        return target


class JsonLinesFileManager(FileManager):
    """JSON Lines: one Extended JSON document per line (``.jsonl``, ``.ndjson``)."""

    formats = ("jsonl",)


class CsvFileManager(FileManager):
    """CSV with a typed header (``.csv``), TSV for ``.tsv`` or ``delimiter="\\t"``.

    ``delimiter=`` sets any one-character separator, for writing and reading alike.
    ``read(path, skip_header=True)`` reads a file that has no header line: every line is a
    document whose fields are named by position, ``"0"``, ``"1"``, ... (the CSV format's rule).
    """

    formats = ("csv", "tsv")

    @classmethod
    def _format(cls, path: Path, options: dict[str, Any]) -> FileFormat:
        fmt = super()._format(path, options)
        delimiter = options.pop("delimiter", None)
        if delimiter is None or delimiter == getattr(fmt, "delimiter", None):
            return fmt
        variant: Any = type(fmt)
        return variant(delimiter=delimiter, name=fmt.name, extensions=fmt.extensions)


class ParquetFileManager(FileManager):
    """Parquet: Arrow types where they exist, the exact BSON types kept in the file's metadata."""

    formats = ("parquet",)


_MANAGERS: dict[str, type[FileManager]] = {
    name: manager
    for manager in (JsonFileManager, JsonLinesFileManager, CsvFileManager, ParquetFileManager)
    for name in manager.formats
}


def get_file_manager(path: str | Path) -> type[FileManager]:
    """The manager for a file name (``.json``, ``.jsonl``/``.ndjson``, ``.csv``, ``.tsv``,
    ``.parquet``, each optionally ``.gz``/``.zst``); :class:`UnsupportedFormatError` otherwise."""
    fmt, _ = detect_format(path)
    return _MANAGERS[fmt.name]
