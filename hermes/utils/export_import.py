"""Export and import helpers over :mod:`hermes.formats`, and a JSON serializer for artifacts.

- :class:`ArtifactSerializer` turns whatever a pipeline step returns (models, dataclasses, sets,
  NumPy arrays, DataFrames, BSON values...) into JSON-compatible data.
- :class:`DataExporter` / :class:`DataImporter` move documents (dicts or Pydantic models) to and
  from one file of any format; imports validate with a model and report each rejected record
  with its file, line or row, and reason, without stopping.
- :class:`BatchExporter` splits a stream of documents into numbered files and reads them back in
  order.

No format is known here: every byte goes through :mod:`hermes.formats`, so each format's fidelity
(and its refusals) apply unchanged, and a new format works here without a change.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import logging
import math
import re
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any, ClassVar

from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from hermes.errors import (
    FormatError,
    MissingFileError,
    UnsupportedValueError,
    ValidationFailedError,
)
from hermes.formats import (
    RecordError,
    WriteResult,
    detect_format,
    extjson,
    get_format,
    read_documents,
    write_documents,
)
from hermes.formats.base import DEFAULT_BATCH_SIZE, Batch, ErrorHandler

__all__ = [
    "BATCH_INDEX_WIDTH",
    "ArtifactSerializer",
    "BatchExporter",
    "DataExporter",
    "DataImporter",
    "ImportResult",
    "ImportStream",
    "MissingFolderError",
    "describe_validation_error",
]

logger = logging.getLogger(__name__)

_NOT = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# ------------------------------------------------------------------------------------------
# Serializing artifacts
# ------------------------------------------------------------------------------------------

#: BSON values keep their type as relaxed Extended JSON (``{"$oid": ...}``), as in the formats.
_BSON_TYPES = (
    ObjectId,
    Decimal128,
    Int64,
    Binary,
    Regex,
    Timestamp,
    Code,
    MinKey,
    MaxKey,
    DBRef,
    DatetimeMS,
    re.Pattern,
)
#: Things whose fields say nothing useful about them: written as ``str()``, with a warning.
_OPAQUE = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)


class ArtifactSerializer:
    """Any Python value -> JSON-compatible data (``json.dumps``- and ``orjson.dumps``-able).

    Choices, made once so every artifact reads the same way:

    - Pydantic models: their warehouse form (``to_mongo()``) when they have one, else
      ``model_dump(mode="python", by_alias=True)``; either way the result is walked again.
    - Dataclasses: their fields. Mappings: keys that are not strings become their JSON text
      (``1`` -> ``"1"``, ``None`` -> ``"null"``); two keys that would collide are an error.
    - Lists, tuples, generators and other iterators (consumed): lists. Sets and frozensets:
      lists sorted by each element's JSON text, so the output does not depend on hash order.
    - ``datetime``/``date``/``time``: ISO 8601 strings. ``timedelta``: an ISO 8601 duration
      (``"P1DT2H3M4.5S"``, as Pydantic writes it: exact to the microsecond, unlike seconds in
      a float). UUID, Decimal and paths: ``str``. Enums: their value.
    - Integers beyond 64 bits: decimal strings (orjson and BSON cannot hold them).
    - NaN and infinities: ``{"$numberDouble": "NaN"}`` (lossless, and what the JSON formats
      write), never ``null``. ``bytes`` and the BSON types (ObjectId, Decimal128, Int64, Binary,
      Regex, Timestamp, Code, MinKey/MaxKey, DBRef, DatetimeMS): relaxed Extended JSON, so
      ``bytes`` is ``{"$binary": {"base64": ..., "subType": "00"}}`` like a stored Binary.
    - NumPy scalars and arrays: ``tolist()`` (datetime64 as ISO strings). pandas DataFrames:
      a list of records; Series and Index: lists; ``NaT``/``NA``: ``None``. Neither library is
      imported unless such an object is met.
    - Anything else: its public fields (``__dict__``/``__slots__``), or, when it has none, its
      ``str()`` with a warning on this module's logger.

    A reference cycle, or nesting deeper than :attr:`max_depth`, raises
    :class:`~hermes.errors.UnsupportedValueError` naming where (``$.a.b[2]``). Strings are
    passed through untouched (one holding a lone surrogate is not valid Unicode: ``json.dumps``
    escapes it, orjson refuses it).
    """

    #: Deepest nesting accepted; below orjson's limit (254), and far from Python's recursion limit.
    max_depth: ClassVar[int] = 200

    @classmethod
    def serialize(cls, obj: Any) -> Any:
        """The JSON-compatible form of ``obj`` (see the class docstring for each type)."""
        walk = _Walk(cls.max_depth)
        try:
            return walk.value(obj)
        except RecursionError:
            raise UnsupportedValueError(
                f"Cannot serialize: nesting too deep at {walk.where()}"
            ) from None


class _Walk:
    """One serialization: the path being walked and the containers open on it (for cycles)."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.path: list[str | int] = []
        self.open: set[int] = set()

    def value(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is str or kind is bool or obj is None:
            return obj
        if kind is int:
            return _integer(obj)
        if kind is float:
            return _float(obj)
        scalar = _scalar(obj)
        if scalar is not _NOT:
            return scalar
        if isinstance(obj, enum.Enum):
            return self.value(obj.value)
        return self._enter(obj)

    def _enter(self, obj: Any) -> Any:
        key = id(obj)
        if key in self.open:
            raise UnsupportedValueError(
                f"Cannot serialize: reference cycle at {self.where()} "
                f"(an object of type {type(obj).__qualname__} contains itself)"
            )
        if len(self.open) >= self.max_depth:
            raise UnsupportedValueError(
                f"Cannot serialize: nesting deeper than {self.max_depth} levels at {self.where()}"
            )
        self.open.add(key)
        try:
            handle, data = self._plan(obj)
            return handle(data)
        finally:
            self.open.discard(key)

    def _plan(self, obj: Any) -> tuple[Callable[[Any], Any], Any]:
        """How to write ``obj``: a handler and what to hand it (no recursion here, so a level
        of nesting costs few stack frames)."""
        if isinstance(obj, _OPAQUE):
            return self._as_text, obj
        converted = _from_numpy_or_pandas(obj)
        if converted is not _NOT:
            return self.value, converted
        if isinstance(obj, BaseModel):
            return self._mapping, model_document(obj)
        if dataclasses.is_dataclass(obj):
            return self._mapping, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        if isinstance(obj, Mapping):
            return self._mapping, obj
        if isinstance(obj, AbstractSet):
            return self._set, obj
        if isinstance(obj, Sequence | Iterator):
            return self._sequence, obj
        fields = _public_fields(obj)
        return (self._mapping, fields) if fields else (self._as_text, obj)

    def _mapping(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        path = self.path
        for key, item in data.items():
            name = key if type(key) is str else self._key(key)
            if name in out:
                raise UnsupportedValueError(
                    f"Cannot serialize: at {self.where()} the key {key!r} and another key both "
                    f"become {name!r}"
                )
            path.append(name)
            out[name] = self.value(item)
            path.pop()
        return out

    def _key(self, key: Any) -> str:
        value = self.value(key)
        return value if isinstance(value, str) else _json_text(value)

    def _sequence(self, items: Iterable[Any]) -> list[Any]:
        out = []
        path = self.path
        for index, item in enumerate(items):
            path.append(index)
            out.append(self.value(item))
            path.pop()
        return out

    def _set(self, items: Iterable[Any]) -> list[Any]:
        self.path.append("*")
        values = [self.value(item) for item in items]
        self.path.pop()
        return sorted(values, key=_json_text)

    def _as_text(self, obj: Any) -> str:
        kind = type(obj)
        logger.warning(
            "No JSON form for a %s.%s at %s: writing its str() instead",
            kind.__module__,
            kind.__qualname__,
            self.where(),
        )
        return str(obj)

    def where(self) -> str:
        """The current position as a JSON path (``$.content.tags[2]``), shortened when deep."""
        parts = [_path_part(p) for p in self.path]
        if len(parts) > 12:
            parts = [*parts[:5], f"...({len(parts) - 10} more)...", *parts[-5:]]
        return "$" + "".join(parts)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _path_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if part == "*":
        return "[*]"
    if _IDENTIFIER.fullmatch(part):
        return f".{part}"
    return f"[{json.dumps(part, ensure_ascii=False)}]"


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _integer(value: int) -> int | str:
    return value if _INT64_MIN <= value <= _INT64_MAX else str(value)


def _float(value: float) -> Any:
    return value if math.isfinite(value) else extjson.to_extended(value)


def _scalar(obj: Any) -> Any:
    """The JSON form of a value with no children, or ``_NOT``."""
    if isinstance(obj, _BSON_TYPES):
        return extjson.to_extended(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return extjson.to_extended(bytes(obj))
    if isinstance(obj, enum.Enum):
        return _NOT
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return _integer(int(obj))
    if isinstance(obj, float):
        return _float(float(obj))
    if isinstance(obj, datetime | date | time):
        if _module_root(obj) == "pandas":
            return _NOT  # NaT is a datetime too: the pandas branch turns it into None
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return to_jsonable_python(obj)
    if isinstance(obj, uuid.UUID | Decimal | PurePath):
        return str(obj)
    return _NOT


def _module_root(obj: Any) -> str:
    return type(obj).__module__.partition(".")[0]


def _from_numpy_or_pandas(obj: Any) -> Any:
    """Plain Python data for a NumPy or pandas object, or ``_NOT``; imports neither eagerly."""
    root = _module_root(obj)
    if root == "numpy":
        import numpy

        if isinstance(obj, numpy.ndarray | numpy.generic):
            if obj.dtype.kind == "M":  # datetime64: tolist() would give bare nanosecond ints
                return numpy.datetime_as_string(obj).tolist()
            return obj.tolist()
    elif root == "pandas":
        import pandas

        if isinstance(obj, pandas.DataFrame):
            return obj.to_dict(orient="records")
        if isinstance(obj, pandas.Series | pandas.Index):
            return obj.tolist()
        if obj is pandas.NaT or obj is pandas.NA:
            return None
        if isinstance(obj, datetime):  # a Timestamp, which may carry nanoseconds
            return obj.isoformat()
    return _NOT


def _public_fields(obj: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in getattr(obj, "__dict__", {}).items():
        if not name.startswith("_"):
            fields[name] = value
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if not name.startswith("_") and name not in fields and hasattr(obj, name):
                fields[name] = getattr(obj, name)
    return fields


def model_document(model: BaseModel) -> dict[str, Any]:
    """A model as a document: the warehouse form (``to_mongo()``) if it has one, else its
    ``model_dump`` with aliases (which is what validation reads back)."""
    to_mongo = getattr(model, "to_mongo", None)
    if callable(to_mongo):
        return to_mongo()
    return model.model_dump(mode="python", by_alias=True)


# ------------------------------------------------------------------------------------------
# Exporting
# ------------------------------------------------------------------------------------------


def _documents(data: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """Each item as a document, lazily; a lone document passed by mistake is refused at once."""
    if isinstance(data, Mapping | BaseModel):
        raise UnsupportedValueError(
            f"Expected an iterable of documents, got a single {type(data).__name__}: "
            "wrap it in a list"
        )
    return (_document(item, position) for position, item in enumerate(data))


def _document(item: Any, position: int) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    if isinstance(item, BaseModel):
        return model_document(item)
    raise UnsupportedValueError(
        f"Document {position}: expected a dict or a Pydantic model, got {type(item).__name__}"
    )


class DataExporter:
    """Write documents (dicts or Pydantic models, any iterable, streamed) to one file.

    Models are written in their warehouse form (``to_mongo()``) when they have one, else as
    ``model_dump(by_alias=True)``. Options go to the format (``json_format="canonical"``,
    ``overwrite=False``...). The file is written atomically; the result gives its path, the
    number of documents, its size and SHA-256.
    """

    @classmethod
    def export_documents(
        cls,
        documents: Iterable[Any],
        output_file: str | Path,
        file_format: str | None = None,
        **options: Any,
    ) -> WriteResult:
        """Write ``documents`` in ``file_format`` (by default the one ``output_file``'s name says)."""
        return write_documents(output_file, _documents(documents), file_format, **options)

    @classmethod
    def export_to_json(
        cls, data: Iterable[Any], output_file: str | Path, **options: Any
    ) -> WriteResult:
        return cls.export_documents(data, output_file, "json", **options)

    @classmethod
    def export_to_jsonl(
        cls, data: Iterable[Any], output_file: str | Path, **options: Any
    ) -> WriteResult:
        return cls.export_documents(data, output_file, "jsonl", **options)

    @classmethod
    def export_to_csv(
        cls, data: Iterable[Any], output_file: str | Path, **options: Any
    ) -> WriteResult:
        return cls.export_documents(data, output_file, "csv", **options)

    @classmethod
    def export_to_parquet(
        cls, data: Iterable[Any], output_file: str | Path, **options: Any
    ) -> WriteResult:
        return cls.export_documents(data, output_file, "parquet", **options)


# ------------------------------------------------------------------------------------------
# Importing
# ------------------------------------------------------------------------------------------


class ImportResult(list[Any]):
    """The valid records (it *is* their list), with what was rejected and why.

    ``errors`` holds a :class:`~hermes.formats.RecordError` (path, location, reason, raw) for
    every record that could not be parsed or failed validation. ``read`` counts every record
    met, ``valid`` those returned, ``rejected`` those in ``errors``; they describe the import
    and do not change if the list is edited afterwards.
    """

    def __init__(
        self,
        records: Iterable[Any] = (),
        *,
        path: str | Path | None = None,
        errors: Iterable[RecordError] = (),
    ) -> None:
        super().__init__(records)
        self.path = str(path) if path is not None else None
        self.errors: list[RecordError] = list(errors)
        self.read = len(self) + len(self.errors)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    @property
    def valid(self) -> int:
        return self.read - self.rejected

    def summary(self) -> str:
        return f"read {self.read}, valid {self.valid}, rejected {self.rejected}"


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors in one line, one ``field: message (got type)`` part per error."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        text = f"{where}: {error['msg']}"
        if error["type"] != "missing":
            text += f" (got {type(error.get('input')).__name__})"
        parts.append(text)
    return "; ".join(parts)


def _validator(target_class: type | None) -> Callable[[dict[str, Any]], Any] | None:
    """How to turn a document into ``target_class``: ``from_mongo`` when the class has it."""
    if target_class is None:
        return None
    for name in ("from_mongo", "model_validate"):
        method = getattr(target_class, name, None)
        if callable(method):
            return method
    raise TypeError(f"target_class must be a Pydantic model class, got {target_class!r}")


def _preview(document: Mapping[str, Any], limit: int = 200) -> str:
    """The start of a rejected document as Extended JSON, as the readers show a bad line."""
    try:
        text = extjson.dumps(document).decode("utf-8")
    except ValueError:
        text = repr(document)
    return text if len(text) <= limit else text[:limit] + "…"


class ImportStream:
    """Documents of one or more files, read lazily in order, validated when a class is given.

    Iterating yields documents (or ``target_class`` instances) as the files are read, with
    memory bounded by ``batch_size``; rejected records are collected in ``errors`` (cleared at
    each new iteration) and passed to ``on_error`` as they are met. With ``strict=True`` the
    first bad record raises instead: a :class:`~hermes.errors.FormatError` for one that cannot
    be parsed, :class:`~hermes.errors.ValidationFailedError` for one that fails validation,
    both naming the file and the line or row. :meth:`to_list` reads everything into an
    :class:`ImportResult`.
    """

    def __init__(
        self,
        files: Iterable[str | Path],
        target_class: type | None = None,
        file_format: str | None = None,
        *,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        source: str | Path | None = None,
        **options: Any,
    ) -> None:
        self.files = [Path(f) for f in files]
        for path in self.files:  # an unknown format is reported now, not at the first read
            if file_format is None:
                detect_format(path)
            else:
                get_format(file_format)
        self.target_class = target_class
        self._convert = _validator(target_class)
        self.file_format = file_format
        self.strict = strict
        self.on_error = on_error
        self.batch_size = batch_size
        self.source = source
        self.options = options
        self.errors: list[RecordError] = []

    def __iter__(self) -> Iterator[Any]:
        self.errors = []
        for path in self.files:
            logger.debug("Reading %s", path)
            yield from self._read(path)

    def to_list(self) -> ImportResult:
        """Every valid record, with the errors and counts of this read."""
        records = list(self)
        return ImportResult(records, path=self.source, errors=self.errors)

    def _reject(self, error: RecordError) -> None:
        self.errors.append(error)
        if self.on_error is not None:
            self.on_error(error)

    def _read(self, path: Path) -> Iterator[Any]:
        unreadable: list[RecordError] = []
        batches = read_documents(
            path,
            self.file_format,
            batch_size=self.batch_size,
            on_error=unreadable.append,
            **self.options,
        )
        for batch in batches:
            # The reader reports a batch's unreadable records before handing the batch over.
            yield from self._settle(path, batch, unreadable)
            unreadable.clear()
        yield from self._settle(path, Batch([], []), unreadable)

    def _settle(self, path: Path, batch: Batch, unreadable: list[RecordError]) -> Iterator[Any]:
        """Validate a batch; report its bad records (unreadable or invalid) in file order."""
        convert = self._convert
        records: list[tuple[str, Any]] = []
        invalid: list[RecordError] = []
        for location, document in batch:
            try:
                records.append((location, document if convert is None else convert(document)))
            except ValidationError as exc:
                reason = describe_validation_error(exc)
                invalid.append(RecordError(str(path), location, reason, _preview(document)))
        errors = _in_file_order([*unreadable, *invalid])
        if self.strict and errors:
            first = errors[0]
            limit = _position(first.location)
            if limit is not None:
                yield from (r for where, r in records if (_position(where) or limit) < limit)
            if any(first is error for error in invalid):
                failure = ValidationFailedError(f"{first.path}, {first.location}: {first.reason}")
                failure.record_error = first  # type: ignore[attr-defined]
                raise failure
            raise first.as_format_error()
        for error in errors:
            self._reject(error)
        for _, record in records:
            yield record


def _position(location: str) -> int | None:
    """The number in a location (``"line 12"``, ``"row 3 (line 4)"`` -> 12, 3)."""
    match = re.search(r"\d+", location)
    return int(match.group()) if match else None


def _in_file_order(errors: list[RecordError]) -> list[RecordError]:
    positions = [_position(error.location) for error in errors]
    if len(errors) < 2 or None in positions:
        return errors
    return [error for _, error in sorted(zip(positions, errors, strict=True), key=lambda p: p[0])]


class DataImporter:
    """Read documents from one file, optionally validating each with a Pydantic class.

    Classes with ``from_mongo`` (the warehouse models) are built with it, others with
    ``model_validate``. Bad records do not stop the import: the result is the list of valid
    records, with ``errors`` and counts (see :class:`ImportResult`); ``strict=True`` raises at
    the first one instead. Other keyword options go to the format.
    """

    @classmethod
    def import_documents(
        cls,
        input_file: str | Path,
        target_class: type | None = None,
        file_format: str | None = None,
        *,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **options: Any,
    ) -> ImportResult:
        """Every valid record of ``input_file`` (format from its name unless ``file_format``)."""
        stream = ImportStream(
            [input_file],
            target_class,
            file_format,
            strict=strict,
            on_error=on_error,
            batch_size=batch_size,
            source=input_file,
            **options,
        )
        return stream.to_list()

    @classmethod
    def import_from_json(
        cls, input_file: str | Path, target_class: type | None = None, **options: Any
    ) -> ImportResult:
        return cls.import_documents(input_file, target_class, "json", **options)

    @classmethod
    def import_from_jsonl(
        cls, input_file: str | Path, target_class: type | None = None, **options: Any
    ) -> ImportResult:
        return cls.import_documents(input_file, target_class, "jsonl", **options)

    @classmethod
    def import_from_csv(
        cls, input_file: str | Path, target_class: type | None = None, **options: Any
    ) -> ImportResult:
        return cls.import_documents(input_file, target_class, "csv", **options)

    @classmethod
    def import_from_parquet(
        cls, input_file: str | Path, target_class: type | None = None, **options: Any
    ) -> ImportResult:
        return cls.import_documents(input_file, target_class, "parquet", **options)


# ------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------

#: Digits of a batch file's number: ``batch_00000.json``. Names sort as text up to 100,000
#: files (100 million documents at the default batch size); past that the number just grows
#: wider, and :meth:`BatchExporter.import_batches` still orders files by their numbers.
BATCH_INDEX_WIDTH = 5


class MissingFolderError(MissingFileError):
    """The input folder does not exist."""

    def __init__(self, path: str | Path) -> None:
        FormatError.__init__(self, path, "no such folder")


def _chunks(items: Iterable[Any], size: int) -> Iterator[Iterator[Any]]:
    """Consecutive runs of at most ``size`` items, each an iterator: nothing is held in memory.

    Each run must be consumed before the next is asked for.
    """
    iterator = iter(items)
    for first in iterator:
        yield itertools.chain((first,), itertools.islice(iterator, size - 1))


def _natural_key(path: Path) -> tuple[Any, ...]:
    """``batch_9`` before ``batch_10``: digit runs compare as numbers."""
    parts = re.split(r"(\d+)", path.name)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


class BatchExporter:
    """A stream of documents as numbered files (``batch_00000.json``, ...), and back.

    Each file is written atomically, so a failure leaves complete files and no partial one.
    """

    @classmethod
    def export_batches(
        cls,
        data: Iterable[Any],
        output_dir: str | Path,
        batch_size: int = 1000,
        file_prefix: str = "batch",
        file_format: str = "json",
        *,
        overwrite: bool = True,
        **options: Any,
    ) -> list[Path]:
        """Write ``data`` as files of ``batch_size`` documents; return their paths in order.

        Documents are pulled one at a time (only the format's own buffering holds more), so any
        iterable of any length works. Empty input writes no file (the folder is still created,
        so importing it back gives no documents rather than an error). Batch files of an earlier
        export with the same prefix and format that this one did not overwrite are removed, so
        the folder never mixes two exports; with ``overwrite=False`` an existing batch file is
        an error and nothing is written.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        folder = Path(output_dir)
        fmt = get_format(file_format)
        suffix = fmt.extensions[0]
        folder.mkdir(parents=True, exist_ok=True)
        earlier = cls._existing_batches(folder, file_prefix, suffix)
        if earlier and not overwrite:
            raise FileExistsError(
                f"{folder} already holds {len(earlier)} batch files named {file_prefix}_*{suffix}"
            )
        paths: list[Path] = []
        written = 0
        for index, chunk in enumerate(_chunks(_documents(data), batch_size)):
            path = folder / f"{file_prefix}_{index:0{BATCH_INDEX_WIDTH}d}{suffix}"
            result = write_documents(path, chunk, fmt.name, **options)
            paths.append(path)
            written += result.count
            logger.info("Wrote %s (%d documents; %d so far)", path.name, result.count, written)
        for stale in sorted(set(earlier) - set(paths)):
            stale.unlink(missing_ok=True)
            logger.info("Removed %s, left by an earlier export", stale.name)
        logger.info("Exported %d documents as %d files to %s", written, len(paths), folder)
        return paths

    @staticmethod
    def _existing_batches(folder: Path, prefix: str, suffix: str) -> list[Path]:
        pattern = re.compile(rf"{re.escape(prefix)}_\d+{re.escape(suffix)}")
        return [p for p in folder.iterdir() if pattern.fullmatch(p.name)]

    @classmethod
    def import_batches(
        cls,
        input_dir: str | Path,
        file_pattern: str = "batch_*.json",
        target_class: type | None = None,
        *,
        file_format: str | None = None,
        strict: bool = False,
        on_error: ErrorHandler | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **options: Any,
    ) -> ImportStream:
        """The documents of the files matching ``file_pattern``, streamed in batch order.

        Files are ordered by the numbers in their names (``batch_9`` before ``batch_10``). The
        result is an :class:`ImportStream`: iterate it to stream, or call ``.to_list()`` for an
        :class:`ImportResult`. A folder with no matching file gives no documents; a missing
        folder raises :class:`MissingFolderError` at once.
        """
        folder = Path(input_dir)
        if not folder.exists():
            raise MissingFolderError(folder)
        if not folder.is_dir():
            raise FormatError(folder, "is a file, not a folder")
        files = sorted((p for p in folder.glob(file_pattern) if p.is_file()), key=_natural_key)
        logger.info("Reading %d batch files from %s", len(files), folder)
        return ImportStream(
            files,
            target_class,
            file_format,
            strict=strict,
            on_error=on_error,
            batch_size=batch_size,
            source=folder,
            **options,
        )
