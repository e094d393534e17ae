"""Extended JSON v2: every BSON type's exact text in both modes, lossless round trips, and the
files other MongoDB tools write (mongoexport, ``bson.json_util``, legacy forms)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings

from hermes.errors import UnsupportedValueError
from hermes.formats import extjson
from tests.strategies import DOCUMENTS, as_stored, same_bson

UTC = timezone.utc
OID = ObjectId("5f1e2d3c4b5a697887960a1b")
UUID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def _compact(text: str) -> bytes:
    """The compact form of a readable JSON text (key order kept)."""
    return orjson.dumps(orjson.loads(text))


# value, relaxed text, canonical text -- as the Extended JSON v2 specification writes them
# (plus Hermes' one refinement: an Int64 that fits 32 bits stays {"$numberLong": ...}).
TYPES = {
    "objectid": (
        OID,
        '{"$oid": "5f1e2d3c4b5a697887960a1b"}',
        '{"$oid": "5f1e2d3c4b5a697887960a1b"}',
    ),
    "string": ("Zoë 数据 🚀", '"Zoë 数据 🚀"', '"Zoë 数据 🚀"'),
    "int32": (42, "42", '{"$numberInt": "42"}'),
    "int32 negative": (-(2**31), "-2147483648", '{"$numberInt": "-2147483648"}'),
    "int64 small": (Int64(5), '{"$numberLong": "5"}', '{"$numberLong": "5"}'),
    "int64 large": (Int64(2**62), "4611686018427387904", '{"$numberLong": "4611686018427387904"}'),
    "double": (1.5, "1.5", '{"$numberDouble": "1.5"}'),
    "double integral": (10.0, "10.0", '{"$numberDouble": "10.0"}'),
    "double -0.0": (-0.0, "-0.0", '{"$numberDouble": "-0.0"}'),
    "double NaN": (float("nan"), '{"$numberDouble": "NaN"}', '{"$numberDouble": "NaN"}'),
    "double +inf": (float("inf"), '{"$numberDouble": "Infinity"}', '{"$numberDouble": "Infinity"}'),
    "double -inf": (
        float("-inf"),
        '{"$numberDouble": "-Infinity"}',
        '{"$numberDouble": "-Infinity"}',
    ),
    "decimal128": (Decimal128("1.10"), '{"$numberDecimal": "1.10"}', '{"$numberDecimal": "1.10"}'),
    "boolean": (True, "true", "true"),
    "null": (None, "null", "null"),
    "date": (
        datetime(2024, 2, 29, 12, 30, 45, 123000, tzinfo=UTC),
        '{"$date": "2024-02-29T12:30:45.123Z"}',
        '{"$date": {"$numberLong": "1709209845123"}}',
    ),
    "date epoch": (
        datetime(1970, 1, 1, tzinfo=UTC),
        '{"$date": "1970-01-01T00:00:00.000Z"}',
        '{"$date": {"$numberLong": "0"}}',
    ),
    "date before 1970": (
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        '{"$date": {"$numberLong": "-1"}}',
        '{"$date": {"$numberLong": "-1"}}',
    ),
    "date year 1": (
        datetime(1, 1, 1, tzinfo=UTC),
        '{"$date": {"$numberLong": "-62135596800000"}}',
        '{"$date": {"$numberLong": "-62135596800000"}}',
    ),
    "date last millisecond of 9999": (
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        '{"$date": "9999-12-31T23:59:59.999Z"}',
        '{"$date": {"$numberLong": "253402300799999"}}',
    ),
    "date after 9999": (
        DatetimeMS(253402300800000),
        '{"$date": {"$numberLong": "253402300800000"}}',
        '{"$date": {"$numberLong": "253402300800000"}}',
    ),
    "binary generic": (
        b"\x01\x02",
        '{"$binary": {"base64": "AQI=", "subType": "00"}}',
        '{"$binary": {"base64": "AQI=", "subType": "00"}}',
    ),
    "binary function": (
        Binary(b"\x01\x02", 1),
        '{"$binary": {"base64": "AQI=", "subType": "01"}}',
        '{"$binary": {"base64": "AQI=", "subType": "01"}}',
    ),
    "binary md5": (
        Binary(b"\xff" * 16, 5),
        '{"$binary": {"base64": "/////////////////////w==", "subType": "05"}}',
        '{"$binary": {"base64": "/////////////////////w==", "subType": "05"}}',
    ),
    "binary user defined": (
        Binary(b"x", 0x80),
        '{"$binary": {"base64": "eA==", "subType": "80"}}',
        '{"$binary": {"base64": "eA==", "subType": "80"}}',
    ),
    "binary uuid 04": (
        Binary(UUID.bytes, 4),
        '{"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}}',
        '{"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}}',
    ),
    "regex": (
        Regex("^a.b$", "mi"),
        '{"$regularExpression": {"pattern": "^a.b$", "options": "im"}}',
        '{"$regularExpression": {"pattern": "^a.b$", "options": "im"}}',
    ),
    "timestamp": (
        Timestamp(1700000000, 7),
        '{"$timestamp": {"t": 1700000000, "i": 7}}',
        '{"$timestamp": {"t": 1700000000, "i": 7}}',
    ),
    "code": (Code("function() {}"), '{"$code": "function() {}"}', '{"$code": "function() {}"}'),
    "code with scope": (
        Code("return x", {"x": 1}),
        '{"$code": "return x", "$scope": {"x": 1}}',
        '{"$code": "return x", "$scope": {"x": {"$numberInt": "1"}}}',
    ),
    "minkey": (MinKey(), '{"$minKey": 1}', '{"$minKey": 1}'),
    "maxkey": (MaxKey(), '{"$maxKey": 1}', '{"$maxKey": 1}'),
    "dbref": (
        DBRef("authors", OID),
        '{"$ref": "authors", "$id": {"$oid": "5f1e2d3c4b5a697887960a1b"}}',
        '{"$ref": "authors", "$id": {"$oid": "5f1e2d3c4b5a697887960a1b"}}',
    ),
    "dbref with database": (
        DBRef("authors", 3, "warehouse"),
        '{"$ref": "authors", "$id": 3, "$db": "warehouse"}',
        '{"$ref": "authors", "$id": {"$numberInt": "3"}, "$db": "warehouse"}',
    ),
    "array": ([1, "a"], '[1, "a"]', '[{"$numberInt": "1"}, "a"]'),
    "sub-document": ({"n": 2.5}, '{"n": 2.5}', '{"n": {"$numberDouble": "2.5"}}'),
}


@pytest.mark.parametrize(("value", "relaxed", "canonical"), TYPES.values(), ids=TYPES.keys())
def test_each_bson_type_has_its_exact_text_in_both_modes(value, relaxed, canonical):
    document = {"v": value}
    assert extjson.dumps(document) == _compact(f'{{"v": {relaxed}}}')
    assert extjson.dumps(document, canonical=True) == _compact(f'{{"v": {canonical}}}')


@pytest.mark.parametrize(("value", "relaxed", "canonical"), TYPES.values(), ids=TYPES.keys())
def test_each_bson_type_reads_back_exactly_from_both_texts(value, relaxed, canonical):
    stored = as_stored({"v": value})
    for text in (relaxed, canonical):
        assert same_bson(extjson.loads_document(f'{{"v": {text}}}'), stored)


@settings(max_examples=150, deadline=None)
@given(DOCUMENTS)
def test_any_document_round_trips_in_relaxed_mode(document):
    assert same_bson(extjson.loads_document(extjson.dumps(document)), document)


@settings(max_examples=150, deadline=None)
@given(DOCUMENTS)
def test_any_document_round_trips_in_canonical_mode(document):
    assert same_bson(extjson.loads_document(extjson.dumps(document, canonical=True)), document)


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_canonical_output_of_pymongo_json_util_reads_back_exactly(document):
    text = json_util.dumps(document, json_options=json_util.CANONICAL_JSON_OPTIONS)
    assert same_bson(extjson.loads_document(text), document)


def test_relaxed_output_of_pymongo_json_util_reads_back():
    document = as_stored(
        {
            "_id": OID,
            "when": datetime(2024, 1, 1, 8, 0, 0, 250000, tzinfo=UTC),
            "before_epoch": datetime(1960, 5, 1, tzinfo=UTC),
            "big": Int64(2**40),
            "ratio": 0.25,
            "nan": float("nan"),
            "price": Decimal128("9.99"),
            "blob": Binary(b"\x00\x01", 0x80),
            "uuid": Binary(UUID.bytes, 4),
            "pattern": Regex("^x", "i"),
            "ts": Timestamp(5, 6),
            "ref": DBRef("authors", OID),
            "bounds": [MinKey(), MaxKey()],
        }
    )
    text = json_util.dumps(document, json_options=json_util.RELAXED_JSON_OPTIONS)
    assert same_bson(extjson.loads_document(text), document)


def test_mongoexport_relaxed_and_canonical_lines_read_back_as_the_same_document():
    relaxed = (
        '{"_id":{"$oid":"5f1e2d3c4b5a697887960a1b"},"views":{"$numberLong":"12"},'
        '"score":1.5,"count":3,"created_at":{"$date":"2024-01-01T00:00:00Z"},'
        '"uuid":{"$binary":{"base64":"ABEiM0RVZneImaq7zN3u/w==","subType":"04"}}}'
    )
    canonical = (
        '{"_id":{"$oid":"5f1e2d3c4b5a697887960a1b"},"views":{"$numberLong":"12"},'
        '"score":{"$numberDouble":"1.5"},"count":{"$numberInt":"3"},'
        '"created_at":{"$date":{"$numberLong":"1704067200000"}},'
        '"uuid":{"$binary":{"base64":"ABEiM0RVZneImaq7zN3u/w==","subType":"04"}}}'
    )
    expected = as_stored(
        {
            "_id": OID,
            "views": Int64(12),
            "score": 1.5,
            "count": 3,
            "created_at": datetime(2024, 1, 1, tzinfo=UTC),
            "uuid": Binary(UUID.bytes, 4),
        }
    )
    assert same_bson(extjson.loads_document(relaxed), expected)
    assert same_bson(extjson.loads_document(canonical), expected)


LEGACY = {
    "$date as milliseconds": ('{"$date": 1704067200000}', datetime(2024, 1, 1, tzinfo=UTC)),
    "$date before 1970 as milliseconds": (
        '{"$date": -86400000}',
        datetime(1969, 12, 31, tzinfo=UTC),
    ),
    "$date with an offset": (
        '{"$date": "2024-01-01T01:00:00.000+01:00"}',
        datetime(2024, 1, 1, tzinfo=UTC),
    ),
    "$binary with $type": ('{"$binary": "AQI=", "$type": "80"}', Binary(b"\x01\x02", 0x80)),
    "$binary with $type 00": ('{"$binary": "AQI=", "$type": "00"}', b"\x01\x02"),
    "$uuid": ('{"$uuid": "00112233-4455-6677-8899-aabbccddeeff"}', Binary(UUID.bytes, 4)),
    "$regex with $options": ('{"$regex": "^a", "$options": "mi"}', Regex("^a", "im")),
    "$numberLong": ('{"$numberLong": "-9223372036854775808"}', Int64(-(2**63))),
}


@pytest.mark.parametrize(("text", "value"), LEGACY.values(), ids=LEGACY.keys())
def test_legacy_and_shell_forms_are_read(text, value):
    assert same_bson(extjson.loads_document(f'{{"v": {text}}}'), as_stored({"v": value}))


def test_pymongo_legacy_output_reads_back():
    document = as_stored(
        {
            "when": datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
            "blob": Binary(b"\x01\x02\x03", 0x80),
            "pattern": Regex("^x", "ims"),
        }
    )
    text = json_util.dumps(document, json_options=json_util.LEGACY_JSON_OPTIONS)
    assert '"$type"' in text and '"$regex"' in text  # really the legacy forms
    assert same_bson(extjson.loads_document(text), document)


@pytest.mark.parametrize("canonical", [False, True], ids=["relaxed", "canonical"])
@pytest.mark.parametrize(
    "document",
    [
        {"a": {"$oid": "5f1e2d3c4b5a697887960a1b"}},
        {"a": {"$date": "2024-01-01T00:00:00Z"}},
        {"a": [{"$numberLong": "1"}]},
        {"a": {"b": {"$regex": "x", "$options": ""}}},
    ],
    ids=["$oid", "$date", "in an array", "nested $regex/$options"],
)
def test_a_plain_sub_document_that_looks_like_a_type_wrapper_is_refused(document, canonical):
    """It would read back as an ObjectId, a date...: refusing beats changing the data."""
    with pytest.raises(UnsupportedValueError, match="cannot be written as Extended JSON"):
        extjson.dumps(document, canonical=canonical)


def test_a_dollar_key_that_is_not_a_wrapper_is_kept():
    document = {"a": {"$oid": "x", "other": 1}, "$set": 1}
    assert extjson.loads_document(extjson.dumps(document)) == document


def test_a_top_level_dbref_shaped_document_stays_a_document_and_a_nested_one_is_a_dbref():
    text = '{"$ref": "authors", "$id": {"$oid": "5f1e2d3c4b5a697887960a1b"}, "nested": %s}'
    inner = '{"$ref": "authors", "$id": {"$oid": "5f1e2d3c4b5a697887960a1b"}}'
    document = extjson.loads_document(text % inner)
    assert type(document) is dict
    assert document["$id"] == OID
    assert document["nested"] == DBRef("authors", OID)


def test_invalid_extended_json_values_are_errors():
    for text in (
        '{"v": {"$oid": "not hex"}}',
        '{"v": {"$numberInt": "2147483648"}}',
        '{"v": {"$date": "yesterday"}}',
        '{"v": {"$binary": {"base64": "!!", "subType": "00"}}}',
    ):
        with pytest.raises(extjson.ExtJsonError):
            extjson.loads_document(text)


@pytest.mark.parametrize(
    "number", [2**64, -(2**63) - 1, 10**29 + 7, -(10**40), 2**63 - 1, 2**64 - 1, -(2**63)]
)
def test_integers_of_any_size_are_read_exactly_never_as_doubles(number):
    text = f'{{"n": {number}, "list": [{number}], "s": "{number}", "f": 1.5}}'
    assert extjson.loads_document(text) == {
        "n": number,
        "list": [number],
        "s": str(number),
        "f": 1.5,
    }
    assert type(extjson.loads(text.encode())["n"]) is int


def test_dates_keep_millisecond_precision_and_utc():
    document = {"when": datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))}
    back = extjson.loads_document(extjson.dumps(document))
    assert back["when"] == datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
