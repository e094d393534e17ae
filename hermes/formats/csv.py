"""CSV and TSV: one row per document, lossless through a typed header.

Layout
    One row per document. A sub-document becomes dotted columns (``content.title``) when that is
    unambiguous: it is non-empty, its keys are non-empty, hold no ``.`` and start with neither
    ``$`` nor ``"``, and the field is a sub-document in every row. Anything else (arrays,
    sub-documents that do not flatten, BSON-only values) is one cell of Extended JSON text.
    A top-level field whose name is not such a plain name (``a.b``, ``$x``, ``""``) gets a column
    named by its JSON string literal (``"a.b"``), so it is never taken for a dotted path.

Typed header (default, ``typed=True``)
    Each header cell is ``name.type()``, as mongoimport's ``--columnsHaveTypes``:
    ``string()``, ``int32()``, ``int64()``, ``double()``, ``boolean()``, ``decimal()``,
    ``date()`` (ISO-8601 UTC with milliseconds, ``2024-01-01T00:00:00.000Z``, years 1-9999;
    a date beyond them, which pymongo decodes as ``DatetimeMS``, is JSON),
    ``binary(base64)`` (what Hermes writes; ``binary(hex)`` and ``binary()`` = base64 are read),
    ``objectId()`` and ``json()`` (Extended JSON of the cell's value; relaxed by default,
    ``json_format="canonical"`` on request; both read back exactly). ``auto()`` is read (an
    integer, a double, ``true``/``false``, else a string) but never written. mongoimport needs
    ``date_go(2006-01-02T15:04:05.000Z)`` for our dates and knows neither ``objectId()`` nor
    ``json()``.

    Exactness: an empty cell means the field is absent from that document, so a column whose
    values include ``None``, an empty string or empty binary, or values of more than one type, is
    a ``json()`` column (where ``null`` and ``""`` are explicit). Int32, Int64 and doubles stay
    distinct; doubles are written with ``repr`` (``NaN``, ``Infinity``, ``-0.0`` exact).
    Key order: the header orders the columns so that every document's fields come in its own
    order. When a sub-document's fields come in conflicting orders across rows, that
    sub-document is written as one ``json()`` column; when top-level fields do, no column order
    can serve every row and the write is refused with :class:`UnsupportedValueError` (use JSON
    Lines). Nothing is silently reordered.

Plain header (``typed=False``)
    Just the column names, for tools that want nothing else. Every cell then reads back as a
    string, so any other value (a number, a date, null, an empty string, JSON) is refused with
    :class:`UnsupportedValueError` naming the column and the type, unless
    ``plain_values="text"`` accepts writing everything as text (lossy: types, null and ``""``
    are not recoverable).

Spreadsheets
    ``neutralize_formulas=True`` prefixes ``'`` to text cells (strings, JSON, binary, and
    header cells) starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, so a
    spreadsheet shows them instead of evaluating them. The prefix is part of the data then: the
    file no longer reads back exactly, typed header or not.

Text
    UTF-8 without a BOM (a BOM is accepted on read), RFC 4180 quoting, ``\\r\\n`` line ends;
    TSV is the same with a tab delimiter. A document with no fields at all is an empty row;
    when no document has any field, the header line is empty too and each empty line is one
    empty document. No documents: an empty file.

Writing streams in bounded memory: the header needs every column and its type, which are known
only after the last document, so documents are spilled to an anonymous temporary file (in
``TMPDIR``; removed on success and on error) while the columns are collected, then written from
it. Each is spilled already rendered, as its cells' text (see "Writing, first pass" below), so
the second pass mostly places and quotes. Memory depends on the number of columns (caches of
document shapes are capped), not of documents. An export's documents, still in BSON, are
rendered into those cells by a C renderer (``hermes.formats._bsoncsv``, :data:`RENDERS_BSON`)
without decoding: only the first document of each shape, and any it declines, is decoded and
walked in Python (see :func:`_rendered`). When the output can be cut back (a plain file,
memory), rows are also written as the documents come, under the header known so far, and the
spill file is read again only if a later document changes that header (:class:`_EarlyRows`).

Reading detects a typed header (every cell ``name.type()`` with a known type); otherwise every
cell is a string unless ``types={"views": "int64", ...}`` says otherwise (``types`` also
overrides a typed header). Dotted columns become sub-documents again, in column order.
``skip_header=True`` reads a file without a header line: every line is a document whose fields
are named by column position, ``"0"``, ``"1"``, ... Documents are located as ``"row N"`` (data
rows from 1); errors also name the physical line. A bad cell or row goes to ``on_error`` and
reading goes on; unterminated quotes, invalid UTF-8 and text that is not CSV end the read with
a :class:`FormatError`.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import heapq
import io
import json
import marshal
import math
import re
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from itertools import compress, count, pairwise
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import bson
import orjson
from bson import Decimal128, Int64, ObjectId
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion

from hermes.errors import FormatError, UnsupportedValueError
from hermes.formats import extjson
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    BsonChunks,
    ErrorHandler,
    RecordError,
    batch_records,
    reject,
)

try:
    from hermes.formats import _bsoncsv
except ImportError:  # built without a compiler: an export's documents are decoded and walked
    _bsoncsv = None

#: Whether an export's BSON documents are rendered into cells in C, without decoding.
RENDERS_BSON: bool = _bsoncsv is not None

_BOM = b"\xef\xbb\xbf"
_LINE_END = "\r\n"
_LINE_END_BYTES = _LINE_END.encode()
#: Characters in one cell: room for a 16 MB document as JSON, and where a runaway quote stops.
_FIELD_LIMIT = 1 << 26
#: The longest physical line read: a row of a 16 MB document fits many times over.
_MAX_LINE = 1 << 27
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: How documents go to the spill file and come back: as the warehouse stores and returns them.
_ENCODE_OPTIONS = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)
_DECODE_OPTIONS = CodecOptions(
    tz_aware=True, tzinfo=timezone.utc, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)
#: The same values with naive (UTC) dates, cheaper to decode: an export's BSON is read so.
_STORED_OPTIONS = _DECODE_OPTIONS.with_options(tz_aware=False, tzinfo=None)


# ------------------------------------------------------------------------------------------
# Column types: one table for writing and reading
# ------------------------------------------------------------------------------------------


def _double_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _date_text(value: datetime) -> str:
    if value.utcoffset():
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _json_bytes(value: Any, canonical: bool = False) -> bytes:
    # A one-field document keeps the codec's fast path; ``{"":`` and ``}`` are cut off.
    return extjson.dumps({"": value}, canonical)[4:-1]


def _json_text(value: Any, canonical: bool = False) -> str:
    return _json_bytes(value, canonical).decode("utf-8")


def _parse_int32(text: str) -> int:
    number = int(text)
    if _INT32_MIN <= number <= _INT32_MAX:
        return number
    raise ValueError(f"{text!r} is out of the int32 range")


def _parse_int64(text: str) -> Int64:
    number = int(text)
    if _INT64_MIN <= number <= _INT64_MAX:
        return Int64(number)
    raise ValueError(f"{text!r} is out of the int64 range")


def _parse_bool(text: str) -> bool:
    lower = text.strip().lower()
    if lower in ("true", "false"):
        return lower == "true"
    raise ValueError(f"{text!r} is not true or false")


def _parse_date(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is not timezone.utc:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        parsed = parsed.astimezone(timezone.utc)
    if parsed.microsecond % 1000:
        parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    return parsed


def _parse_decimal(text: str) -> Decimal128:
    try:
        return Decimal128(text)
    except Exception:
        raise ValueError(f"{text!r} is not a decimal") from None


def _parse_json(text: str) -> Any:
    if '"$' not in text and "\\u0024" not in text:
        # No key can start with "$": no type wrapper, no DBRef; plain JSON is the value.
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, big integers...: the full reader below
    # Parsed as the element of a list, so a DBRef-shaped object reads back as a DBRef.
    values = extjson.loads("[" + text + "]")
    if len(values) != 1:
        raise ValueError("more than one JSON value")
    return values[0]


def _parse_auto(text: str) -> Any:
    """mongoimport's ``auto()``: an integer, a double, a boolean, else the text itself."""
    try:
        number = int(text)
    except ValueError:
        pass
    else:
        if _INT32_MIN <= number <= _INT32_MAX:
            return number
        if _INT64_MIN <= number <= _INT64_MAX:
            return Int64(number)
    try:
        return float(text)
    except ValueError:
        pass
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    return text


@dataclass(frozen=True)
class ColumnType:
    """A header type: how a value becomes cell text and back; ``text`` marks free text cells."""

    name: str
    spec: str
    encode: Callable[[Any], str]
    decode: Callable[[str], Any] | None  # None: the cell text is the value
    text: bool = False


_COLUMN_TYPES: tuple[ColumnType, ...] = (
    ColumnType("string", "string()", str, None, text=True),
    ColumnType("int32", "int32()", int.__repr__, _parse_int32),
    ColumnType("int64", "int64()", int.__repr__, _parse_int64),
    ColumnType("double", "double()", _double_text, float),
    ColumnType("boolean", "boolean()", lambda v: "true" if v else "false", _parse_bool),
    ColumnType("date", "date()", _date_text, _parse_date),
    ColumnType("decimal", "decimal()", str, _parse_decimal),
    ColumnType(
        "binary",
        "binary(base64)",
        lambda v: base64.b64encode(v).decode("ascii"),
        lambda t: base64.b64decode(t, validate=True),
        text=True,
    ),
    ColumnType("objectId", "objectId()", str, ObjectId),
    ColumnType("json", "json()", _json_text, _parse_json, text=True),
    ColumnType("auto", "auto()", str, _parse_auto, text=True),
)
COLUMN_TYPES: dict[str, ColumnType] = {t.name: t for t in _COLUMN_TYPES}
_BINARY_HEX = ColumnType("binary", "binary(hex)", bytes.hex, bytes.fromhex, text=True)
STRING, JSON = COLUMN_TYPES["string"], COLUMN_TYPES["json"]

#: The column type a value of this Python type (as BSON decodes it) naturally takes.
_NATURAL: dict[type, str] = {
    bool: "boolean",
    Int64: "int64",
    float: "double",
    datetime: "date",
    Decimal128: "decimal",
    ObjectId: "objectId",
}


def natural_type(value: Any) -> str:
    """The typed-header type that holds ``value`` exactly and non-empty; ``"json"`` otherwise."""
    kind = type(value)
    if kind is str:
        return "string" if value else "json"
    if kind is int:
        return "int32" if _INT32_MIN <= value <= _INT32_MAX else "int64"
    if kind is bytes:
        return "binary" if value else "json"
    return _NATURAL.get(kind, "json")


_SPEC = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\((?P<arg>[^()]*)\)", re.ASCII)
_TYPED_CELL = re.compile(r"(?P<column>.*)\.(?P<spec>[A-Za-z_][A-Za-z0-9_]*\([^()]*\))", re.DOTALL)
_TYPE_NAMES = {name.lower(): name for name in COLUMN_TYPES}


def parse_type(spec: str) -> ColumnType | None:
    """``"int64()"``, ``"int64"`` or ``"binary(hex)"`` -> its column type; None when unknown."""
    text = spec.strip()
    match = _SPEC.fullmatch(text) or _SPEC.fullmatch(text + "()")
    if match is None:
        return None
    name = _TYPE_NAMES.get(match["name"].lower())
    arg = match["arg"].strip().lower()
    if name == "binary":
        return {
            "": COLUMN_TYPES["binary"],
            "base64": COLUMN_TYPES["binary"],
            "hex": _BINARY_HEX,
        }.get(arg)
    if name is None or arg:
        return None
    return COLUMN_TYPES[name]


# ------------------------------------------------------------------------------------------
# Column names
# ------------------------------------------------------------------------------------------


def is_plain_name(key: str) -> bool:
    """A field name that can be one segment of a dotted column name."""
    return bool(key) and "." not in key and key[0] not in '$"'


def column_name(path: tuple[str, ...]) -> str:
    """``("content", "title")`` -> ``content.title``; an odd top-level name as a JSON string."""
    if len(path) == 1 and not is_plain_name(path[0]):
        return json.dumps(path[0], ensure_ascii=False)
    return ".".join(path)


def column_path(name: str) -> tuple[str, ...]:
    """The inverse of :func:`column_name`; names from other tools are plain dotted paths."""
    if name.startswith('"'):
        try:
            key = json.loads(name)
        except ValueError:
            key = None
        if isinstance(key, str):
            return (key,)
    return tuple(name.split("."))


# ------------------------------------------------------------------------------------------
# Writing, first pass: each document observed into the schema and rendered as natural cells
# ------------------------------------------------------------------------------------------
#
# A document's *natural cells* are its leaf values in document order, each written as the column
# type its own value takes (``natural_type``), as UTF-8 bytes. They go to the spill file with
# the ids of their leaves (one id per field and natural type), so the second pass only places
# them: when a column ends up with another type (``json()`` for mixed types, a sub-document kept
# whole), the cell is read back with its natural type's decoder (the round trip the typed header
# guarantees) and written again. Documents are rendered as they come when every value is one
# whose BSON round trip changes nothing the CSV shows; any other document (a tuple, a
# ``Binary`` of subtype 0, a date with a UTC offset, a value BSON cannot hold...) goes through
# BSON first, exactly as BSON would store it. An export's own BSON (:class:`BsonChunks`) is
# decoded here, with naive UTC dates, and needs no check at all.


@dataclass(eq=False, slots=True)
class _Field:
    """One field name at one level of nesting: a column, or a group of dotted columns."""

    path: tuple[str, ...]
    can_group: bool
    children: dict[str, _Field] = field(default_factory=dict)
    #: Precedence between children: (earlier, later) -> first row that showed it.
    edges: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Key orders of this (sub-)document already observed (bounded), so each is observed once.
    orders: set[tuple[str, ...]] = field(default_factory=set)
    #: Leaf id of each natural type this field has held; the one for strings kept at hand.
    leaf_ids: dict[str, int] = field(default_factory=dict)
    string_leaf: int = -1
    groups: int = 0  # rows where the field is a sub-document that flattens (0 or 1 is enough)
    leaves: int = 0  # rows where it is anything else
    leaf_type: str | None = None
    first_group_row: int = 0
    first_leaf_row: int = 0
    # Decided by _finalize; a group has no type:
    column: int = -1
    type: ColumnType | None = None
    encode: Callable[[Any], bytes] = str.encode

    @property
    def name(self) -> str:
        return column_name(self.path)


@dataclass(frozen=True)
class _WriteOptions:
    typed: bool
    text: bool  # plain header, everything written as text
    canonical: bool
    neutralize: bool

    @classmethod
    def parse(
        cls, typed: bool, plain_values: str, json_format: str, neutralize: bool
    ) -> _WriteOptions:
        if plain_values not in ("refuse", "text"):
            raise ValueError(f"Unknown plain_values {plain_values!r}; choose refuse or text")
        mode = (json_format or "relaxed").lower()
        if mode not in ("relaxed", "canonical"):
            raise ValueError(f"Unknown JSON format {json_format!r}; choose relaxed or canonical")
        return cls(
            typed=bool(typed),
            text=not typed and plain_values == "text",
            canonical=mode == "canonical",
            neutralize=bool(neutralize),
        )

    @property
    def strict_plain(self) -> bool:
        return not self.typed and not self.text


class _Misfit(Exception):
    """A value rendered differently once through BSON: the document takes the BSON path."""


#: A value's natural type and its cell text.
_Rendered = tuple[str, bytes]
_Renderer = Callable[[Any], _Rendered]
_UTC = timezone.utc


def _render_int(value: int) -> _Rendered:
    if _INT32_MIN <= value <= _INT32_MAX:
        return "int32", b"%d" % value
    if _INT64_MIN <= value <= _INT64_MAX:
        return "int64", b"%d" % value
    raise _Misfit  # BSON cannot hold it: the BSON path says so


def _render_int64(value: Int64) -> _Rendered:
    if _INT64_MIN <= value <= _INT64_MAX:
        return "int64", b"%d" % value
    raise _Misfit


def _render_double(value: float) -> _Rendered:
    return "double", (repr(value) if value - value == 0.0 else _double_text(value)).encode()


def _render_date(value: datetime) -> _Rendered:
    zone = value.tzinfo
    if zone is _UTC or zone is None:  # naive means UTC; isoformat() takes twice as long
        return "date", b"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond // 1000,
        )
    if not value.utcoffset():
        return "date", _date_text(value).encode()
    raise _Misfit  # in UTC it may fall outside the years a datetime holds


def _render_object_id(value: ObjectId) -> _Rendered:
    return "objectId", value.binary.hex().encode()


def _render_decimal(value: Decimal128) -> _Rendered:
    return "decimal", str(value).encode()


def _render_bool(value: bool) -> _Rendered:
    return "boolean", b"true" if value else b"false"


#: Types whose Extended JSON is the same before and after a BSON round trip, whatever the value.
_STABLE_TYPES = frozenset({str, float, bool, type(None), ObjectId, Decimal128, bytes})


def _bson_stable(value: list[Any] | dict[str, Any]) -> bool:
    """Whether a list or sub-document comes back from BSON as the same Extended JSON.

    Checked by exact type, a whole container at a time (an embedding's floats cost one pass in
    C); anything not plainly stable is reported unstable and takes the BSON path.
    """
    if type(value) is dict:
        if set(map(type, value)) - {str} or "\x00" in "".join(value):
            return False
        items: Any = value.values()
    else:
        items = value
    kinds = set(map(type, items))
    for kind in kinds - _STABLE_TYPES:
        chosen = [item for item in items if type(item) is kind]
        if kind is int or kind is Int64:
            if min(chosen) < _INT64_MIN or max(chosen) > _INT64_MAX:
                return False
        elif kind is datetime:
            if any(item.tzinfo is not None and item.utcoffset() for item in chosen):
                return False
        elif kind is list or kind is dict:
            if not all(map(_bson_stable, chosen)):
                return False
        else:
            return False
    return True


def _renderers(canonical: bool) -> tuple[dict[type, _Renderer], dict[type, _Renderer]]:
    """Renderers by exact type: for documents as given, and for documents decoded from BSON."""
    empty_text = _json_bytes("", canonical)
    empty_binary = _json_bytes(b"", canonical)

    def text(value: str) -> _Rendered:
        return ("string", value.encode()) if value else ("json", empty_text)

    def binary(value: bytes) -> _Rendered:
        return ("binary", base64.b64encode(value)) if value else ("json", empty_binary)

    def as_json(value: Any) -> _Rendered:
        return "json", _json_bytes(value, canonical)

    def checked_json(value: Any) -> _Rendered:
        if not _bson_stable(value):
            raise _Misfit
        return "json", _json_bytes(value, canonical)

    given: dict[type, _Renderer] = {
        str: text,
        int: _render_int,
        Int64: _render_int64,
        float: _render_double,
        bool: _render_bool,
        type(None): lambda _: ("json", b"null"),
        datetime: _render_date,
        ObjectId: _render_object_id,
        Decimal128: _render_decimal,
        bytes: binary,
        list: checked_json,
        dict: checked_json,
    }
    decoded = {**given, list: as_json, dict: as_json}
    return given, decoded


def _check_keys(keys: tuple[str, ...], top_level: bool) -> None:
    """Keys BSON holds as they are; ``_id`` comes first in a stored document."""
    if set(map(type, keys)) - {str} or "\x00" in "".join(keys):
        raise _Misfit
    "".join(keys).encode()  # no lone surrogates
    if top_level and "_id" in keys and keys[0] != "_id":
        raise _Misfit


def _flattens(keys: tuple[str, ...]) -> bool:
    return bool(keys) and all(map(is_plain_name, keys))


#: Key orders remembered per sub-document; more are observed again each time (same result).
_MAX_ORDERS = 1024
#: Row makers remembered (one per shape of document); more are rebuilt.
_MAX_SHAPES = 4096


class _Schema:
    """Columns and their types, collected one document at a time (memory: one per column)."""

    def __init__(self, options: _WriteOptions) -> None:
        self.root = _Field((), can_group=True)
        self.options = options
        self.columns: list[_Field] = []
        #: Leaf id -> (field, natural type).
        self.leaves: list[tuple[_Field, str]] = []
        self._given, self._decoded = _renderers(options.canonical)
        #: Counts the observations that can change what :meth:`finalize` decides (a field, a
        #: key order, a natural type, a sub-document): rows made under one version are made
        #: the same under any later schema of the same version.
        self.version = 0

    def add(self, document: Mapping[str, Any], row: int) -> tuple[tuple[int, ...], list[bytes]]:
        """Observe one document; its leaf ids and natural cells (ending with an empty one)."""
        if type(document) is dict:
            try:
                return self._render(document, row, self._given)
            except Exception:  # whatever it is, the BSON path decides
                pass
        decoded = bson.decode(_to_bson(document, row), codec_options=_DECODE_OPTIONS)
        return self._render(decoded, row, self._decoded)

    def add_stored(self, document: dict[str, Any], row: int) -> tuple[tuple[int, ...], list[bytes]]:
        """:meth:`add` for a document just decoded from BSON: no value needs a check."""
        return self._render(document, row, self._decoded)

    def _render(
        self, document: dict[str, Any], row: int, renderers: dict[type, _Renderer]
    ) -> tuple[tuple[int, ...], list[bytes]]:
        root = self.root
        keys = tuple(document)
        if keys not in root.orders:
            if renderers is self._given:
                _check_keys(keys, top_level=True)
            self._observe_keys(root, keys, row)
        ids: list[int] = []
        cells: list[bytes] = []
        self._walk(root, document, row, renderers, ids, cells)
        cells.append(b"")
        return tuple(ids), cells

    def _walk(
        self,
        parent: _Field,
        mapping: dict[str, Any],
        row: int,
        renderers: dict[type, _Renderer],
        ids: list[int],
        cells: list[bytes],
    ) -> None:
        children = parent.children
        add_id, add_cell = ids.append, cells.append
        for key, value in mapping.items():
            child = children[key]
            kind = type(value)
            if kind is str and value:
                leaf = child.string_leaf
                if leaf < 0:
                    leaf = self._new_leaf(child, "string", value, row)
                add_id(leaf)
                add_cell(value.encode())
                continue
            if kind is dict and child.can_group and self._opens(child, value, row, renderers):
                self._walk(child, value, row, renderers, ids, cells)
                continue
            render = renderers.get(kind)
            if render is not None:
                leaf_type, text = render(value)
            elif renderers is self._given:
                raise _Misfit
            else:
                leaf_type = natural_type(value)
                text = _json_bytes(value, self.options.canonical)
            leaf = child.leaf_ids.get(leaf_type)
            if leaf is None:
                leaf = self._new_leaf(child, leaf_type, value, row)
            add_id(leaf)
            add_cell(text)

    def _opens(
        self, node: _Field, value: dict[str, Any], row: int, renderers: dict[type, _Renderer]
    ) -> bool:
        """Whether a sub-document flattens into dotted columns; observes its key order."""
        keys = tuple(value)
        if keys not in node.orders:
            if not _flattens(keys):
                return False
            if renderers is self._given:
                _check_keys(keys, top_level=False)
            self._observe_keys(node, keys, row)
        if not node.groups:
            node.groups, node.first_group_row = 1, row
            self.version += 1
        return True

    def _observe_keys(self, node: _Field, keys: tuple[str, ...], row: int) -> None:
        edges = node.edges
        for pair in pairwise(keys):
            if pair not in edges:
                edges[pair] = row
                self.version += 1
        for key in keys:
            if key not in node.children:
                node.children[key] = _Field((*node.path, key), is_plain_name(key))
                self.version += 1
        if len(node.orders) < _MAX_ORDERS:
            node.orders.add(keys)

    def _new_leaf(self, node: _Field, leaf_type: str, value: Any, row: int) -> int:
        if self.options.strict_plain and leaf_type != "string":
            raise UnsupportedValueError(_plain_refusal(node.name, value, row))
        if not node.leaves:
            node.leaves, node.first_leaf_row = 1, row
        if node.leaf_type != leaf_type:
            node.leaf_type = leaf_type if node.leaf_type is None else "json"
        leaf = node.leaf_ids[leaf_type] = len(self.leaves)
        self.leaves.append((node, leaf_type))
        self.version += 1
        if leaf_type == "string":
            node.string_leaf = leaf
        return leaf

    # -- after the first pass ------------------------------------------------------------------

    def finalize(self) -> list[_Field]:
        """Decide each field's column type and the column order; returns the columns. May be
        called again after more documents (it decides afresh)."""
        self.columns = []
        for child in self._order(self.root, top_level=True) or ():
            self._finalize(child)
        self.placements = [self._place(node, leaf_type) for node, leaf_type in self.leaves]
        return self.columns

    def _finalize(self, node: _Field) -> None:
        if node.groups and node.leaves:
            if self.options.strict_plain:
                raise UnsupportedValueError(
                    f"Column {node.name!r} holds a sub-document in row {node.first_group_row} and "
                    f"another value in row {node.first_leaf_row}: a plain CSV header cannot hold "
                    "both; write with typed=True"
                )
            self._make_column(node, JSON)
            return
        if node.leaves:
            self._make_column(node, COLUMN_TYPES[node.leaf_type or "json"])
            return
        ordered = self._order(node, top_level=False)
        if ordered is None:
            self._make_column(node, JSON)
            return
        node.type, node.column = None, -1  # a group (it may have been a column before)
        for child in ordered:
            self._finalize(child)

    def _make_column(self, node: _Field, column_type: ColumnType) -> None:
        node.type = column_type if self.options.typed else STRING
        node.encode = self._encoder(node.type)
        node.column = len(self.columns)
        self.columns.append(node)

    def _order(self, node: _Field, *, top_level: bool) -> list[_Field] | None:
        """Children in an order every row agrees with (first seen first); None on a conflict."""
        order = _topological(list(node.children), node.edges)
        if isinstance(order, list):
            return [node.children[name] for name in order]
        cycle, row = order
        names = ", ".join(repr(column_name((*node.path, key))) for key in cycle)
        if top_level:
            raise UnsupportedValueError(
                f"Row {row} orders its fields {names} differently from an earlier row; a CSV "
                "header has one column order, so the file would not read back as written. "
                "Write JSON Lines, or give the documents one field order."
            )
        if self.options.strict_plain:
            raise UnsupportedValueError(
                f"Row {row} orders the fields {names} of {node.name!r} differently from an "
                "earlier row; a typed header would keep that sub-document as JSON, a plain one "
                "cannot: write with typed=True"
            )
        return None

    def header(self) -> list[str]:
        if self.options.typed:
            return [f"{c.name}.{c.type.spec}" for c in self.columns]  # type: ignore[union-attr]
        names = [c.name for c in self.columns]
        if names and _typed_header(names) is not None:
            raise UnsupportedValueError(
                f"The plain header {names!r} would be read back as a typed header; "
                "write with typed=True"
            )
        return names

    def _encoder(self, column_type: ColumnType) -> Callable[[Any], bytes]:
        """The function that writes a value as one cell of a column (formulas aside)."""
        canonical = self.options.canonical
        if self.options.text:
            return lambda value: _as_text(value, canonical).encode()
        if column_type is JSON:
            return partial(_json_bytes, canonical=canonical)
        encode = column_type.encode
        return lambda value: encode(value).encode()

    def _place(self, node: _Field, leaf_type: str) -> _Placement:
        """Where a leaf's natural cell goes: its column, and how it is written there."""
        owner = self.root
        for key in node.path:
            owner = owner.children[key]
            if owner.type is not None:
                break
        within = node.path[len(owner.path) :]
        if within:  # part of a sub-document kept whole as one JSON cell
            return _Placement(owner.column, leaf_type, within, None)
        return _Placement(owner.column, leaf_type, (), self._transcoder(owner, leaf_type))

    def _transcoder(self, column: _Field, leaf_type: str) -> Callable[[bytes], bytes] | None:
        """How a natural cell becomes the column's cell; None when it already is."""
        options = self.options
        if options.text:
            if leaf_type != "json":
                return None
            # Text mode writes null and "" as empty cells; other JSON stays as it is.
            return lambda cell: b"" if cell in (b"null", b'""') else cell
        if not options.typed or column.type is COLUMN_TYPES[leaf_type]:
            return None
        encode = column.encode
        return lambda cell: encode(_natural_value(leaf_type, cell))


@dataclass(frozen=True)
class _Placement:
    column: int
    leaf_type: str
    within: tuple[str, ...]  # the path inside a sub-document written whole, else ()
    transcode: Callable[[bytes], bytes] | None


def _natural_value(leaf_type: str, cell: bytes) -> Any:
    """The value a natural cell was rendered from (the typed header's own round trip)."""
    text = cell.decode("utf-8")
    decode = COLUMN_TYPES[leaf_type].decode
    return text if decode is None else decode(text)


def _as_text(value: Any, canonical: bool) -> str:
    """``plain_values="text"``: a value as a person would type it; None and ``""`` are empty."""
    if value is None:
        return ""
    kind = natural_type(value)
    if kind == "json":
        return value if type(value) is str else _json_text(value, canonical)
    return COLUMN_TYPES[kind].encode(value)


def _plain_refusal(column: str, value: Any, row: int) -> str:
    kind = type(value).__name__
    what = "an empty string" if value == "" and type(value) is str else f"a value of type {kind}"
    return (
        f"Column {column!r} holds {what} in row {row}, which a plain CSV header would read back "
        "as a different value (every cell is a string, an empty cell is a missing field). Write "
        "with typed=True (the default), or pass plain_values='text' to accept writing it as text."
    )


def _topological(
    names: list[str], edges: dict[tuple[str, str], int]
) -> list[str] | tuple[list[str], int]:
    """Kahn's algorithm, earliest-seen name first; on a cycle, the cycle and its last row."""
    rank = {name: index for index, name in enumerate(names)}
    successors: dict[str, list[str]] = {name: [] for name in names}
    waiting = dict.fromkeys(names, 0)
    for before, after in edges:
        successors[before].append(after)
        waiting[after] += 1
    ready = [rank[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for after in successors[name]:
            waiting[after] -= 1
            if waiting[after] == 0:
                heapq.heappush(ready, rank[after])
    if len(order) == len(names):
        return order
    return _find_cycle({n for n, count in waiting.items() if count}, edges)


def _find_cycle(stuck: set[str], edges: dict[tuple[str, str], int]) -> tuple[list[str], int]:
    """Every name left by Kahn's algorithm has a predecessor left too: walk back to a cycle."""
    predecessor = {after: before for before, after in edges if before in stuck and after in stuck}
    seen: list[str] = []
    name = min(stuck)
    while name not in seen:
        seen.append(name)
        name = predecessor[name]
    cycle = seen[seen.index(name) :][::-1]
    pairs = zip(cycle, cycle[1:] + cycle[:1], strict=True)
    return cycle, max(edges[pair] for pair in pairs)


def _stored(documents: BsonChunks) -> Iterator[dict[str, Any]]:
    """An export's documents, decoded a chunk at a time with naive dates (the same instants)."""
    decode_all = bson.decode_all
    for chunk in documents.chunks:
        yield from decode_all(b"".join(chunk), _STORED_OPTIONS)


#: A document's natural cells: a list of bytes ending with an empty cell, or packed as the C
#: renderer gives them, ``(text, ends)``: the cells back to back and where each ends (uint32s),
#: two objects to spill and load instead of one per cell.
Cells = list[bytes] | tuple[bytes, bytes]
_Natural = tuple[tuple[int, ...], Cells]


def _unpacked(cells: Cells) -> list[bytes]:
    """The cells as a list ending with the empty cell."""
    if type(cells) is list:
        return cells
    text, ends = cells
    bounds = [0, *array("I", ends)]
    return [text[start:end] for start, end in pairwise(bounds)] + [b""]


def _rendered(documents: BsonChunks, schema: _Schema) -> Iterator[_Natural]:
    """An export's documents as leaf ids and natural cells (what :meth:`_Schema.add_stored`
    gives), rendered from the BSON in C (``hermes.formats._bsoncsv``) where it can.

    The C renderer also gives each document a signature: its keys and the kinds of its values,
    all that the schema's bookkeeping depends on. The first document of a signature (and any
    the renderer declines) is decoded and walked in Python, which records its columns and key
    orders and names its leaf ids; the next ones of that signature take those ids and the C
    cells, and change nothing in the schema the walk would have changed.
    """
    if _bsoncsv is None:
        yield from map(schema.add_stored, _stored(documents), count(1))
        return
    render, canonical, decode = _bsoncsv.render, schema.options.canonical, bson.decode
    known: dict[bytes, tuple[int, ...]] = {}
    row = 0
    for chunk in documents.chunks:
        for raw, made in zip(chunk, render(chunk, canonical), strict=True):
            row += 1
            if made is not None:
                ids = known.get(made[0])
                if ids is not None:
                    yield ids, made[1]
                    continue
            ids, cells = schema.add_stored(decode(raw, _STORED_OPTIONS), row)
            if made is not None:
                if len(known) >= _MAX_SHAPES:
                    known.clear()
                known[made[0]] = ids
            yield ids, cells


def _to_bson(document: Mapping[str, Any], row: int) -> bytes:
    try:
        return bson.encode(document, codec_options=_ENCODE_OPTIONS)
    except (bson.errors.BSONError, OverflowError, TypeError, ValueError) as exc:
        raise UnsupportedValueError(f"Row {row} is not a BSON document: {exc}") from None


# ------------------------------------------------------------------------------------------
# Writing: the spill file and the second pass
# ------------------------------------------------------------------------------------------

#: Bytes of cells (and documents) held before a batch goes to the spill file.
_SPILL_BYTES = 1 << 20
_SPILL_DOCUMENTS = 4096


class _Spill:
    """Rendered documents in an anonymous temporary file, marshalled in batches of about 1 MB.

    ``early``, when given, also makes each batch's rows as it is stored (:class:`_EarlyRows`).
    """

    def __init__(self, file: IO[bytes], early: _EarlyRows | None = None) -> None:
        self.file = file
        self.early = early
        self.pending: list[_Natural] = []
        self.size = 0
        self.count = 0  # documents stored in the file

    def add(self, ids: tuple[int, ...], cells: Cells) -> None:
        self.pending.append((ids, cells))
        self.size += len(cells[0]) if type(cells) is tuple else sum(map(len, cells))
        if self.size >= _SPILL_BYTES or len(self.pending) >= _SPILL_DOCUMENTS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            data = marshal.dumps(self.pending)  # before the row makers may quote cells in place
            if self.early is not None:
                self.early.write(self, self.pending)
            self.file.write(len(data).to_bytes(8, "little"))
            self.file.write(data)
            self.count += len(self.pending)
        self.pending, self.size = [], 0

    def batches(self) -> Iterator[list[_Natural]]:
        """All the spilled documents, a batch (as they were flushed) at a time."""
        self.early = None
        self.flush()
        yield from self.stored()

    def stored(self) -> Iterator[list[_Natural]]:
        """The batches in the file so far; it is read to its end, where the next one goes."""
        self.file.seek(0)
        while size := self.file.read(8):
            yield marshal.loads(self.file.read(int.from_bytes(size, "little")))


class _EarlyRows:
    """Rows written during the first pass, under the header the documents so far give, so that
    the spill file need not be read again (the second pass) when no later document changes the
    header: the common case, where a collection shows all its fields in its first documents.

    Only for a stream that can be cut back to where the CSV starts (a plain file or memory; a
    compressor cannot). Rows follow the schema of one :attr:`_Schema.version`. When a document
    changes it, the stream is cut back and the header and rows written again from the spill
    file, but only once it holds at least twice the documents it held at the previous start (so
    rewriting costs at most twice the rows in all); until then, nothing more is written early.
    A schema the final pass would refuse (fields in conflicting orders) stops early writing, and
    the final pass reports it as without.
    """

    def __init__(self, stream: IO[bytes], schema: _Schema, csv_format: CsvFormat) -> None:
        self.stream = stream
        self.start = stream.tell()
        self.schema = schema
        self.csv_format = csv_format
        self.version = -1  # the schema version of the rows written; -1: none is valid
        self.started = 0  # documents in the spill file when writing last (re)started
        self.stopped = False
        self.rows: _Rows | None = None

    @property
    def complete(self) -> bool:
        """Whether the stream holds the whole CSV (after the last batch)."""
        return not self.stopped and self.version == self.schema.version

    def write(self, spill: _Spill, batch: list[_Natural]) -> None:
        """The rows of ``batch``, about to be stored after the ``spill.count`` documents."""
        if self.stopped:
            return
        stale = self.version != self.schema.version
        if stale and (spill.count < 2 * self.started or not self._restart(spill)):
            return
        assert self.rows is not None
        self.stream.write(self.rows.lines(batch))

    def _restart(self, spill: _Spill) -> bool:
        """Header and rows again, under the schema as it is now; False if it is refused."""
        schema = self.schema
        try:
            schema.finalize()
            header = self.csv_format._header_line(schema.header(), schema.options.neutralize)
        except UnsupportedValueError:
            self.stopped = True
            return False
        self.discard()
        self.stream.write(header)
        self.rows = _Rows(schema, self.csv_format.delimiter)
        for batch in spill.stored():
            self.stream.write(self.rows.lines(batch))
        self.version, self.started = schema.version, spill.count
        return True

    def discard(self) -> None:
        """Cut the stream back to where the CSV starts."""
        self.stream.seek(self.start)
        self.stream.truncate()
        self.version = -1


def _rewindable(stream: IO[bytes]) -> bool:
    """Whether a stream can be cut back (``seek`` and ``truncate``): a file or memory, not a
    compressor (gzip's ``seek`` goes forward only) nor a pipe."""
    return isinstance(stream, io.BufferedWriter | io.BufferedRandom | io.BytesIO | io.FileIO) and (
        stream.seekable()
    )


#: Cell bytes that start a formula in a spreadsheet (``neutralize_formulas``).
_FORMULA_BYTES = tuple(start.encode() for start in _FORMULA_START)
#: Natural types whose cells may hold a delimiter, a quote or a line break.
_FREE_TEXT = frozenset({"string", "json"})


class _Rows:
    """The second pass: each document's row from its natural cells, one maker per shape."""

    def __init__(self, schema: _Schema, delimiter: str) -> None:
        self.schema = schema
        self.delimiter = delimiter.encode("utf-8")
        self.join = self.delimiter.join
        #: Bytes that make a cell quoted.
        self.special = b'"\r\n' + self.delimiter
        self.needs_quotes = re.compile(b"[" + re.escape(self.special) + b"]").search
        neutralize = schema.options.neutralize
        self.neutral = [c.column for c in schema.columns if neutralize and _is_text(c)]
        self.makers: dict[tuple[int, ...], _RowMaker] = {}
        #: The plans of the shapes whose rows the C joiner makes (see :attr:`_RowMaker.plan`).
        self.plans: dict[tuple[int, ...], tuple[tuple[int, ...], bytes]] = {}

    def row(self, ids: tuple[int, ...], cells: list[bytes]) -> bytes:
        return self.maker(ids)(cells)

    def maker(self, ids: tuple[int, ...]) -> _RowMaker:
        make = self.makers.get(ids)
        if make is None:
            if len(self.makers) >= _MAX_SHAPES:
                self.makers.clear()
                self.plans.clear()
            make = self.makers[ids] = _RowMaker(self, ids)
        return make

    def lines(self, batch: list[_Natural]) -> bytes:
        """The CSV lines of a batch of spilled documents, each ending with CRLF: joined in C
        (``_bsoncsv.join_rows``) for the shapes with a plan, by their makers otherwise."""
        if _bsoncsv is None:
            return b"".join([self.row(ids, cells) + _LINE_END_BYTES for ids, cells in batch])
        join_rows, plans = _bsoncsv.join_rows, self.plans
        parts: list[bytes] = []
        start = 0
        while True:
            text, start = join_rows(batch, start, plans, self.special, self.delimiter)
            parts.append(text)
            if start == len(batch):
                return b"".join(parts)
            ids, cells = batch[start]
            make = self.maker(ids)
            if make.plan is not None:
                plans[ids] = make.plan
            else:
                parts.append(make(_unpacked(cells)) + _LINE_END_BYTES)
                start += 1


def _is_text(column: _Field) -> bool:
    return column.type is not None and column.type.text


class _RowMaker:
    """The rows of documents of one shape (the same leaf ids), from their natural cells.

    Quoting is RFC 4180 as :mod:`csv` does it (``QUOTE_MINIMAL``): a cell holding the
    delimiter, a quote, CR or LF is quoted, quotes doubled; a row of one empty cell is ``""``.
    """

    def __init__(self, rows: _Rows, ids: tuple[int, ...]) -> None:
        columns = rows.schema.columns
        positions = [len(ids)] * len(columns)  # the empty cell after the last
        self.free: list[int] = []  # cell indexes that may need quotes
        parts: dict[int, list[tuple[_Placement, int]]] = {}
        for index, leaf in enumerate(ids):
            place = rows.schema.placements[leaf]
            if place.within or place.transcode is not None:
                parts.setdefault(place.column, []).append((place, index))
            else:
                positions[place.column] = index
                if place.leaf_type in _FREE_TEXT:
                    self.free.append(index)
        self.pick = _picker(positions)
        self.join = rows.join
        self.needs_quotes = rows.needs_quotes
        self.neutral = rows.neutral
        self.built = [(column, _builder(columns[column], p)) for column, p in parts.items()]
        # Most rows: cells placed as they are, some quoted. The rest take _general.
        self.direct = not self.built and not self.neutral and len(columns) != 1
        #: For a direct maker, what the C joiner needs: the cell of each column, and a flag
        #: per cell that may need quotes.
        self.plan: tuple[tuple[int, ...], bytes] | None = None
        if self.direct:
            flags = bytearray(len(ids) + 1)
            for index in self.free:
                flags[index] = 1
            self.plan = (tuple(positions), bytes(flags))

    def __call__(self, cells: list[bytes]) -> bytes:
        if self.direct:
            needs_quotes = self.needs_quotes
            for index in self.free:
                cell = cells[index]
                if needs_quotes(cell):
                    cells[index] = b'"' + cell.replace(b'"', b'""') + b'"'
            return self.join(self.pick(cells))
        return self._general(cells)

    def _general(self, cells: list[bytes]) -> bytes:
        out = list(self.pick(cells))
        for column, build in self.built:
            out[column] = build(cells)
        for column in self.neutral:
            if out[column].startswith(_FORMULA_BYTES):
                out[column] = b"'" + out[column]
        needs_quotes = self.needs_quotes
        for column, cell in enumerate(out):
            if cell and needs_quotes(cell):
                out[column] = b'"' + cell.replace(b'"', b'""') + b'"'
        if out == [b""]:
            return b'""'  # one empty cell: an empty line would be no row at all
        return self.join(out)


def _picker(positions: list[int]) -> Callable[[list[bytes]], tuple[bytes, ...]]:
    if len(positions) > 1:
        return itemgetter(*positions)
    return lambda cells: tuple(cells[index] for index in positions)


def _builder(column: _Field, parts: list[tuple[_Placement, int]]) -> Callable[[list[bytes]], bytes]:
    """A column's cell from natural cells that need writing again (one, or a sub-document's)."""
    [(first, index), *_] = parts
    if not first.within:
        transcode = first.transcode
        assert transcode is not None
        return lambda cells: transcode(cells[index])
    encode = column.encode

    def whole(cells: list[bytes]) -> bytes:
        value: dict[str, Any] = {}
        for place, at in parts:
            target = value
            for key in place.within[:-1]:
                target = target.setdefault(key, {})
            target[place.within[-1]] = _natural_value(place.leaf_type, cells[at])
        return encode(value)

    return whole


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    index: int
    name: str
    parents: tuple[str, ...]
    key: str
    type: ColumnType


def _typed_header(cells: list[str]) -> list[tuple[str, ColumnType]] | None:
    """Names and types when every cell is ``name.type()`` with a known type, else None."""
    typed = []
    for cell in cells:
        match = _TYPED_CELL.fullmatch(cell)
        column_type = parse_type(match["spec"]) if match else None
        if match is None or column_type is None:
            return None
        typed.append((match["column"], column_type))
    return typed


def _columns(cells: list[str], types: Mapping[str, str] | None, path: str) -> list[_Column]:
    if any("\x00" in cell for cell in cells):
        raise FormatError(path, "not CSV text: the header holds a NUL byte", "line 1")
    named = _typed_header(cells) or [(cell, STRING) for cell in cells]
    overrides = _parse_types(types, {name for name, _ in named})
    columns = []
    seen: set[tuple[str, ...]] = set()
    for index, (name, column_type) in enumerate(named):
        keys = column_path(name)
        if keys in seen:
            raise FormatError(path, f"column {name!r} appears twice in the header", "line 1")
        seen.add(keys)
        columns.append(_Column(index, name, keys[:-1], keys[-1], overrides.get(name, column_type)))
    return columns


def _parse_types(types: Mapping[str, str] | None, names: set[str]) -> dict[str, ColumnType]:
    parsed = {}
    for name, spec in (types or {}).items():
        column_type = parse_type(str(spec))
        if column_type is None:
            known = ", ".join(t.spec for t in _COLUMN_TYPES)
            raise ValueError(f"Unknown column type {spec!r} for {name!r}; known types: {known}")
        if name not in names:
            raise ValueError(f"types names column {name!r}, which is not in the header")
        parsed[name] = column_type
    return parsed


def _positional_types(types: Mapping[str, str] | None) -> dict[int, ColumnType]:
    """``types`` for a file without a header: keys are column positions ``"0"``, ``"1"``, ..."""
    parsed: dict[int, ColumnType] = {}
    for name, spec in (types or {}).items():
        if not str(name).isdigit():
            raise ValueError(f'Without a header, types are keyed by position ("0"), not {name!r}')
        parsed[int(name)] = _parse_types({name: spec}, {name})[name]
    return parsed


def _positional(width: int, types: dict[int, ColumnType]) -> list[_Column]:
    return [_Column(i, str(i), (), str(i), types.get(i, STRING)) for i in range(width)]


class _CellError(ValueError):
    pass


_CELL_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, bson.errors.BSONError)


class _RowReader:
    """Rows to documents for one list of columns, each column's decoder chosen once.

    ``document`` is the reading compiled for the header when it allows one, which hands a row
    it cannot read to ``read``, the general loop that says which cell is wrong and why.
    """

    def __init__(self, columns: list[_Column]) -> None:
        self.width = len(columns)
        self.plan = [(c.key, c.type.decode, c.parents, c) for c in columns]
        self.document = _compiled_reader(columns, self.read) or self.read

    def read(self, row: list[str]) -> dict[str, Any]:
        if len(row) != self.width:
            raise _CellError(f"{len(row)} cells, the header has {self.width}")
        document: dict[str, Any] = {}
        # Only the non-empty cells, each with its column: an empty cell is a missing field.
        for (key, decode, parents, column), cell in zip(
            compress(self.plan, row), filter(None, row), strict=True
        ):
            if decode is None:
                value: Any = cell
            else:
                try:
                    value = decode(cell)
                except _CELL_ERRORS as exc:
                    raise _CellError(
                        f"column {column.name!r} ({column.type.spec}): {_reason(exc, cell)}"
                    ) from None
            target = document
            for parent in parents:
                inner = target.get(parent)
                if inner is None:
                    inner = target[parent] = {}
                elif type(inner) is not dict:
                    raise _CellError(f"column {column.name!r} conflicts with column {parent!r}")
                target = inner
            if key in target:
                raise _CellError(f"column {column.name!r} conflicts with another column")
            target[key] = value
        return document


@dataclass(eq=False)
class _Group:
    """Columns sharing a sub-document, in a header being compiled."""

    key: str
    items: list[_Column | _Group] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


#: Headers wider, or sub-documents deeper, take the general loop (Python limits nested blocks).
_MAX_COMPILED_WIDTH = 4096
_MAX_COMPILED_DEPTH = 12


def _column_tree(columns: list[_Column]) -> _Group | None:
    """Columns nested by sub-document; None unless each sub-document's columns are side by side
    and no column lies inside another's value (then no cell can conflict with another)."""
    root = _Group("")
    for column in columns:
        if len(column.parents) > _MAX_COMPILED_DEPTH:
            return None
        level = root
        for key in column.parents:
            last = level.items[-1] if level.items else None
            if isinstance(last, _Group) and last.key == key:
                level = last
                continue
            if key in level.names:
                return None
            level.names.add(key)
            group = _Group(key)
            level.items.append(group)
            level = group
        if column.key in level.names:
            return None
        level.names.add(column.key)
        level.items.append(column)
    return root


def _compiled_reader(
    columns: list[_Column], fallback: Callable[[list[str]], dict[str, Any]]
) -> Callable[[list[str]], dict[str, Any]] | None:
    """Straight-line Python for a regular header: a test and a store per cell, no loop.

    A row it cannot read (a cell short, a cell its decoder refuses) goes to ``fallback``. The
    generated code names cells, keys and decoders by position only (``c3``, ``k3``, ``d3``):
    the header's text never becomes code. None for other headers.
    """
    tree = _column_tree(columns) if 0 < len(columns) <= _MAX_COMPILED_WIDTH else None
    if tree is None:
        return None
    cells = ", ".join(f"c{c.index}" for c in columns)
    body = [
        "    def read(row):",
        "        try:",
        f"            [{cells}] = row",
        "            g0 = {}",
    ]
    group_keys: list[str] = []
    _emit(tree, "g0", 3, body, group_keys)
    body += ["            return g0", "        except errors:", "            return fallback(row)"]
    bindings = [f"    k{c.index} = keys[{c.index}]" for c in columns]
    bindings += [f"    d{c.index} = decoders[{c.index}]" for c in columns if c.type.decode]
    bindings += [f"    g{n}k = group_keys[{n}]" for n in range(1, len(group_keys))]
    head = "def make(keys, decoders, group_keys, fallback, errors):"
    source = "\n".join([head, *bindings, *body, "    return read"])
    namespace: dict[str, Any] = {}
    exec(compile(source, "<csv header>", "exec"), namespace)
    keys = [c.key for c in columns]
    decoders = [c.type.decode for c in columns]
    return namespace["make"](keys, decoders, group_keys, fallback, _CELL_ERRORS)


def _emit(group: _Group, target: str, depth: int, out: list[str], group_keys: list[str]) -> None:
    indent = "    " * depth
    if not group_keys:
        group_keys.append("")  # g0 is the document
    for item in group.items:
        if isinstance(item, _Column):
            i = item.index
            value = f"d{i}(c{i})" if item.type.decode else f"c{i}"
            out.append(f"{indent}if c{i}: {target}[k{i}] = {value}")
            continue
        n = len(group_keys)
        group_keys.append(item.key)
        present = " or ".join(f"c{c.index}" for c in _tree_columns(item))
        out.append(f"{indent}if {present}:")
        out.append(f"{indent}    g{n} = {target}[g{n}k] = {{}}")
        _emit(item, f"g{n}", depth + 1, out, group_keys)


def _tree_columns(group: _Group) -> Iterator[_Column]:
    for item in group.items:
        if isinstance(item, _Column):
            yield item
        else:
            yield from _tree_columns(item)


def _reason(exc: BaseException, cell: str) -> str:
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    text = str(exc) or type(exc).__name__
    preview = cell if len(cell) <= 60 else cell[:60] + "…"
    return f"cannot read {preview!r} ({text})"


def _text_lines(stream: IO[bytes], path: str) -> Iterator[str]:
    """The file's lines as text, each decoded alone so an encoding error names its line."""
    if not isinstance(stream, io.BufferedIOBase):
        stream = io.BufferedReader(stream)  # type: ignore[arg-type]
    readline, limit = stream.readline, _MAX_LINE
    number = 0
    while line := readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            # Never held whole: a file without line breaks, or a decompression bomb.
            raise FormatError(
                path, f"a line longer than {limit:,} bytes: not CSV text", f"line {number}"
            )
        if number == 1:
            line = line.removeprefix(_BOM)
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(
                path,
                f"invalid UTF-8 at byte {exc.start + 1} of the line: not CSV text",
                f"line {number}",
            ) from None


def _preview(row: list[str], delimiter: str, limit: int = 200) -> str:
    text = delimiter.join(row)
    return text if len(text) <= limit else text[:limit] + "…"


# ------------------------------------------------------------------------------------------
# The format
# ------------------------------------------------------------------------------------------


class CsvFormat:
    """CSV, or TSV with ``delimiter="\\t"``; see the module documentation for the rules."""

    def __init__(
        self, delimiter: str = ",", name: str = "csv", extensions: tuple[str, ...] | None = None
    ) -> None:
        self.delimiter = delimiter
        self.name = name
        self.extensions = tuple(extensions or EXTENSIONS[name])

    def write_stream(
        self,
        stream: IO[bytes],
        documents: Iterable[Mapping[str, Any]],
        *,
        typed: bool = True,
        plain_values: str = "refuse",
        neutralize_formulas: bool = False,
        json_format: str = "relaxed",
        temp_dir: str | Path | None = None,
        **_: Any,
    ) -> int:
        options = _WriteOptions.parse(typed, plain_values, json_format, neutralize_formulas)
        schema = _Schema(options)
        if isinstance(documents, BsonChunks) and documents.codec_options == _DECODE_OPTIONS:
            rendered = _rendered(documents, schema)
        else:
            rendered = map(schema.add, documents, count(1))
        early = _EarlyRows(stream, schema, self) if _rewindable(stream) else None
        with tempfile.TemporaryFile(prefix="hermes-csv-", dir=temp_dir) as file:
            spill = _Spill(file, early)
            written = 0
            try:
                for written, (ids, cells) in enumerate(rendered, start=1):  # noqa: B007
                    spill.add(ids, cells)
                spill.flush()
                if early is not None and early.complete:
                    return written
                if early is not None:
                    early.discard()
                if written == 0:
                    return 0
                schema.finalize()
                stream.write(self._header_line(schema.header(), options.neutralize))
                self._write_rows(stream, schema, spill)
            except BaseException:
                if early is not None and early.version != -1:
                    with contextlib.suppress(Exception):  # keep the error that stopped it
                        early.discard()
                raise
        return written

    def _header_line(self, header: list[str], neutralize: bool) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator=_LINE_END)
        if neutralize:
            header = ["'" + h if h.startswith(_FORMULA_START) else h for h in header]
        writer.writerow(header)
        return buffer.getvalue().encode("utf-8")

    def _write_rows(self, stream: IO[bytes], schema: _Schema, spill: _Spill) -> None:
        rows = _Rows(schema, self.delimiter)
        for batch in spill.batches():
            stream.write(rows.lines(batch))

    def read_batches(
        self,
        stream: IO[bytes],
        path: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: ErrorHandler | None = None,
        types: Mapping[str, str] | None = None,
        skip_header: bool = False,
        **_: Any,
    ) -> Iterator[Batch]:
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
        reader = csv.reader(_text_lines(stream, path), delimiter=self.delimiter, strict=True)
        if skip_header:
            layout: _Layout = _Positional(_positional_types(types))
        else:
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise FormatError(path, _csv_problem(exc, path, "line 1"), "line 1") from None
            if header is None:
                return iter(())
            layout = _Header(_columns(header, types, path))
        return batch_records(self._records(reader, layout, path, on_error), batch_size)

    def _records(
        self, reader: Any, layout: _Layout, path: str, on_error: ErrorHandler | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(``"row N"``, document) for each row; bad rows and cells go to ``on_error``."""
        number = 0  # data rows; blank lines are not rows
        document_of = layout.document
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                where = f"row {number} (line {line})"
                reject(RecordError(path, where, _csv_problem(exc, path, where)), on_error)
                continue
            if not row and not layout.blank_is_document:
                continue
            number += 1
            try:
                document = document_of(row)
            except _CellError as exc:
                where = f"row {number} (line {line})"
                reject(RecordError(path, where, str(exc), _preview(row, self.delimiter)), on_error)
                continue
            yield f"row {number}", document


class _Header:
    """Rows of a file with a header: one cell per column."""

    def __init__(self, columns: list[_Column]) -> None:
        self.document = _RowReader(columns).document
        # With no column at all, each (empty) line is a document with no fields.
        self.blank_is_document = not columns


class _Positional:
    """Rows of a file without a header: fields named by position, rows of any width."""

    blank_is_document = False

    def __init__(self, types: dict[int, ColumnType]) -> None:
        self.types = types
        self.readers: dict[int, Callable[[list[str]], dict[str, Any]]] = {}

    def document(self, row: list[str]) -> dict[str, Any]:
        read = self.readers.get(len(row))
        if read is None:
            if len(self.readers) >= _MAX_WIDTHS:
                self.readers.clear()  # rows of ever new widths: memory stays bounded
            columns = _positional(len(row), self.types)
            read = self.readers[len(row)] = _RowReader(columns).document
        return read(row)


_Layout = _Header | _Positional
#: Row widths whose readers a file without a header keeps.
_MAX_WIDTHS = 64


def _csv_problem(exc: csv.Error, path: str, where: str) -> str:
    """What is wrong with a row the csv module refused; a FormatError when reading cannot go on."""
    text = str(exc)
    if "unexpected end of data" in text:
        raise FormatError(path, "unterminated quoted cell: the quote is never closed", where)
    if "field larger than field limit" in text:
        raise FormatError(
            path,
            f"a cell exceeds {csv.field_size_limit():,} characters (most likely a quote never "
            "closed)",
            where,
        )
    if where == "line 1":
        return f"malformed CSV header: {text}"
    return f"malformed CSV: {text}"
