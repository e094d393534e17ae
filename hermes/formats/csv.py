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
only after the last document, so documents are spilled as BSON to an anonymous temporary file
(in ``TMPDIR``; removed on success and on error) while the columns are collected, then written
from it. Memory depends on the number of columns, not of documents.

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
import csv
import heapq
import io
import json
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import bson
from bson import Decimal128, Int64, ObjectId
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, DatetimeConversion

from hermes.errors import FormatError, UnsupportedValueError
from hermes.formats import extjson
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    Batch,
    ErrorHandler,
    RecordError,
    batch_records,
    reject,
)

_BOM = b"\xef\xbb\xbf"
_LINE_END = "\r\n"
#: Characters in one cell: room for a 16 MB document as JSON, and where a runaway quote stops.
_FIELD_LIMIT = 1 << 26
#: The longest physical line read: a row of a 16 MB document fits many times over.
_MAX_LINE = 1 << 27
_FLUSH_BYTES = 1 << 20
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: How documents go to the spill file and come back: as the warehouse stores and returns them.
_ENCODE_OPTIONS = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)
_DECODE_OPTIONS = CodecOptions(
    tz_aware=True, tzinfo=timezone.utc, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


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


def _json_text(value: Any, canonical: bool = False) -> str:
    # A one-field document keeps the codec's fast path; ``{"":`` and ``}`` are cut off.
    return extjson.dumps({"": value}, canonical)[4:-1].decode("utf-8")


def _parse_int(text: str, low: int, high: int, name: str) -> int:
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"{text!r} is out of the {name} range")
    return number


def _parse_bool(text: str) -> bool:
    lower = text.strip().lower()
    if lower in ("true", "false"):
        return lower == "true"
    raise ValueError(f"{text!r} is not true or false")


def _parse_date(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _parse_decimal(text: str) -> Decimal128:
    try:
        return Decimal128(text)
    except Exception:
        raise ValueError(f"{text!r} is not a decimal") from None


def _parse_json(text: str) -> Any:
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
    ColumnType(
        "int32", "int32()", int.__repr__, lambda t: _parse_int(t, _INT32_MIN, _INT32_MAX, "int32")
    ),
    ColumnType(
        "int64",
        "int64()",
        int.__repr__,
        lambda t: Int64(_parse_int(t, _INT64_MIN, _INT64_MAX, "int64")),
    ),
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
# Writing: the schema collected in the first pass
# ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Field:
    """One field name at one level of nesting: a column, or a group of dotted columns."""

    path: tuple[str, ...]
    can_group: bool
    children: dict[str, _Field] = field(default_factory=dict)
    #: Precedence between children: (earlier, later) -> first row that showed it.
    edges: dict[tuple[str, str], int] = field(default_factory=dict)
    last_keys: tuple[str, ...] = ()
    groups: int = 0  # rows where the field is a sub-document that flattens
    leaves: int = 0  # rows where it is anything else
    leaf_type: str | None = None
    first_group_row: int = 0
    first_leaf_row: int = 0
    # Decided by _finalize; a group has no type:
    column: int = -1
    type: ColumnType | None = None
    encode: Callable[[Any], str] = str

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


def _flattens(value: dict[str, Any]) -> bool:
    return bool(value) and all(is_plain_name(key) for key in value)


class _Schema:
    """Columns and their types, collected one document at a time (memory: one per column)."""

    def __init__(self, options: _WriteOptions) -> None:
        self.root = _Field((), can_group=True)
        self.options = options
        self.columns: list[_Field] = []

    def observe(self, document: Mapping[str, Any], row: int) -> None:
        self.root.groups += 1
        self._observe(self.root, document, row)

    def _observe(self, parent: _Field, mapping: Mapping[str, Any], row: int) -> None:
        keys = tuple(mapping)
        if keys != parent.last_keys:
            parent.last_keys = keys
            for pair in pairwise(keys):
                parent.edges.setdefault(pair, row)
        for key, value in mapping.items():
            child = parent.children.get(key)
            if child is None:
                child = parent.children[key] = _Field((*parent.path, key), is_plain_name(key))
            if child.can_group and type(value) is dict and _flattens(value):
                child.groups += 1
                child.first_group_row = child.first_group_row or row
                self._observe(child, value, row)
            else:
                self._observe_leaf(child, value, row)

    def _observe_leaf(self, leaf: _Field, value: Any, row: int) -> None:
        kind = natural_type(value)
        if self.options.strict_plain and kind != "string":
            raise UnsupportedValueError(_plain_refusal(leaf.name, value, row))
        leaf.leaves += 1
        leaf.first_leaf_row = leaf.first_leaf_row or row
        if leaf.leaf_type != kind:
            leaf.leaf_type = kind if leaf.leaf_type is None else "json"

    def finalize(self) -> list[_Field]:
        """Decide each field's column type and the column order; returns the columns."""
        for child in self._order(self.root, top_level=True) or ():
            self._finalize(child)
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

    def cells(self, document: Mapping[str, Any]) -> list[str]:
        cells = [""] * len(self.columns)
        self._fill(self.root, document, cells)
        return cells

    def _fill(self, parent: _Field, mapping: Mapping[str, Any], cells: list[str]) -> None:
        children = parent.children
        for key, value in mapping.items():
            child = children[key]
            if child.type is None:
                self._fill(child, value, cells)
            else:
                cells[child.column] = child.encode(value)

    def _encoder(self, column_type: ColumnType) -> Callable[[Any], str]:
        """The function that writes one cell of a column, options applied."""
        options = self.options
        if options.text:
            encode = partial(_as_text, canonical=options.canonical)
        elif column_type is JSON:
            encode = partial(_json_text, canonical=options.canonical)
        else:
            encode = column_type.encode
        if not (options.neutralize and column_type.text):
            return encode

        def neutralized(value: Any) -> str:
            text = encode(value)
            return "'" + text if text.startswith(_FORMULA_START) else text

        return neutralized


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


def _to_bson(document: Mapping[str, Any], row: int) -> bytes:
    try:
        return bson.encode(document, codec_options=_ENCODE_OPTIONS)
    except (bson.errors.BSONError, OverflowError, TypeError, ValueError) as exc:
        raise UnsupportedValueError(f"Row {row} is not a BSON document: {exc}") from None


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


def _row_document(row: list[str], columns: list[_Column]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for column in columns:
        cell = row[column.index]
        if not cell:
            continue
        decode = column.type.decode
        if decode is None:
            value: Any = cell
        else:
            try:
                value = decode(cell)
            except (
                ValueError,
                TypeError,
                OverflowError,
                RecursionError,
                bson.errors.BSONError,
            ) as exc:
                raise _CellError(
                    f"column {column.name!r} ({column.type.spec}): {_reason(exc, cell)}"
                ) from None
        target = document
        for key in column.parents:
            inner = target.get(key)
            if inner is None:
                inner = target[key] = {}
            elif type(inner) is not dict:
                raise _CellError(f"column {column.name!r} conflicts with column {key!r}")
            target = inner
        if column.key in target:
            raise _CellError(f"column {column.name!r} conflicts with another column")
        target[column.key] = value
    return document


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
    number = 0
    while line := stream.readline(_MAX_LINE + 1):
        number += 1
        if len(line) > _MAX_LINE and not line.endswith(b"\n"):
            # Never held whole: a file without line breaks, or a decompression bomb.
            raise FormatError(
                path, f"a line longer than {_MAX_LINE:,} bytes: not CSV text", f"line {number}"
            )
        if number == 1 and line.startswith(_BOM):
            line = line[3:]
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
        self, delimiter: str = ",", name: str = "csv", extensions: tuple[str, ...] = (".csv",)
    ) -> None:
        self.delimiter = delimiter
        self.name = name
        self.extensions = tuple(extensions)

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
        with tempfile.TemporaryFile(prefix="hermes-csv-", dir=temp_dir) as spill:
            count = 0
            for count, document in enumerate(documents, start=1):  # noqa: B007
                raw = _to_bson(document, count)
                schema.observe(bson.decode(raw, codec_options=_DECODE_OPTIONS), count)
                spill.write(raw)
            if count == 0:
                return 0
            schema.finalize()
            spill.seek(0)
            rows = map(schema.cells, bson.decode_file_iter(spill, codec_options=_DECODE_OPTIONS))
            self._write_rows(stream, schema.header(), rows, options.neutralize)
        return count

    def _write_rows(
        self, stream: IO[bytes], header: list[str], rows: Iterable[list[str]], neutralize: bool
    ) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator=_LINE_END)
        if neutralize:
            header = ["'" + h if h.startswith(_FORMULA_START) else h for h in header]
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            if buffer.tell() >= _FLUSH_BYTES:
                stream.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
        stream.write(buffer.getvalue().encode("utf-8"))

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
            header = _next_row(reader, path, "line 1")
            if header is None:
                return iter(())
            layout = _Header(_columns(header, types, path))
        return batch_records(self._records(reader, layout, path, on_error), batch_size)

    def _records(
        self, reader: Any, layout: _Layout, path: str, on_error: ErrorHandler | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, where, row in _rows(reader, path, on_error, layout.blank_is_document):
            try:
                document = layout.document(row)
            except _CellError as exc:
                error = RecordError(path, where, str(exc), _preview(row, self.delimiter))
                reject(error, on_error)
                continue
            yield f"row {number}", document


class _Header:
    """Rows of a file with a header: one cell per column."""

    def __init__(self, columns: list[_Column]) -> None:
        self.columns = columns
        # With no column at all, each (empty) line is a document with no fields.
        self.blank_is_document = not columns

    def document(self, row: list[str]) -> dict[str, Any]:
        if len(row) != len(self.columns):
            raise _CellError(f"{len(row)} cells, the header has {len(self.columns)}")
        return _row_document(row, self.columns)


class _Positional:
    """Rows of a file without a header: fields named by position, rows of any width."""

    blank_is_document = False

    def __init__(self, types: dict[int, ColumnType]) -> None:
        self.types = types
        self.layouts: dict[int, list[_Column]] = {}

    def document(self, row: list[str]) -> dict[str, Any]:
        columns = self.layouts.get(len(row))
        if columns is None:
            columns = self.layouts[len(row)] = _positional(len(row), self.types)
        return _row_document(row, columns)


_Layout = _Header | _Positional


def _rows(
    reader: Any, path: str, on_error: ErrorHandler | None, blank_is_document: bool
) -> Iterator[tuple[int, str, list[str]]]:
    """(data row number, "row N (line L)", cells) for each row; malformed rows are rejected."""
    number = 0
    while True:
        line = reader.line_num + 1
        where = f"row {number + 1} (line {line})"
        try:
            row = _next_row(reader, path, where)
        except _RowError as exc:
            number += 1
            reject(RecordError(path, where, str(exc)), on_error)
            continue
        if row is None:
            return
        if not row and not blank_is_document:
            continue  # a blank line is not a row
        number += 1
        yield number, where, row


def _next_row(reader: Any, path: str, where: str) -> list[str] | None:
    """The next row, None at the end; a row that cannot be resynchronised ends the read."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        text = str(exc)
        if "unexpected end of data" in text:
            raise FormatError(
                path, "unterminated quoted cell: the quote is never closed", where
            ) from None
        if "field larger than field limit" in text:
            raise FormatError(
                path,
                f"a cell exceeds {csv.field_size_limit():,} characters (most likely a quote never "
                "closed)",
                where,
            ) from None
        if where == "line 1":
            raise FormatError(path, f"malformed CSV header: {text}", where) from None
        raise _RowError(f"malformed CSV: {text}") from None


class _RowError(ValueError):
    pass
