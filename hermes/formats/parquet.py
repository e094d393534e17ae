"""Parquet: typed columns that DuckDB, Polars, pandas and Spark read as they are, and that Hermes
reads back to the exact BSON documents.

Columns
    One column per top-level field, in first-seen order. Each column (and each struct field and
    list element inside it) gets the one representation that holds every value it meets:

    =================================  ==================================  =====================
    BSON                               Arrow / Parquet                     other tools see
    =================================  ==================================  =====================
    string, int32, double, bool        string, int32, float64, bool        the same
    int64 (``Int64``)                  int64                               the same
    date                               timestamp[ms, UTC]                  a timestamp
    binary subtype 0                   binary                              a blob
    ObjectId                           string, 24 hex digits               a string
    Decimal128                         string (``"1.10"``, ``"NaN"``)      a string
    UUID (binary subtype 4, 16 bytes)  string, ``8-4-4-4-12`` form         a string (castable)
    binary, any other subtype          binary (subtype in the metadata)    a blob
    array                              list<element>                       a list
    sub-document                       struct<...>                         a struct
    regex, timestamp, code, min/max    string: Extended JSON of the value  a JSON string
    key, DBRef, dates outside 1-9999
    mixed (see below)                  string: Extended JSON of the value  a JSON string
    =================================  ==================================  =====================

    UUIDs are strings rather than 16-byte blobs because every tool shows and joins on them as
    strings (DuckDB casts them to its UUID type); a subtype-4 value of another length is binary.

Mixed values are kept, never nulled
    Null fits every type. Anything else that does not fit one type makes the node where the
    conflict happens Extended JSON text (relaxed by default, ``json_format="canonical"`` on
    request; both read back exactly), marked ``"mixed"`` in the metadata:

    - different BSON types in one field across documents (int32 and string; int32 and Int64),
      or binary values of different subtypes;
    - sub-documents whose keys, or key order, differ between documents, and empty ones
      (Parquet has no empty struct); a struct's own fields may be mixed while its siblings stay
      typed;
    - an array whose elements have different types (the whole array becomes text).

    A plain sub-document whose keys are exactly those of an Extended JSON wrapper (``{"$oid":
    ...}``) can be a struct field, but not Extended JSON text: when it lands in a mixed column
    the write is refused with :class:`UnsupportedValueError`.

Missing field, null, key order
    A column holds null both for an explicit null and for an absent field. The hidden column
    ``__hermes_keys`` (list<string>) tells them apart and keeps key order: it is null for a
    document whose keys are exactly the columns in column order, and lists its keys in order
    otherwise. Files in which every document has every column in order do not have it. (If a
    document has a field of that name, the hidden column takes underscores until it is unique.)

Metadata
    The file's key-value metadata holds one JSON object under ``hermes``: ``{"format":
    "hermes-parquet", "version": 1, "keys_column": ..., "columns": [{"name": ..., "bson": ...}]}``
    where each column (recursively: ``items`` of an array, ``fields`` of a struct) names its BSON
    type, binary columns their ``subtype``, and non-native ones their ``storage``. Hermes reads
    the exact values back from it. A Parquet file without it (pandas, DuckDB, Polars, Spark) is
    read with the natural mapping: integers as int (int64 too), floats, strings, binary as bytes,
    timestamps and dates as UTC datetimes (millisecond precision, naive means UTC), decimals as
    Decimal128, lists, structs, maps as sub-documents, times as ISO strings, durations as float
    seconds, nulls as None.

Streaming
    Documents are converted to Arrow a chunk of 1,000 at a time, column by column (a whole
    column per call where its values share one type: strings, numbers, dates and ObjectIds go
    to pyarrow as lists, plain JSON values to orjson with no hook), and every ``row_group_size``
    (10,000) rows make one row group. Only one chunk of Python documents is held: the row
    group waits as Arrow data. A chunk may widen a column that earlier chunks of the row group
    wrote narrower; those are re-encoded. The Parquet schema is fixed when a writer opens, but
    a later row group may bring a new field or widen a type; then a new *segment* (a temporary
    Parquet file) starts with the widened schema. At the end a single segment is copied byte
    for byte to the output (the common case: no second conversion); several are merged one row
    group at a time into the final schema. Segments live in ``temp_dir`` (default: the system
    temporary folder) and are removed on success and on error. The output stream needs no
    ``seek``, so the caller can compress it (``.parquet.gz``, ``.parquet.zst``); that is
    unrelated to ``compression``, the Parquet codec (default ``zstd``: smaller than snappy at
    similar speed, and read by every tool that reads Parquet; ``snappy``, ``gzip``,
    ``brotli``, ``lz4`` and ``none`` are accepted). An export's documents, still in BSON, go
    a chunk at a time to the C scanner (``hermes.formats._bsonarrow``, :data:`SCANS_BSON`),
    which infers the same descriptors and writes the same Arrow buffers from the bytes; a chunk
    it declines (a type it does not reproduce, malformed BSON) is decoded here with naive UTC
    dates (cheaper to decode, the same instants) and converted as any other.

Reading
    Row group by row group in batches of ``batch_size``; a non-seekable stream (a decompressor)
    is first spooled to a temporary file. Each column of a batch is converted at once where its
    Arrow type is the one Hermes writes (dates through numpy, Extended JSON cells in one parse,
    lists and structs from their flattened children); a column that fails that way is read
    again value by value, so that a bad cell spoils only its own row. Locations are ``"row N"``
    (1-based over the file). A value that cannot be restored is a bad record (``on_error``); a
    file that is not Parquet, truncated, or with corrupt Hermes metadata is a
    :class:`FormatError` naming the file.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import io
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import cached_property
from itertools import accumulate, chain, compress, islice, pairwise, repeat
from operator import attrgetter, is_, itemgetter
from pathlib import Path
from typing import IO, Any

import bson
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.raw_bson import RawBSONDocument

from hermes.errors import FormatError, UnsupportedValueError
from hermes.formats import extjson
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    BsonChunks,
    ErrorHandler,
    RecordError,
)

METADATA_KEY = b"hermes"
FORMAT_NAME = "hermes-parquet"
FORMAT_VERSION = 1
KEYS_COLUMN = "__hermes_keys"
DEFAULT_ROW_GROUP_SIZE = 10_000
#: Documents converted to Arrow at a time (a row group is made of several such chunks).
CHUNK_ROWS = 1000
DEFAULT_COMPRESSION = "zstd"
_CODECS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NONE_TYPE = type(None)
_UTC = timezone.utc
#: How a RawBSONDocument handed to the writer is decoded: as the warehouse connection does.
_RAW_CODEC = CodecOptions(
    tz_aware=True, tzinfo=_UTC, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)

try:
    from hermes.formats import _bsonarrow
except ImportError:  # built without a compiler: every chunk is decoded and converted in Python
    _bsonarrow = None

#: Whether BSON documents (an export's) are turned into Arrow columns in C, without decoding.
SCANS_BSON: bool = _bsonarrow is not None

Document = dict[str, Any]

# ------------------------------------------------------------------------------------------
# Descriptors: the BSON type of a column, a struct field or a list element
# ------------------------------------------------------------------------------------------
# A descriptor is a string for a scalar type, ("array", element), ("object", ((key, desc), ...))
# or ("binary", subtype) for binary of a subtype other than 0 and 4-with-16-bytes.

Desc = Any
NULL, STRING, INT32, INT64, DOUBLE, BOOL = "null", "string", "int32", "int64", "double", "bool"
DATE, BINARY, OBJECT_ID, DECIMAL, UUID = "date", "binary", "objectId", "decimal", "uuid"
MIXED = "mixed"

#: BSON types with no Arrow counterpart that other tools could use: stored as Extended JSON.
_TEXT_TYPES = frozenset({"regex", "timestamp", "code", "minKey", "maxKey", "dbref", "datetimeMS"})

#: Exact Python type -> descriptor, for the types whose descriptor does not depend on the value.
_EXACT: dict[type, str] = {
    str: STRING,
    float: DOUBLE,
    bool: BOOL,
    Int64: INT64,
    datetime: DATE,
    bytes: BINARY,
    ObjectId: OBJECT_ID,
    Decimal128: DECIMAL,
    Regex: "regex",
    Timestamp: "timestamp",
    Code: "code",
    MinKey: "minKey",
    MaxKey: "maxKey",
    DBRef: "dbref",
    DatetimeMS: "datetimeMS",
}

_STORAGE = {OBJECT_ID: "hex string", DECIMAL: "string", UUID: "uuid string"}
_STORAGE.update(dict.fromkeys([*_TEXT_TYPES, MIXED], "extended json"))


#: Top-level list columns flattened during inference, kept for the encoder: id -> (list, flat).
_Flats = dict[int, tuple[list[Any], list[Any]]]


class _NotPlain(Exception):
    """A value of a type outside the value model's exact types: normalise the column and retry."""


def _infer(values: list[Any], flats: _Flats | None = None) -> Desc:
    """The narrowest descriptor holding every value (None fits all), MIXED when none does."""
    kinds = _kinds(values)
    has_none = _NONE_TYPE in kinds
    kinds.discard(_NONE_TYPE)
    if not kinds:
        return NULL
    if len(kinds) == 1:
        kind = kinds.pop()
        exact = _EXACT.get(kind)
        if exact is not None:
            return exact
        present = [v for v in values if v is not None] if has_none else values
        return _infer_kind(kind, present, flats)
    result: Desc = NULL
    for kind in kinds:
        result = _unify(result, _infer_kind(kind, [v for v in values if type(v) is kind]))
    return result


def _kinds(values: list[Any]) -> set[type]:
    """The Python types among ``values``. Most columns hold one: counting it (identity
    comparisons) is about twice as fast as hashing every type into a set (embeddings)."""
    types = list(map(type, values))
    if types and types.count(types[0]) == len(types):
        return {types[0]}
    return set(types)


def _infer_kind(kind: type, values: list[Any], flats: _Flats | None = None) -> Desc:
    """The descriptor of values that all have the Python type ``kind``."""
    exact = _EXACT.get(kind)
    if exact is not None:
        return exact
    if kind is int:
        return _infer_ints(values)
    if kind is dict:
        shapes = map(tuple, values)
        keys = next(shapes)
        if not keys or not all(map(keys.__eq__, shapes)):  # stops at the first other key order
            return MIXED
        return ("object", tuple((key, _infer(list(map(itemgetter(key), values)))) for key in keys))
    if kind is list:
        flat = list(chain.from_iterable(values))
        if flats is not None:
            flats[id(values)] = (values, flat)
        element = _infer(flat)
        return MIXED if element == MIXED else ("array", element)
    if kind is Binary:
        subtypes = {value.subtype for value in values}
        if len(subtypes) != 1:
            return MIXED
        subtype = subtypes.pop()
        if subtype == 0:
            return BINARY
        if subtype == 4 and all(len(value) == 16 for value in values):
            return UUID
        return ("binary", subtype)
    raise _NotPlain(kind)


def _infer_ints(values: list[int]) -> Desc:
    """Python ints are int32 when they fit, else int64 (as BSON encodes them)."""
    low, high = min(values), max(values)
    if low >= _INT32_MIN and high <= _INT32_MAX:
        return INT32
    if low < _INT64_MIN or high > _INT64_MAX:
        raise UnsupportedValueError(
            f"The integer {low if low < _INT64_MIN else high} does not fit in 64 bits: "
            "BSON cannot hold it"
        )
    if any(_INT32_MIN <= value <= _INT32_MAX for value in values):
        return MIXED
    return INT64


def _unify(left: Desc, right: Desc) -> Desc:
    """The descriptor holding both; MIXED at the node where they conflict."""
    if left == right:
        return left
    if left == NULL:
        return right
    if right == NULL:
        return left
    if type(left) is tuple and type(right) is tuple and left[0] == right[0]:
        if left[0] == "array":
            element = _unify(left[1], right[1])
            return MIXED if element == MIXED else ("array", element)
        if left[0] == "object" and [k for k, _ in left[1]] == [k for k, _ in right[1]]:
            fields = tuple(
                (k, _unify(a, b)) for (k, a), (_, b) in zip(left[1], right[1], strict=True)
            )
            return ("object", fields)
    return MIXED


def _is_text(desc: Desc) -> bool:
    return desc == MIXED or desc in _TEXT_TYPES


_ARROW_SCALARS: dict[str, pa.DataType] = {
    NULL: pa.null(),
    STRING: pa.string(),
    INT32: pa.int32(),
    INT64: pa.int64(),
    DOUBLE: pa.float64(),
    BOOL: pa.bool_(),
    DATE: pa.timestamp("ms", tz="UTC"),
    BINARY: pa.binary(),
    OBJECT_ID: pa.string(),
    DECIMAL: pa.string(),
    UUID: pa.string(),
}
_KEYS_TYPE = pa.list_(pa.string())


def _arrow_type(desc: Desc) -> pa.DataType:
    if type(desc) is str:
        return _ARROW_SCALARS.get(desc) or pa.string()
    kind = desc[0]
    if kind == "array":
        return pa.list_(_arrow_type(desc[1]))
    if kind == "object":
        return pa.struct([(key, _arrow_type(child)) for key, child in desc[1]])
    return pa.binary()


def _desc_to_json(desc: Desc) -> dict[str, Any]:
    if type(desc) is str:
        node: dict[str, Any] = {"bson": desc}
        if desc in _STORAGE:
            node["storage"] = _STORAGE[desc]
        if desc == UUID:
            node["subtype"] = 4
        return node
    kind = desc[0]
    if kind == "array":
        return {"bson": "array", "items": _desc_to_json(desc[1])}
    if kind == "object":
        return {
            "bson": "object",
            "fields": [{"name": key, **_desc_to_json(child)} for key, child in desc[1]],
        }
    return {"bson": "binary", "subtype": desc[1]}


_KNOWN_SCALARS = frozenset(
    {NULL, STRING, INT32, INT64, DOUBLE, BOOL, DATE, OBJECT_ID, DECIMAL, UUID, MIXED} | _TEXT_TYPES
)


def _desc_from_json(node: Any) -> Desc:
    """The descriptor a metadata node stands for; ValueError when it is not one Hermes writes."""
    if not isinstance(node, dict) or not isinstance(node.get("bson"), str):
        raise ValueError(f"bad column entry {node!r}")
    kind = node["bson"]
    if kind == "array":
        return ("array", _desc_from_json(node.get("items")))
    if kind == "object":
        fields = node.get("fields")
        if not isinstance(fields, list) or not fields:
            raise ValueError(f"bad struct entry {node!r}")
        return ("object", tuple((_field_name(f), _desc_from_json(f)) for f in fields))
    if kind == "binary":
        subtype = node.get("subtype", 0)
        if not isinstance(subtype, int) or not 0 <= subtype <= 255:
            raise ValueError(f"bad binary subtype {subtype!r}")
        return BINARY if subtype == 0 else ("binary", subtype)
    if kind in _KNOWN_SCALARS:
        return kind
    raise ValueError(f"unknown BSON type {kind!r}")


def _field_name(node: dict[str, Any]) -> str:
    name = node.get("name")
    if not isinstance(name, str):
        raise ValueError(f"bad field name {name!r}")
    return name


# ------------------------------------------------------------------------------------------
# Values to Arrow and back
# ------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """The value with every container a dict or list and every scalar of an exact model type."""
    kind = type(value)
    if value is None or kind in _EXACT or kind is int or kind is Binary:
        return value
    if kind is dict:
        return {key: _plain(child) for key, child in value.items()}
    if kind is list:
        return [_plain(child) for child in value]
    if isinstance(value, RawBSONDocument):
        return bson.decode(value.raw, codec_options=_RAW_CODEC)
    if isinstance(value, Mapping):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, tuple):
        return [_plain(child) for child in value]
    if isinstance(value, uuid.UUID):
        return Binary(value.bytes, 4)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    for base in (bool, int, float, str, bytes):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, datetime):
        return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=value.tzinfo)
    if isinstance(value, Decimal):
        return Decimal128(value)
    raise UnsupportedValueError(
        f"Cannot write a value of type {kind.__module__}.{kind.__qualname__} to Parquet"
    )


def _naive_dates(options: CodecOptions) -> CodecOptions:
    """``options`` decoding dates as naive UTC datetimes.

    An aware date costs the BSON decoder a Python call into its time zone (measured: 40% of
    the decoding of a warehouse document); a naive one is the same instant to Parquet (a
    timestamp in UTC) and to Extended JSON, where naive means UTC.
    """
    return options.with_options(tz_aware=False, tzinfo=None, document_class=dict)


def _as_document(document: Mapping[str, Any]) -> Document:
    if type(document) is dict:
        return document
    if isinstance(document, RawBSONDocument):
        return bson.decode(document.raw, codec_options=_RAW_CODEC)
    return dict(document)


def _uuid_text(value: bytes) -> str:
    return str(uuid.UUID(bytes=bytes(value)))


def _text_to_value(text: str) -> Any:
    """An Extended JSON text cell back to its value (a lone wrapper reads as its type)."""
    if '"$' not in text:  # no wrapper anywhere: plain JSON means plain values
        return orjson.loads(text)
    return extjson.loads("[" + text + "]")[0]


def _uuid_from_text(text: str) -> Binary:
    return Binary(uuid.UUID(text).bytes, 4)


def _date_from_arrow(value: datetime) -> datetime:
    return value.replace(tzinfo=_UTC)


Converter = Callable[[Any], Any]


class _Codec:
    """Converts columns of values to Arrow arrays and back, following their descriptors.

    Converters are built once per descriptor; ``None`` means the value goes through unchanged.
    """

    def __init__(self, canonical: bool = False) -> None:
        self.canonical = canonical
        self._to_storage: dict[Desc, Converter | None] = {}
        self._from_storage: dict[Desc, Converter | None] = {}
        self._decoders: dict[Desc, Callable[[pa.Array], list[Any]]] = {}

    # -- writing ---------------------------------------------------------------------------

    def to_arrow(self, desc: Desc, values: list[Any], flats: _Flats | None = None) -> pa.Array:
        """One column, built bottom-up: pyarrow only ever converts flat lists of scalars.

        (Flat lists are several times faster for pyarrow than lists of lists or of dicts.)
        """
        if desc == NULL:
            return pa.nulls(len(values))
        if type(desc) is tuple and desc[0] == "array":
            return self._list_array(desc[1], values, flats)
        if type(desc) is tuple and desc[0] == "object":
            return self._struct_array(desc[1], values)
        if _is_text(desc):
            return self._json_array(values)
        if desc == OBJECT_ID:
            return _object_id_array(values)
        convert = self.storage_converter(desc)
        if convert is not None:
            values = [None if value is None else convert(value) for value in values]
        return pa.array(values, type=_arrow_type(desc))

    def _list_array(self, element: Desc, values: list[Any], flats: _Flats | None) -> pa.Array:
        offsets = pa.array([0, *accumulate(len(value or ()) for value in values)], pa.int32())
        known = flats.get(id(values)) if flats else None
        if known is not None and known[0] is values:
            present, flat = values, known[1]
        else:
            present = [value for value in values if value is not None]
            flat = list(chain.from_iterable(present))
        items = self.to_arrow(element, flat)
        mask = _null_mask(values, len(present))
        list_type = pa.list_(_arrow_type(element))
        return pa.ListArray.from_arrays(offsets, items, type=list_type, mask=mask)

    def _struct_array(self, fields: tuple[tuple[str, Desc], ...], values: list[Any]) -> pa.Array:
        present = len(values) - values.count(None)
        children = [
            self.to_arrow(
                child,
                list(map(itemgetter(key), values))
                if present == len(values)
                else [None if value is None else value[key] for value in values],
            )
            for key, child in fields
        ]
        struct_fields = [pa.field(key, _arrow_type(child)) for key, child in fields]
        mask = _null_mask(values, present)
        return pa.StructArray.from_arrays(children, fields=struct_fields, mask=mask)

    def _json_text(self, value: Any) -> bytes:
        # The value is wrapped so that a sub-document is checked like any nested one.
        return extjson.dumps({"": value}, self.canonical)[4:-1]

    def _json_array(self, values: list[Any]) -> pa.Array:
        """Extended JSON text of each value, as a string array.

        Texts are turned into Arrow a slice at a time: orjson's bytes each hold a 4 KB buffer
        whatever their length, so a whole batch of them would take tens of megabytes.
        """
        step = _TEXT_SLICE
        arrays = [
            pa.array(self._json_texts(values[start : start + step]), type=pa.binary())
            for start in range(0, len(values), step)
        ]
        if not arrays:
            return pa.array([], type=pa.string())
        binary = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        # UTF-8 by construction (orjson writes nothing else): viewed as string without the
        # validation pass over every byte that converting to string would make.
        return binary.view(pa.string())

    def _json_texts(self, values: list[Any]) -> list[bytes | None]:
        """Extended JSON of each value (None stays null).

        In relaxed mode a value made of JSON types only is its plain JSON: orjson alone writes
        it, with no hook. The full encoder takes over where orjson meets another type, or where
        the text may hide what plain JSON gets wrong: ``"$`` (a key that poses as a wrapper,
        refused) or ``null`` standing for a NaN or an infinity. Both are looked for in all the
        texts at once first, and value by value only when found (``null`` only when the values
        hold a float at all).
        """
        exact = self._json_text
        if self.canonical:
            return [None if value is None else exact(value) for value in values]
        dumps = orjson.dumps
        texts: list[bytes | None] = []
        plain: list[int] = []  # the rows orjson wrote alone
        for row, value in enumerate(values):
            if value is None:
                texts.append(None)
                continue
            try:
                texts.append(dumps(value, option=_PLAIN_JSON))
            except orjson.JSONEncodeError:
                texts.append(exact(value))
            else:
                plain.append(row)
        joined = b"".join(filter(None, texts))
        check_dollar = b"$" in joined  # memchr: the two-byte search runs only when needed
        check_null = b"null" in joined and _holds_float(values)
        if check_dollar or check_null:
            for row in plain:
                text: Any = texts[row]
                if (check_dollar and b'"$' in text) or (
                    check_null and b"null" in text and extjson.has_non_finite(values[row])
                ):
                    texts[row] = exact(values[row])
        return texts

    def storage_converter(self, desc: Desc) -> Converter | None:
        """How a scalar value is stored (lists and structs are built by :meth:`to_arrow`, and
        so are Extended JSON text and ObjectIds, a whole column at a time)."""
        if desc not in self._to_storage:
            self._to_storage[desc] = self._build_to_storage(desc)
        return self._to_storage[desc]

    def _build_to_storage(self, desc: Desc) -> Converter | None:
        if type(desc) is str:
            return {DECIMAL: str, UUID: _uuid_text}.get(desc)
        return bytes  # binary of another subtype

    # -- reading ---------------------------------------------------------------------------

    def value_converter(self, desc: Desc) -> Converter | None:
        if desc not in self._from_storage:
            self._from_storage[desc] = self._build_from_storage(desc)
        return self._from_storage[desc]

    def _build_from_storage(self, desc: Desc) -> Converter | None:
        if _is_text(desc):
            return _text_to_value
        if type(desc) is str:
            return {
                INT64: Int64,
                DATE: _date_from_arrow,
                OBJECT_ID: ObjectId,
                DECIMAL: Decimal128,
                UUID: _uuid_from_text,
            }.get(desc)
        kind = desc[0]
        if kind == "array":
            inner = self.value_converter(desc[1])
            if inner is None:
                return None
            return lambda items: [None if item is None else inner(item) for item in items]
        if kind == "object":
            return _struct_converter([(key, self.value_converter(c)) for key, c in desc[1]])
        subtype = desc[1]
        return lambda data: Binary(data, subtype)

    def from_arrow(self, desc: Desc, array: pa.Array | pa.ChunkedArray) -> list[Any]:
        """Value by value: ``to_pylist``, then the converter of each value."""
        values = array.to_pylist()
        convert = self.value_converter(desc)
        if convert is None:
            return values
        return [None if value is None else convert(value) for value in values]

    # -- reading a whole column at once ----------------------------------------------------

    def decode(self, desc: Desc, array: pa.Array) -> list[Any]:
        """The values of a column, converted a whole array at a time where its Arrow type is
        the one Hermes writes for ``desc``: dates through numpy, Extended JSON text in one
        parse, lists and structs from their flattened children. Any other Arrow type goes
        value by value (:meth:`from_arrow`), which raises where the two disagree."""
        if not _arrow_matches(desc, array.type):
            return self.from_arrow(desc, array)
        decoder = self._decoders.get(desc)
        if decoder is None:
            decoder = self._decoders[desc] = self._build_decoder(desc)
        return decoder(array)

    def _build_decoder(self, desc: Desc) -> Callable[[pa.Array], list[Any]]:
        if _is_text(desc):
            return _decode_texts
        if desc == DATE:
            return _decode_dates
        if type(desc) is tuple and desc[0] == "array":
            return lambda array: self._decode_lists(desc[1], array)
        if type(desc) is tuple and desc[0] == "object":
            return lambda array: self._decode_structs(desc[1], array)
        convert = self.value_converter(desc)
        if convert is None:
            return pa.Array.to_pylist
        return lambda array: _mapped(convert, array)

    def _decode_lists(self, element: Desc, array: pa.ListArray) -> list[Any]:
        offsets = _buffer_numbers(array, np.int32, len(array) + 1)
        start = int(offsets[0])
        items = array.values.slice(start, int(offsets[-1]) - start)
        bounds = pairwise((offsets - start).tolist())
        dtype = _NUMPY_ITEMS.get(element)
        if dtype is not None and not items.null_count:
            # Numbers (embeddings) go from numpy to each list: no list of every item first.
            numbers = _buffer_numbers(items, dtype, len(items))
            lists = [numbers[low:high].tolist() for low, high in bounds]
        else:
            flat = self.decode(element, items)
            lists = [flat[low:high] for low, high in bounds]
        return _with_nulls(lists, array)

    def _decode_structs(
        self, fields: tuple[tuple[str, Desc], ...], array: pa.StructArray
    ) -> list[Any]:
        # flatten() gives each field as a column, null wherever the struct is.
        children = array.flatten()
        columns = [
            self.decode(desc, child) for (_, desc), child in zip(fields, children, strict=True)
        ]
        keys = [key for key, _ in fields]
        return _with_nulls(_dicts(keys, columns), array)


#: List items numpy turns into exactly the Python values of their BSON type, with its type.
_NUMPY_ITEMS = {DOUBLE: np.float64, INT32: np.int32}


def _arrow_matches(desc: Desc, arrow_type: pa.DataType) -> bool:
    """Whether ``arrow_type`` is what Hermes writes for ``desc`` (list field names aside)."""
    if type(desc) is str:
        return arrow_type == (_ARROW_SCALARS.get(desc) or pa.string())
    kind = desc[0]
    if kind == "array":
        return pa.types.is_list(arrow_type) and _arrow_matches(desc[1], arrow_type.value_type)
    if kind == "object":
        fields = desc[1]
        return (
            pa.types.is_struct(arrow_type)
            and arrow_type.num_fields == len(fields)
            and all(
                arrow_type.field(index).name == key
                and _arrow_matches(child, arrow_type.field(index).type)
                for index, (key, child) in enumerate(fields)
            )
        )
    return arrow_type == pa.binary()


def _dicts(keys: list[str], columns: list[list[Any]]) -> list[dict[str, Any]]:
    """One dict per row of ``columns`` (lists of one length), with ``keys`` in order."""
    # Built by map rather than a comprehension, without zip's strict check: a third faster.
    return list(map(dict, map(zip, repeat(keys), zip(*columns, strict=False))))


def _mapped(convert: Converter, array: pa.Array) -> list[Any]:
    values = array.to_pylist()
    if not array.null_count:
        return list(map(convert, values))
    return [None if value is None else convert(value) for value in values]


# Arrays are read into numpy from their buffers, and scalars taken from arrays built from
# buffers: pyarrow's ``to_numpy``, ``pa.array`` and ``pa.scalar`` import pandas on first use
# (measured: 0.2 CPU-s and 45 MB), which reading never needs.


def _buffer_numbers(array: pa.Array, dtype: Any, count: int) -> np.ndarray:
    """The first ``count`` numbers of an array's second buffer (values, or a list's offsets),
    from its offset on, without a copy; under a null, whatever the buffer holds."""
    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype, count, array.offset * size)


def _null_rows(array: pa.Array) -> np.ndarray:
    """The rows where ``array`` is null, from its validity bitmap."""
    if not array.null_count:
        return np.empty(0, dtype=np.intp)
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], np.uint8), bitorder="little")
    return np.flatnonzero(bits[array.offset : array.offset + len(array)] == 0)


def _with_nulls(values: list[Any], array: pa.Array) -> list[Any]:
    """``values`` with None wherever ``array`` is null."""
    for row in _null_rows(array).tolist():
        values[row] = None
    return values


def _text_scalar(text: bytes) -> pa.Scalar:
    offsets = pa.py_buffer(np.array([0, len(text)], dtype=np.int32))
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(text)])[0]


_NULL_CELL, _COMMA = _text_scalar(b"null"), _text_scalar(b",")


_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
#: The dates Python holds, in milliseconds from the epoch.
_MIN_MILLIS = (datetime.min.replace(tzinfo=_UTC) - _EPOCH) // timedelta(milliseconds=1)
_MAX_MILLIS = (datetime.max.replace(tzinfo=_UTC) - _EPOCH) // timedelta(milliseconds=1)


def _decode_dates(array: pa.Array) -> list[Any]:
    """timestamp[ms, UTC] to aware datetimes: numpy makes the timedeltas from the epoch (in
    C), one addition each makes the date. pyarrow's own ``to_pylist`` goes through the time
    zone database for every value, about forty times slower."""
    numbers = _buffer_numbers(array, np.int64, len(array))
    nulls = _null_rows(array)
    if len(nulls):
        numbers = numbers.copy()
        numbers[nulls] = 0
    if len(numbers) and (numbers.min() < _MIN_MILLIS or numbers.max() > _MAX_MILLIS):
        raise OverflowError("a date outside the years 1 to 9999")
    deltas = numbers.astype("timedelta64[ms]").astype(object)
    return _with_nulls(list(map(_EPOCH.__add__, deltas)), array)


def _decode_texts(array: pa.Array) -> list[Any]:
    """Extended JSON cells parsed in one call: joined into a JSON array by Arrow, read by
    orjson, wrappers turned into values only when a ``"$`` occurs at all.

    A column whose cells do not each make one value (a cell that is not JSON, or holds two)
    fails here, and the caller reads it cell by cell, where each bad cell is its own record.
    """
    import pyarrow.compute as pc  # reading only: writers and exports need not load it

    count = len(array)
    if not count:
        return []
    cells = pc.fill_null(array, _NULL_CELL) if array.null_count else array
    bounds = pa.py_buffer(np.array([0, count], dtype=np.int32))
    whole = pa.ListArray.from_arrays(pa.Array.from_buffers(pa.int32(), 2, [None, bounds]), cells)
    text = b"".join((b"[", pc.binary_join(whole, _COMMA)[0].as_buffer(), b"]"))
    values = orjson.loads(text)
    if len(values) != count:
        raise ValueError("a cell holds more or less than one JSON value")
    if b"$" in text and b'"$' in text:
        return extjson.from_extended(values)
    return values


#: orjson with no hook: a BSON-only type, a subclass or a date raises instead of being written.
_PLAIN_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _holds_float(values: list[Any]) -> bool:
    """Whether a float is anywhere in ``values``: dicts and lists are opened a level at a time
    by C iterators, not by a Python call per value."""
    level = values
    while level:
        types = list(map(type, level))
        kinds = set(types)
        if float in kinds:
            return True
        inside = []
        if dict in kinds:
            dicts = compress(level, map(is_, types, repeat(dict)))
            inside.append(chain.from_iterable(map(dict.values, dicts)))
        if list in kinds:
            inside.append(chain.from_iterable(compress(level, map(is_, types, repeat(list)))))
        level = list(chain.from_iterable(inside))
    return False


#: Values turned into Extended JSON text before their texts become Arrow data.
_TEXT_SLICE = 1024


_OID_BINARY = attrgetter("binary")


def _object_id_array(values: list[Any]) -> pa.Array:
    """ObjectIds as their hex strings, hexed in one call for the whole column (``str`` of each
    is a Python call per value); a column with nulls takes the value-by-value way."""
    size = 24 * len(values)
    if _NONE_TYPE in map(type, values) or size >= 2**31:
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    data = binascii.hexlify(b"".join(map(_OID_BINARY, values)))
    offsets = np.arange(0, size + 1, 24, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data))


def _null_mask(values: list[Any], present: int) -> pa.Array | None:
    """True where the value is null; None when none is."""
    if present == len(values):
        return None
    return pa.array([value is None for value in values], type=pa.bool_())


def _struct_converter(fields: list[tuple[str, Converter | None]]) -> Converter | None:
    """Converts the fields of a dict that need it; None when no field does."""
    if all(convert is None for _, convert in fields):
        return None

    def convert_struct(value: dict[str, Any]) -> dict[str, Any]:
        # Only ever applied to the fresh dicts of ``to_pylist``: converted in place.
        for key, convert in fields:
            item = value[key]
            if convert is not None and item is not None:
                value[key] = convert(item)
        return value

    return convert_struct


# ------------------------------------------------------------------------------------------
# Schema of a file (or of one segment of it)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    """Columns with their descriptors, and whether the hidden keys column is there."""

    columns: tuple[tuple[str, Desc], ...]
    has_keys: bool

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @cached_property
    def keys_name(self) -> str:
        name = KEYS_COLUMN
        while name in self.names:
            name += "_"
        return name

    def metadata(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "keys_column": self.keys_name if self.has_keys else None,
                "columns": [{"name": name, **_desc_to_json(desc)} for name, desc in self.columns],
            }
        )

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(name, _arrow_type(desc)) for name, desc in self.columns]
        if self.has_keys:
            fields.append(pa.field(self.keys_name, _KEYS_TYPE))
        return pa.schema(fields, metadata={METADATA_KEY: self.metadata()})

    def encodings(self) -> dict[str, Any]:
        """Parquet encodings per leaf column: byte-stream-split for doubles (embeddings come out
        smaller and are written and read about twice as fast), dictionaries for the rest."""
        leaves = [leaf for name, desc in self.columns for leaf in _leaf_paths(name, desc)]
        if self.has_keys:
            leaves.append((f"{self.keys_name}.list.element", STRING))
        doubles = [path for path, desc in leaves if desc == DOUBLE]
        others = [path for path, desc in leaves if desc != DOUBLE]
        return {"use_dictionary": others or False, "use_byte_stream_split": doubles or False}

    def widened(self, columns: dict[str, Desc], needs_keys: bool) -> _Schema:
        """This schema grown to hold a batch with ``columns``: new ones come last.

        The keys column is needed when a document's keys are not the columns in order, when
        there are no columns (it carries the row count), and once columns are added after rows
        were written (those rows lack them).
        """
        merged = dict(self.columns)
        for name, desc in columns.items():
            merged[name] = _unify(merged[name], desc) if name in merged else desc
        grown = bool(self.columns) and len(merged) > len(self.columns)
        has_keys = self.has_keys or needs_keys or grown or not merged
        widened = _Schema(tuple(merged.items()), has_keys)
        return self if widened == self else widened  # keeps the cached Arrow schema


def _leaf_paths(path: str, desc: Desc) -> Iterator[tuple[str, Desc]]:
    """Parquet column paths of the leaves under ``path`` (lists are ``list.element``)."""
    if type(desc) is tuple and desc[0] == "array":
        yield from _leaf_paths(f"{path}.list.element", desc[1])
    elif type(desc) is tuple and desc[0] == "object":
        for key, child in desc[1]:
            yield from _leaf_paths(f"{path}.{key}", child)
    else:
        yield path, desc


def _columns(documents: list[Document]) -> tuple[dict[str, list[Any]], tuple[str, ...] | None]:
    """Each field's values (None where a document lacks it), fields in first-seen order, and
    the documents' common key order (None when they differ).

    Documents of one collection mostly share their keys and key order: then each column is
    taken with one ``itemgetter`` pass, without a per-document lookup of every field.
    """
    shapes = dict.fromkeys(map(tuple, documents))
    if len(shapes) == 1:
        shape = next(iter(shapes))
        return {name: list(map(itemgetter(name), documents)) for name in shape}, shape
    names = dict.fromkeys(chain.from_iterable(shapes))
    return {name: [doc.get(name) for doc in documents] for name in names}, None


def _document_keys(
    documents: list[Document], names: tuple[str, ...], shape: tuple[str, ...] | None
) -> list[list[str] | None] | None:
    """Each document's keys, or None where they are exactly ``names`` in order; None for the
    whole batch when every document's are. ``shape`` is the documents' common key order."""
    if shape is not None:
        return None if shape == names else [list(shape)] * len(documents)
    keys = [None if tuple(doc) == names else list(doc) for doc in documents]
    return keys if keys.count(None) < len(keys) else None


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


class _OutputSink(io.RawIOBase):
    """The caller's stream as pyarrow sees it: write-only, counting its own position.

    A compressing stream's ``tell`` may count compressed bytes, which would corrupt the offsets
    Parquet records; ``flush`` is left to the caller (a gzip flush costs compression) and
    ``close`` leaves the stream open.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._stream.write(view)
        self._position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass


@dataclass
class _Segment:
    path: Path
    schema: _Schema
    writer: pq.ParquetWriter | None = None


class _SegmentedWriter:
    """Writes documents to temporary segment files, one per schema, a row group at a time.

    Documents come in chunks (:data:`CHUNK_ROWS`), each converted to an Arrow table while its
    documents are fresh in the processor's cache; the tables of a row group wait (as Arrow,
    several times smaller than the documents) until it is full. A chunk that widens the
    schema re-encodes the waiting tables it affects, as segments are at the end.
    """

    def __init__(
        self, folder: Path, codec: _Codec, writer_options: dict[str, Any], row_group_size: int
    ) -> None:
        self.folder = folder
        self.codec = codec
        self.writer_options = writer_options
        self.row_group_size = row_group_size
        self.segments: list[_Segment] = []
        self.pending: list[tuple[_Schema, pa.Table]] = []
        self.pending_rows = 0

    @property
    def current(self) -> _Segment | None:
        return self.segments[-1] if self.segments else None

    @property
    def schema(self) -> _Schema:
        """The schema that holds every row so far."""
        if self.pending:
            return self.pending[-1][0]
        current = self.current
        return current.schema if current else _Schema((), False)

    def write(self, documents: Rows) -> None:
        """Convert ``documents``; write a row group each time ``row_group_size`` rows wait."""
        while documents:
            room = self.row_group_size - self.pending_rows
            part, documents = documents[:room], documents[room:]
            schema, table = _to_table(part, self.schema, self.codec)
            self.pending.append((schema, table))
            self.pending_rows += table.num_rows
            if self.pending_rows >= self.row_group_size:
                self.flush()

    def flush(self) -> None:
        """Write the waiting rows as one row group, in a new segment if the schema changed."""
        if not self.pending:
            return
        final = self.pending[-1][0]
        tables = [
            table if schema == final else _convert_table(table, schema, final, self.codec)
            for schema, table in self.pending
        ]
        self.pending, self.pending_rows = [], 0
        current = self.current
        if current is None or current.schema != final:
            self._start_segment(final)
        self._write_table(tables[0] if len(tables) == 1 else pa.concat_tables(tables))

    def _start_segment(self, schema: _Schema) -> None:
        self.close()
        path = self.folder / f"segment-{len(self.segments):05d}.parquet"
        writer = pq.ParquetWriter(
            str(path), schema.arrow_schema, **self.writer_options, **schema.encodings()
        )
        self.segments.append(_Segment(path, schema, writer))

    def _write_table(self, table: pa.Table) -> None:
        segment = self.current
        assert segment is not None and segment.writer is not None
        segment.writer.write_table(table, row_group_size=max(1, table.num_rows))

    def close(self) -> None:
        segment = self.current
        if segment is not None and segment.writer is not None:
            segment.writer.close()
            segment.writer = None

    def finish(self, stream: IO[bytes]) -> None:
        """Put the whole file on ``stream``: copy a lone segment, merge several."""
        self.close()
        if len(self.segments) == 1:
            with open(self.segments[0].path, "rb") as source:
                shutil.copyfileobj(source, stream, 1 << 20)
            return
        final = self.segments[-1].schema if self.segments else _Schema((), True)
        writer = pq.ParquetWriter(
            pa.PythonFile(_OutputSink(stream), mode="w"),
            final.arrow_schema,
            **self.writer_options,
            **final.encodings(),
        )
        try:
            for segment in self.segments:
                with contextlib.closing(pq.ParquetFile(segment.path)) as source:
                    for index in range(source.num_row_groups):
                        table = source.read_row_group(index)
                        if segment.schema != final:
                            table = _convert_table(table, segment.schema, final, self.codec)
                        writer.write_table(table, row_group_size=max(1, table.num_rows))
        finally:
            writer.close()


class _Raws:
    """An export's documents still in BSON: scanned into Arrow buffers in C where the scanner
    takes them (``hermes.formats._bsonarrow``), else decoded and converted like any others."""

    __slots__ = ("raws", "options")

    def __init__(self, raws: list[bytes], options: CodecOptions) -> None:
        self.raws = raws
        self.options = options

    def __len__(self) -> int:
        return len(self.raws)

    def __bool__(self) -> bool:
        return bool(self.raws)

    def __getitem__(self, part: slice) -> _Raws:
        return _Raws(self.raws[part], self.options)

    def clear(self) -> None:
        self.raws = []

    def decoded(self) -> list[Document]:
        return bson.decode_all(b"".join(self.raws), self.options)


Rows = list[Document] | _Raws


def _to_table(documents: Rows, base: _Schema, codec: _Codec) -> tuple[_Schema, pa.Table]:
    """The documents as a table of ``base`` widened to hold them, and that schema."""
    if isinstance(documents, _Raws):
        scanned = _scanned_table(documents.raws, base, codec)
        if scanned is not None:
            return scanned
        documents = documents.decoded()
    rows = len(documents)
    values, shape = _columns(documents)
    flats: _Flats = {}
    descs = {name: _infer_column(column, flats) for name, column in values.items()}
    names = tuple(dict.fromkeys([*base.names, *values]))
    keys = _document_keys(documents, names, shape)
    schema = base.widened(descs, keys is not None)
    arrays = [
        codec.to_arrow(desc, values.pop(name), flats)
        if name in values
        else pa.nulls(rows, _arrow_type(desc))
        for name, desc in schema.columns
    ]
    if schema.has_keys:
        arrays.append(pa.nulls(rows, _KEYS_TYPE) if keys is None else pa.array(keys, _KEYS_TYPE))
    return schema, pa.Table.from_arrays(arrays, schema=schema.arrow_schema)


def _scanned_table(
    raws: list[bytes], base: _Schema, codec: _Codec
) -> tuple[_Schema, pa.Table] | None:
    """:func:`_to_table` of BSON documents by the C scanner, which infers the descriptors as
    :func:`_infer` does and writes each column's buffers in the type of the widened schema; None
    when it declines the chunk (it never guesses: the Python path then converts it)."""
    scanned = _bsonarrow.scan(raws)
    if scanned is None:
        return None
    names, descs, keys, handle = scanned
    rows = len(raws)
    everything = tuple(dict.fromkeys([*base.names, *names]))
    if keys is None:  # every document has exactly ``names``, in order
        document_keys = None if names == everything else [list(names)] * rows
    else:
        listed = [None if own == everything else list(own) for own in keys]
        document_keys = listed if listed.count(None) < rows else None
    schema = base.widened(dict(zip(names, descs, strict=True)), document_keys is not None)
    final = dict(schema.columns)
    specs = _bsonarrow.build(handle, [final[name] for name in names], codec.canonical)
    if specs is None:
        return None
    built = dict(zip(names, specs, strict=True))
    arrays = [
        _from_buffers(desc, built[name]) if name in built else pa.nulls(rows, _arrow_type(desc))
        for name, desc in schema.columns
    ]
    if schema.has_keys:
        arrays.append(
            pa.nulls(rows, _KEYS_TYPE)
            if document_keys is None
            else pa.array(document_keys, _KEYS_TYPE)
        )
    return schema, pa.Table.from_arrays(arrays, schema=schema.arrow_schema)


def _from_buffers(desc: Desc, spec: tuple[int, int, Any, Any]) -> pa.Array:
    """The Arrow array of a column the C scanner built: (length, null count, buffers,
    children), buffers None when every value is null."""
    length, nulls, buffers, children = spec
    arrow_type = _arrow_type(desc)
    if buffers is None:
        return pa.nulls(length, arrow_type)
    kids = None
    if children:
        if desc[0] == "array":
            kids = [_from_buffers(desc[1], children[0])]
        else:
            kids = [_from_buffers(d, c) for (_, d), c in zip(desc[1], children, strict=True)]
    return pa.Array.from_buffers(
        arrow_type,
        length,
        [None if buffer is None else pa.py_buffer(buffer) for buffer in buffers],
        nulls,
        children=kids,
    )


def _infer_column(values: list[Any], flats: _Flats) -> Desc:
    """The column's descriptor; values of types outside the model are normalised in place."""
    try:
        return _infer(values, flats)
    except _NotPlain:
        flats.pop(id(values), None)
        values[:] = [_plain(value) for value in values]
        return _infer(values, flats)


def _convert_table(table: pa.Table, source: _Schema, target: _Schema, codec: _Codec) -> pa.Table:
    """A segment's rows in the final schema: widened columns re-encoded, new ones null."""
    rows = table.num_rows
    positions = {name: index for index, name in enumerate(source.names)}
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for name, desc in target.columns:
        index = positions.get(name)
        old = source.columns[index][1] if index is not None else NULL
        if old == NULL:
            arrays.append(pa.nulls(rows, _arrow_type(desc)))
        elif old == desc:
            arrays.append(table.column(index))
        else:
            arrays.append(codec.to_arrow(desc, codec.from_arrow(old, table.column(index))))
    if target.has_keys:
        keys = table.column(len(source.columns)).to_pylist() if source.has_keys else [None] * rows
        if source.names != target.names:
            own = list(source.names)
            keys = [own if key is None else key for key in keys]
        arrays.append(pa.array(keys, type=_KEYS_TYPE))
    return pa.Table.from_arrays(arrays, schema=target.arrow_schema)


def _writer_options(compression: str | None) -> dict[str, Any]:
    codec = (compression or "none").lower()
    if codec not in _CODECS:
        raise ValueError(
            f"Unknown Parquet compression {compression!r}; choose one of: {', '.join(_CODECS)}"
        )
    return {"compression": codec}


def _is_canonical(json_format: str | None) -> bool:
    mode = (json_format or "relaxed").lower()
    if mode not in ("relaxed", "canonical"):
        raise ValueError(f"Unknown JSON format {json_format!r}; choose relaxed or canonical")
    return mode == "canonical"


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------

_DECODE_ERRORS = (
    ValueError,
    TypeError,
    AttributeError,  # a column whose Arrow type disagrees with Hermes' metadata
    OverflowError,
    ArithmeticError,
    KeyError,
    bson.errors.BSONError,
    pa.ArrowException,
)


@dataclass
class _Column:
    """How one Parquet column becomes values: an optional Arrow cast, then a converter per
    value; or, first, ``whole``, which converts the whole array at once."""

    name: str
    index: int
    cast: pa.DataType | None
    convert: Converter | None
    whole: Callable[[pa.Array], list[Any]] | None = None

    def decode(self, batch: pa.RecordBatch, bad: dict[int, str]) -> list[Any]:
        array = batch.column(self.index)
        try:
            if self.whole is not None:
                return self.whole(array)
            return self._decode(array)
        except _DECODE_ERRORS:
            return self._decode_each(array, bad)

    def _decode(self, array: pa.Array) -> list[Any]:
        if self.cast is not None:
            array = array.cast(self.cast, safe=False)
        values = array.to_pylist()
        convert = self.convert
        if convert is None:
            return values
        return [None if value is None else convert(value) for value in values]

    def _decode_each(self, array: pa.Array, bad: dict[int, str]) -> list[Any]:
        """Value by value, so that one bad cell spoils only its own row."""
        values: list[Any] = []
        for row in range(len(array)):
            try:
                values.append(self._decode(array.slice(row, 1))[0])
            except _DECODE_ERRORS as exc:
                bad.setdefault(row, f"column {self.name!r}: cannot read the value ({exc})")
                values.append(None)
        return values


class _Layout:
    """Turns record batches of one file into documents."""

    def __init__(self, columns: list[_Column], keys_index: int | None) -> None:
        self.columns = columns
        self.keys_index = keys_index
        self.names = [column.name for column in columns]
        self.positions = {name: index for index, name in enumerate(self.names)}

    def documents(self, batch: pa.RecordBatch, bad: dict[int, str]) -> list[Document | None]:
        """The batch's documents; None at the rows listed in ``bad`` (row -> reason)."""
        values = [column.decode(batch, bad) for column in self.columns]
        names = self.names
        if self.keys_index is None:
            documents: list[Document | None] = (
                _dicts(names, values) if values else [{} for _ in range(batch.num_rows)]
            )
        else:
            keys = batch.column(self.keys_index).to_pylist()
            documents = [self._document(values, keys, row, bad) for row in range(len(keys))]
        for row in bad:
            documents[row] = None
        return documents

    def _document(
        self, values: list[list[Any]], keys: list[Any], row: int, bad: dict[int, str]
    ) -> Document | None:
        order = keys[row]
        if order is None:
            return {name: column[row] for name, column in zip(self.names, values, strict=True)}
        try:
            return {key: values[self.positions[key]][row] for key in order}
        except (KeyError, TypeError):
            bad.setdefault(row, f"keys column names a field that is not a column: {order!r}")
            return None


def _hermes_layout(schema: pa.Schema, raw: bytes, path: str) -> _Layout:
    try:
        meta = orjson.loads(raw)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ValueError("not Hermes metadata")
        version = meta.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise FormatError(
                path, f"written by a newer Hermes (Parquet layout version {version!r})"
            )
        entries = meta["columns"]
        if not isinstance(entries, list):
            raise ValueError("columns is not a list")
        columns = [(_field_name(entry), _desc_from_json(entry)) for entry in entries]
        keys_name = meta.get("keys_column")
    except FormatError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(path, f"corrupt Hermes metadata in the Parquet footer ({exc})") from None
    codec = _Codec()
    decoders = []
    for name, desc in columns:
        index = schema.get_field_index(name)
        if index < 0:
            raise FormatError(path, f"corrupt Hermes metadata: no column {name!r} in the file")
        whole = functools.partial(codec.decode, desc)
        decoders.append(_Column(name, index, None, codec.value_converter(desc), whole))
    keys_index = None
    if keys_name is not None:
        keys_index = schema.get_field_index(keys_name) if isinstance(keys_name, str) else -1
        if keys_index < 0:
            raise FormatError(path, f"corrupt Hermes metadata: no keys column {keys_name!r}")
    return _Layout(decoders, keys_index)


def _foreign_layout(schema: pa.Schema) -> _Layout:
    """The natural mapping for Parquet written by other tools."""
    columns = []
    for index, field in enumerate(schema):
        cast = _foreign_cast(field.type)
        whole = None
        if (cast or field.type) == _MS_UTC:
            whole = _decode_dates if cast is None else functools.partial(_cast_dates, cast)
        converter = _foreign_converter(cast or field.type)
        columns.append(_Column(field.name, index, cast, converter, whole))
    return _Layout(columns, None)


def _cast_dates(cast: pa.DataType, array: pa.Array) -> list[Any]:
    return _decode_dates(array.cast(cast, safe=False))


_MS_UTC = pa.timestamp("ms", tz="UTC")


def _foreign_cast(arrow_type: pa.DataType) -> pa.DataType | None:
    """The type to cast to first (timestamps and dates to ms UTC), or None when none is needed."""
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return None if arrow_type == _MS_UTC else _MS_UTC
    if pa.types.is_struct(arrow_type):
        fields = [arrow_type.field(i) for i in range(arrow_type.num_fields)]
        casts = [_foreign_cast(field.type) for field in fields]
        if all(cast is None for cast in casts):
            return None
        return pa.struct(
            [field.with_type(cast or field.type) for field, cast in zip(fields, casts, strict=True)]
        )
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _foreign_cast(arrow_type.value_type)
        if inner is None:
            return None
        maker = pa.list_ if pa.types.is_list(arrow_type) else pa.large_list
        return maker(arrow_type.value_field.with_type(inner))
    if pa.types.is_fixed_size_list(arrow_type):
        inner = _foreign_cast(arrow_type.value_type)
        return None if inner is None else pa.list_(inner)
    return None


def _foreign_converter(arrow_type: pa.DataType) -> Converter | None:
    """Python fix-ups after ``to_pylist`` for types BSON does not hold as pyarrow returns them."""
    types = pa.types
    if types.is_timestamp(arrow_type):
        return _date_from_arrow
    if types.is_decimal(arrow_type):
        return Decimal128
    if types.is_uint64(arrow_type):
        return _checked_int64
    if types.is_time(arrow_type):
        return lambda value: value.isoformat()
    if types.is_duration(arrow_type):
        return lambda value: value.total_seconds()
    if types.is_float16(arrow_type):
        return float
    if types.is_dictionary(arrow_type):
        return _foreign_converter(arrow_type.value_type)
    if types.is_map(arrow_type):
        convert = _foreign_converter(arrow_type.item_type)
        return lambda pairs: {
            str(key): value if convert is None or value is None else convert(value)
            for key, value in pairs
        }
    if types.is_struct(arrow_type):
        fields = [arrow_type.field(i) for i in range(arrow_type.num_fields)]
        return _struct_converter([(f.name, _foreign_converter(f.type)) for f in fields])
    if (
        types.is_list(arrow_type)
        or types.is_large_list(arrow_type)
        or types.is_fixed_size_list(arrow_type)
    ):
        inner = _foreign_converter(arrow_type.value_type)
        if inner is None:
            return None
        return lambda items: [None if item is None else inner(item) for item in items]
    if isinstance(arrow_type, pa.ExtensionType):
        if arrow_type.extension_name == "arrow.uuid":
            return lambda value: Binary(
                value.bytes if isinstance(value, uuid.UUID) else bytes(value), 4
            )
        return _foreign_converter(arrow_type.storage_type)
    return None


def _checked_int64(value: int) -> int:
    if value > _INT64_MAX:
        raise OverflowError(f"{value} does not fit in a BSON int64")
    return value


@contextlib.contextmanager
def _open_parquet(stream: IO[bytes], path: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file behind ``stream``; a non-seekable stream is spooled to disk first."""
    with contextlib.ExitStack() as stack:
        source: Any = stream
        if not _seekable(stream):
            spool = stack.enter_context(tempfile.TemporaryFile(prefix="hermes-parquet-"))
            shutil.copyfileobj(stream, spool, 1 << 20)
            spool.seek(0)
            source = spool
        try:
            parquet_file = pq.ParquetFile(source)
        except (pa.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(path, f"not a Parquet file, or truncated ({_short(exc)})") from None
        stack.callback(parquet_file.close)
        yield parquet_file


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _layout(parquet_file: pq.ParquetFile, path: str) -> _Layout:
    try:
        schema = parquet_file.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FormatError(path, f"unreadable Parquet schema ({_short(exc)})") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return _foreign_layout(schema)
    return _hermes_layout(schema, raw, path)


def _decoded(
    layout: _Layout, batch: pa.RecordBatch, bad: dict[int, str], path: str, first: int
) -> list[Document | None]:
    """The documents of a batch; data that passed Parquet's checks but cannot be decoded (text
    that is not UTF-8, say) is a FormatError at the batch's first row."""
    try:
        return layout.documents(batch, bad)
    except FormatError:
        raise
    except (pa.ArrowException, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise FormatError(
            path, f"corrupt Parquet data ({_short(exc)})", f"row {first + 1}"
        ) from None


def _record_batches(
    parquet_file: pq.ParquetFile, batch_size: int, path: str
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row number, batch) pairs; a corrupt page is a FormatError at the row it hits."""
    row = 0
    for batches in _row_group_batches(parquet_file, batch_size):
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise FormatError(
                    path, f"corrupt Parquet data ({_short(exc)})", f"row {row + 1}"
                ) from None
            yield row, batch
            row += batch.num_rows


def _row_group_batches(
    parquet_file: pq.ParquetFile, batch_size: int
) -> Iterator[Iterator[pa.RecordBatch]]:
    """A batch reader per row group. One reader over the whole file keeps memory it has used
    for every row group read (measured: 200 MB more at a million documents); a reader per
    row group gives it back, so memory stays that of one row group however big the file."""
    for group in range(parquet_file.num_row_groups):
        yield parquet_file.iter_batches(batch_size=batch_size, row_groups=[group])


# ------------------------------------------------------------------------------------------
# The format
# ------------------------------------------------------------------------------------------


def _batch(rows: list[Document | None], first: int) -> Batch:
    """The decoded rows of a record batch whose first row is ``first`` (bad ones left out)."""
    if None not in rows:
        return Batch(rows, list(map("row {}".format, range(first + 1, first + len(rows) + 1))))
    documents = [doc for doc in rows if doc is not None]
    locations = [f"row {first + row + 1}" for row, doc in enumerate(rows) if doc is not None]
    return Batch(documents, locations)


class ParquetFormat:
    name = "parquet"
    extensions = EXTENSIONS["parquet"]

    def read_batches(
        self,
        stream: IO[bytes],
        path: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: ErrorHandler | None = None,
        **_: Any,
    ) -> Iterator[Batch]:
        with _open_parquet(stream, path) as parquet_file:
            layout = _layout(parquet_file, path)
            for first, record_batch in _record_batches(parquet_file, max(1, batch_size), path):
                bad: dict[int, str] = {}
                rows = _decoded(layout, record_batch, bad, path, first)
                if bad and on_error is None:
                    row = min(bad)
                    before = _batch(rows[:row], first)
                    if before.documents:  # the rows read before the bad one are handed over first
                        yield before
                    raise RecordError(path, f"row {first + row + 1}", bad[row]).as_format_error()
                for row in sorted(bad):
                    on_error(RecordError(path, f"row {first + row + 1}", bad[row]))  # type: ignore[misc]
                batch = _batch(rows, first)
                if batch.documents:
                    yield batch

    def write_stream(
        self,
        stream: IO[bytes],
        documents: Iterable[Mapping[str, Any]],
        *,
        compression: str | None = DEFAULT_COMPRESSION,
        row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
        json_format: str = "relaxed",
        temp_dir: str | Path | None = None,
        **_: Any,
    ) -> int:
        codec = _Codec(_is_canonical(json_format))
        options = _writer_options(compression)
        count = 0
        with tempfile.TemporaryDirectory(prefix="hermes-parquet-", dir=temp_dir) as folder:
            writer = _SegmentedWriter(Path(folder), codec, options, max(1, int(row_group_size)))
            try:
                for chunk in _chunks(documents, min(CHUNK_ROWS, writer.row_group_size)):
                    count += len(chunk)
                    writer.write(chunk)
                    chunk.clear()  # the documents go before the next chunk is gathered
                writer.flush()
            finally:
                writer.close()
            writer.finish(stream)
        return count


def _chunks(documents: Iterable[Mapping[str, Any]], size: int) -> Iterator[Rows]:
    """Lists of ``size`` documents as plain dicts (gathered by ``islice``, in C); documents
    still in BSON come a chunk of the warehouse's at a time, for the C scanner or decoded here
    (see :func:`_naive_dates`)."""
    if isinstance(documents, BsonChunks):
        options = _naive_dates(documents.codec_options)
        # The scanner reads BSON as the warehouse's codec decodes it; other options (clamped
        # dates, say) make other values: those chunks are decoded with them.
        scan = _bsonarrow is not None and documents.codec_options == _RAW_CODEC
        for raws in documents.chunks:
            yield _Raws(raws, options) if scan else bson.decode_all(b"".join(raws), options)
        return
    iterator = iter(documents)
    while batch := list(islice(iterator, size)):
        if _kinds(batch) != {dict}:
            batch = [_as_document(document) for document in batch]
        yield batch
