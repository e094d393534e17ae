"""MongoDB Extended JSON v2, fast and lossless for the BSON value model.

Encoding goes through orjson; only the values JSON cannot hold natively reach Python code (the
``default`` hook). Decoding parses with orjson and walks only the lines that contain a ``"$``.

Relaxed mode follows the specification with one deliberate refinement: an ``Int64`` whose value
also fits in 32 bits is written ``{"$numberLong": "5"}`` rather than ``5``, because a plain ``5``
reads back as a 32-bit integer and the round trip would change the stored BSON. Any Extended JSON
reader accepts that form.

A plain dict whose keys are exactly those of a type wrapper (``{"$oid": ...}``) cannot be told
apart from the wrapper in Extended JSON; encoding one raises :class:`UnsupportedValueError`
instead of writing something that would read back as another type.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS

from hermes.errors import UnsupportedValueError

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_UTC = timezone.utc
_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS

#: Key sets of the Extended JSON type wrappers; a plain dict with exactly these keys is ambiguous.
WRAPPER_KEYS: frozenset[frozenset[str]] = frozenset(
    frozenset(keys)
    for keys in (
        ("$oid",),
        ("$date",),
        ("$numberInt",),
        ("$numberLong",),
        ("$numberDouble",),
        ("$numberDecimal",),
        ("$binary",),
        ("$binary", "$type"),
        ("$uuid",),
        ("$code",),
        ("$code", "$scope"),
        ("$timestamp",),
        ("$regularExpression",),
        ("$regex", "$options"),
        ("$dbPointer",),
        ("$symbol",),
        ("$minKey",),
        ("$maxKey",),
        ("$undefined",),
    )
)


class ExtJsonError(ValueError):
    """Text that is JSON but not valid Extended JSON (a bad ``$oid``, say)."""


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def datetime_to_millis(value: datetime) -> int:
    """Milliseconds since the epoch, as BSON stores dates (naive means UTC, microseconds cut)."""
    delta = value - _EPOCH_NAIVE if value.tzinfo is None else value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _date_wrapper(value: datetime, canonical: bool) -> dict[str, Any]:
    if not canonical:
        offset = value.utcoffset()
        if offset:
            value = value.astimezone(timezone.utc)
        if 1970 <= value.year <= 9999:
            text = value.replace(tzinfo=None).isoformat(timespec="milliseconds")
            return {"$date": text + "Z"}
    return {"$date": {"$numberLong": str(datetime_to_millis(value))}}


def _double(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _binary(value: bytes, subtype: int) -> dict[str, Any]:
    return {
        "$binary": {"base64": base64.b64encode(value).decode("ascii"), "subType": f"{subtype:02x}"}
    }


def _check_plain_dict(value: Mapping[str, Any]) -> None:
    if value and next(iter(value))[:1] == "$" and frozenset(value) in WRAPPER_KEYS:
        raise UnsupportedValueError(
            f"A sub-document with the keys {sorted(value)} cannot be written as Extended JSON: "
            "it would read back as a typed value. Export it as Parquet instead."
        )


def _encode_special(value: Any, canonical: bool) -> Any:
    """The Extended JSON form of a value JSON cannot hold natively (children left as they are)."""
    kind = type(value)
    if kind is ObjectId:
        return {"$oid": str(value)}
    if kind is Int64 or (kind is not bool and isinstance(value, int)):
        number = int(value)
        fits32 = _INT32_MIN <= number <= _INT32_MAX
        if canonical:
            return {("$numberInt" if fits32 and kind is not Int64 else "$numberLong"): str(number)}
        return {"$numberLong": str(number)} if kind is Int64 and fits32 else number
    if isinstance(value, float):
        number = float(value)
        if canonical or not math.isfinite(number):
            return {"$numberDouble": _double(number)}
        return number
    if isinstance(value, datetime):
        return _date_wrapper(value, canonical)
    if kind is DatetimeMS:
        return {"$date": {"$numberLong": str(int(value))}}
    if kind is Decimal128:
        return {"$numberDecimal": str(value)}
    if kind is Binary:
        return _binary(bytes(value), value.subtype)
    if isinstance(value, bytes | bytearray | memoryview):
        return _binary(bytes(value), 0)
    if kind is Code:
        if value.scope is None:
            return {"$code": str(value)}
        return {"$code": str(value), "$scope": dict(value.scope)}
    if kind is Regex:
        return {
            "$regularExpression": {"pattern": value.pattern, "options": _regex_flags(value.flags)}
        }
    if kind is Timestamp:
        return {"$timestamp": {"t": value.time, "i": value.inc}}
    if kind is DBRef:
        return value.as_doc().to_dict()
    if kind is MinKey:
        return {"$minKey": 1}
    if kind is MaxKey:
        return {"$maxKey": 1}
    if isinstance(value, uuid.UUID):
        return _binary(value.bytes, 4)
    if isinstance(value, Decimal):
        return {"$numberDecimal": str(value)}
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        _check_plain_dict(value)
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, re.Pattern):
        return _encode_special(Regex.from_native(value), canonical)
    raise UnsupportedValueError(
        f"Cannot write a value of type {kind.__module__}.{kind.__qualname__} as Extended JSON"
    )


_FLAG_LETTERS = {
    re.IGNORECASE: "i",
    re.LOCALE: "l",
    re.MULTILINE: "m",
    re.DOTALL: "s",
    re.UNICODE: "u",
    re.VERBOSE: "x",
}


def _regex_flags(flags: int | str) -> str:
    if isinstance(flags, str):
        return "".join(sorted(flags))
    return "".join(sorted(letter for bit, letter in _FLAG_LETTERS.items() if flags & bit))


#: Types that never hold a float: skipped without a look by the NaN check.
_NO_FLOAT: frozenset[type] = frozenset(
    {str, int, bool, type(None), datetime, ObjectId, Int64, Decimal128, Binary, bytes}
)


def has_non_finite(value: Any) -> bool:
    """Whether a NaN or an infinity hides anywhere in the value.

    Recursive (orjson has already refused nesting deeper than 255 levels when this runs) and
    typed by exact class first: it runs on every document that holds a ``null``, so it must cost
    little more than a look at each value.
    """
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return _other_non_finite(value)
    for item in items:
        kind = type(item)
        if kind in _NO_FLOAT:
            continue
        if kind is float:
            if item - item != 0.0:  # NaN and infinities only
                return True
        elif has_non_finite(item):
            return True
    return False


def _other_non_finite(item: Any) -> bool:
    """The NaN check for what is neither a dict nor a list (subclasses, Code scopes, DBRefs)."""
    if isinstance(item, float):
        return not math.isfinite(item)
    if isinstance(item, Mapping):
        return any(has_non_finite(v) for v in item.values())
    if isinstance(item, list | tuple):
        return any(has_non_finite(v) for v in item)
    if isinstance(item, Code) and item.scope:
        return has_non_finite(dict(item.scope))
    if isinstance(item, DBRef):
        return has_non_finite(item.as_doc().to_dict())
    return False


def to_extended(value: Any, canonical: bool = False) -> Any:
    """The JSON-compatible Extended JSON form of any value of the model (recursive)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is dict or (isinstance(value, Mapping) and kind is not DBRef):
        _check_plain_dict(value)
        return {str(k): to_extended(v, canonical) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [to_extended(v, canonical) for v in value]
    if kind is DBRef:
        return {
            k: (v if k in ("$ref", "$db") else to_extended(v, canonical))
            for k, v in value.as_doc().items()
        }
    if kind is Code and value.scope is not None:
        return {"$code": str(value), "$scope": to_extended(dict(value.scope), canonical)}
    return _encode_special(value, canonical)


class _RelaxedDefault:
    """orjson's ``default`` hook; counts the ``"$`` keys it writes so plain ones stand out.

    The values of a typical warehouse document that reach it are UTC dates and ObjectIds: those
    take a short path; everything else goes through :func:`_encode_special`.
    """

    __slots__ = ("dollar_keys",)

    def __init__(self) -> None:
        self.dollar_keys = 0

    def __call__(self, value: Any) -> Any:
        kind = value.__class__
        if kind is datetime and value.tzinfo is _UTC and value.year >= 1970:
            self.dollar_keys += 1
            return {"$date": value.isoformat(timespec="milliseconds")[:-6] + "Z"}
        if kind is ObjectId:
            self.dollar_keys += 1
            return {"$oid": str(value)}
        result = _encode_special(value, False)
        if type(result) is dict and kind is not dict:
            if isinstance(value, Mapping) and not isinstance(value, DBRef):
                return result
            for key, inner in result.items():
                if key[:1] == "$":
                    self.dollar_keys += 1
                    if key == "$date" and type(inner) is dict:
                        self.dollar_keys += 1
        return result


def dumps(document: Mapping[str, Any], canonical: bool = False) -> bytes:
    """One document as compact Extended JSON bytes (no newline)."""
    if canonical:
        return _dumps_walked(document, canonical=True)
    default = _RelaxedDefault()
    try:
        out = orjson.dumps(document, default=default, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, UnsupportedValueError):
            raise exc.__cause__ from None
        # orjson refuses what it cannot hold natively (ints over 64 bits, very deep nesting):
        # the explicit walk either writes it or says why.
        return _dumps_walked(document, canonical=False)
    if b"null" in out and has_non_finite(document):
        # orjson writes NaN and infinities as null: take the explicit walk for this document.
        return _dumps_walked(document, canonical=False)
    if out.count(b'"$') > default.dollar_keys:
        # Some "$ came from the data itself: a plain sub-document might pose as a wrapper.
        check_top_level(document)
    return out


def _dumps_walked(document: Mapping[str, Any], canonical: bool) -> bytes:
    try:
        return orjson.dumps(to_extended(document, canonical))
    except orjson.JSONEncodeError as exc:
        raise UnsupportedValueError(f"Cannot write the document as JSON: {exc}") from None
    except RecursionError:
        raise UnsupportedValueError("Cannot write the document as JSON: nesting too deep") from None


def _check_nested_wrappers(value: Any) -> None:
    """Refuse plain sub-documents that would read back as typed values."""
    if isinstance(value, dict):
        _check_plain_dict(value)
        for child in value.values():
            if isinstance(child, dict | list):
                _check_nested_wrappers(child)
    elif isinstance(value, list):
        for child in value:
            if isinstance(child, dict | list):
                _check_nested_wrappers(child)


def check_top_level(document: Mapping[str, Any]) -> None:
    """A top-level document is never taken for a wrapper, but its children may be."""
    for child in document.values():
        if isinstance(child, dict | list):
            _check_nested_wrappers(child)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_NOT = object()


def _millis_to_datetime(millis: int) -> datetime | DatetimeMS:
    try:
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:
        return DatetimeMS(millis)


def _parse_date(value: Any) -> datetime | DatetimeMS:
    if type(value) is str:
        # The common case, a relaxed UTC date ("...T12:00:00.123Z"): one parse, nothing else.
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is _UTC:
                micros = parsed.microsecond
                return (
                    parsed.replace(microsecond=micros - micros % 1000) if micros % 1000 else parsed
                )
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ExtJsonError(f"invalid $date {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        parsed = parsed.astimezone(timezone.utc)
        return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    if isinstance(value, dict) and set(value) == {"$numberLong"}:
        return _millis_to_datetime(_int_text(value["$numberLong"], "$date"))
    if isinstance(value, int) and not isinstance(value, bool):
        return _millis_to_datetime(value)
    if isinstance(value, float) and value.is_integer():
        return _millis_to_datetime(int(value))
    raise ExtJsonError(f"invalid $date {value!r}")


def _int_text(text: Any, name: str) -> int:
    if not isinstance(text, str):
        raise ExtJsonError(f"{name} must be a string, got {text!r}")
    try:
        return int(text)
    except ValueError:
        raise ExtJsonError(f"invalid {name} {text!r}") from None


def _number_int(value: Any) -> int:
    number = _int_text(value, "$numberInt")
    if not _INT32_MIN <= number <= _INT32_MAX:
        raise ExtJsonError(f"$numberInt out of range: {value}")
    return number


def _number_long(value: Any) -> Int64:
    number = _int_text(value, "$numberLong")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ExtJsonError(f"$numberLong out of range: {value}")
    return Int64(number)


def _number_double(value: Any) -> float:
    if not isinstance(value, str):
        raise ExtJsonError(f"$numberDouble must be a string, got {value!r}")
    special = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
    if value in special:
        return special[value]
    try:
        return float(value)
    except ValueError:
        raise ExtJsonError(f"invalid $numberDouble {value!r}") from None


def _number_decimal(value: Any) -> Decimal128:
    try:
        return Decimal128(value)
    except Exception:
        raise ExtJsonError(f"invalid $numberDecimal {value!r}") from None


def _object_id(value: Any) -> ObjectId:
    try:
        return ObjectId(value)
    except Exception:
        raise ExtJsonError(f"invalid $oid {value!r}") from None


def _b64(text: Any) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except Exception:
        raise ExtJsonError(f"invalid base64 {text!r}") from None


def _make_binary(data: bytes, subtype_text: Any) -> bytes | Binary:
    try:
        subtype = int(subtype_text, 16) if isinstance(subtype_text, str) else int(subtype_text)
    except (TypeError, ValueError):
        raise ExtJsonError(f"invalid binary subType {subtype_text!r}") from None
    if not 0 <= subtype <= 255:
        raise ExtJsonError(f"invalid binary subType {subtype_text!r}")
    return data if subtype == 0 else Binary(data, subtype)


def _binary_v2(value: Any) -> bytes | Binary:
    if isinstance(value, dict) and set(value) == {"base64", "subType"}:
        return _make_binary(_b64(value["base64"]), value["subType"])
    raise ExtJsonError(f"invalid $binary {value!r}")


def _uuid(value: Any) -> Binary:
    try:
        return Binary(uuid.UUID(value).bytes, 4)
    except Exception:
        raise ExtJsonError(f"invalid $uuid {value!r}") from None


def _timestamp(value: Any) -> Timestamp:
    if isinstance(value, dict) and set(value) == {"t", "i"}:
        try:
            return Timestamp(value["t"], value["i"])
        except Exception:
            pass
    raise ExtJsonError(f"invalid $timestamp {value!r}")


def _regex(pattern: Any, options: Any) -> Regex:
    if not isinstance(pattern, str) or not isinstance(options, str):
        raise ExtJsonError(f"invalid regular expression {pattern!r} / {options!r}")
    return Regex(pattern, "".join(sorted(options)))


def _regular_expression(value: Any) -> Regex:
    if isinstance(value, dict) and set(value) == {"pattern", "options"}:
        return _regex(value["pattern"], value["options"])
    raise ExtJsonError(f"invalid $regularExpression {value!r}")


def _code(value: Any) -> Code:
    if not isinstance(value, str):
        raise ExtJsonError(f"invalid $code {value!r}")
    return Code(value)


def _db_pointer(value: Any) -> DBRef:
    if isinstance(value, dict) and "$ref" in value and "$id" in value:
        oid = value["$id"]
        if isinstance(oid, dict):
            oid = _wrapper(oid)
        return DBRef(value["$ref"], oid)
    raise ExtJsonError(f"invalid $dbPointer {value!r}")


_SINGLE: dict[str, Callable[[Any], Any]] = {
    "$oid": _object_id,
    "$date": _parse_date,
    "$numberInt": _number_int,
    "$numberLong": _number_long,
    "$numberDouble": _number_double,
    "$numberDecimal": _number_decimal,
    "$binary": _binary_v2,
    "$uuid": _uuid,
    "$code": _code,
    "$timestamp": _timestamp,
    "$regularExpression": _regular_expression,
    "$dbPointer": _db_pointer,
    "$symbol": lambda v: v if isinstance(v, str) else _raise(f"invalid $symbol {v!r}"),
    "$minKey": lambda v: MinKey() if v == 1 else _raise(f"invalid $minKey {v!r}"),
    "$maxKey": lambda v: MaxKey() if v == 1 else _raise(f"invalid $maxKey {v!r}"),
    "$undefined": lambda v: None,
}


def _raise(message: str) -> Any:
    raise ExtJsonError(message)


def _wrapper(value: dict[str, Any]) -> Any:
    """The typed value a wrapper dict stands for, or ``_NOT`` when it is a plain document."""
    size = len(value)
    if size == 1:
        key = next(iter(value))
        handler = _SINGLE.get(key)
        if handler is not None:
            return handler(value[key])
        return _NOT
    if size == 2:
        if "$binary" in value and "$type" in value:
            return _make_binary(_b64(value["$binary"]), value["$type"])
        if "$code" in value and "$scope" in value:
            scope = value["$scope"]
            if not isinstance(scope, dict):
                raise ExtJsonError(f"invalid $scope {scope!r}")
            return Code(_code(value["$code"]), _convert_dict(scope))
        if "$regex" in value and "$options" in value and isinstance(value["$regex"], str):
            return _regex(value["$regex"], value["$options"])
    if "$ref" in value and "$id" in value and isinstance(value["$ref"], str):
        fields = _convert_dict(dict(value))
        database = fields.pop("$db", None)
        if database is not None and not isinstance(database, str):
            return _NOT
        return DBRef(fields.pop("$ref"), fields.pop("$id"), database, **fields)
    return _NOT


def _convert_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        if value and next(iter(value))[:1] == "$":
            converted = _wrapper(value)
            if converted is not _NOT:
                return converted
        return _convert_dict(value)
    if kind is list:
        return _convert_list(value)
    return value


def _convert_dict(document: dict[str, Any]) -> dict[str, Any]:
    """Replace the wrappers of a parsed document in place (plain sub-documents are walked in
    place too: only a wrapper's slot is assigned)."""
    for key, value in document.items():
        kind = type(value)
        if kind is dict:
            if value and next(iter(value))[:1] == "$":
                converted = _wrapper(value)
                if converted is not _NOT:
                    document[key] = converted
                    continue
            _convert_dict(value)
        elif kind is list:
            _convert_list(value)
    return document


def _convert_list(items: list[Any]) -> list[Any]:
    for index, value in enumerate(items):
        kind = type(value)
        if kind is dict or kind is list:
            items[index] = _convert_value(value)
    return items


def from_extended(value: Any) -> Any:
    """Turn parsed Extended JSON (plain, relaxed, canonical or legacy) into the value model.

    A top-level document stays a document even when it looks like a DBRef.
    """
    if type(value) is dict:
        return _convert_dict(value)
    return _convert_value(value)


#: Every digit as ``0``, every other byte as a space: a run of :data:`_LONG_RUN` shows a
#: number orjson may have read as a double.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
#: 19 digits: the shortest integer beyond 64 bits (orjson reads those as doubles, silently).
_LONG_RUN = b"0" * 19


def _as_bytes(data: bytearray | memoryview | str) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)


def _parse(data: bytes | bytearray | memoryview | str) -> Any:
    """orjson, and the standard library for what only it accepts (``NaN``, ``Infinity``) and
    for the integers orjson would turn into doubles (beyond 64 bits), which it reads exactly:
    writing them then fails with a clear error instead of storing another number."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
        raise
    raw = data if type(data) is bytes else _as_bytes(data)
    if _LONG_RUN in raw.translate(_DIGITS_ONLY):
        with contextlib.suppress(RecursionError):  # deeper than json's recursion allows
            return json.loads(data if isinstance(data, str) else raw.decode("utf-8"))
    return parsed


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse one Extended JSON text. Raises ``orjson.JSONDecodeError`` or :class:`ExtJsonError`."""
    return from_extended(_parse(data))


def loads_document(data: bytes | str) -> dict[str, Any]:
    """Parse one Extended JSON object (a document); anything else is an :class:`ExtJsonError`."""
    parsed = _parse(data)
    if type(parsed) is not dict:
        raise ExtJsonError(f"expected a JSON object, got {type(parsed).__name__}")
    needle = b'"$' if isinstance(data, bytes | bytearray | memoryview) else '"$'
    if needle in data:
        return _convert_dict(parsed)
    return parsed


def date_to_extended(value: date) -> str:
    """ISO form of a plain date (not a BSON type; used by the serializer)."""
    return value.isoformat()
