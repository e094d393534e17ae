"""CSV: what the fast paths must keep exact.

The writer renders each value once, as the column type its own value takes, and writes it again
only when its column ends up with another type; documents BSON would change go through BSON
first. The reader compiles its row reading per header. These tests pin the cases where those
shortcuts could part from the plain rules: fields whose type varies between documents, values
BSON changes, quoting, odd headers.
"""

from __future__ import annotations

import csv
import io
import math
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
from bson import SON, Int64, ObjectId
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.errors import UnsupportedValueError
from hermes.formats import csv as csv_format
from hermes.formats.base import BsonChunks
from hermes.storage.database import CODEC_OPTIONS
from tests.strategies import STORED_DOCUMENTS, same_bson

WHEN = datetime(2024, 5, 17, 8, 30, 1, 250000, tzinfo=timezone.utc)
OID = ObjectId("65f0a1b2c3d4e5f601234567")


#: How the writer stores a document it has to take through BSON: UUIDs as subtype 4.
_STORE = bson.CodecOptions(uuid_representation=bson.binary.UuidRepresentation.STANDARD)


def through_bson(document: Any) -> dict[str, Any]:
    return bson.decode(bson.encode(document, codec_options=_STORE), codec_options=CODEC_OPTIONS)


def written(documents: list[Any], delimiter: str = ",", **options: Any) -> bytes:
    stream = io.BytesIO()
    csv_format.CsvFormat(delimiter).write_stream(stream, documents, **options)
    return stream.getvalue()


def table(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


def read(data: bytes, **options: Any) -> list[dict[str, Any]]:
    batches = csv_format.CsvFormat().read_batches(io.BytesIO(data), "in.csv", **options)
    return [document for batch in batches for document in batch.documents]


def column(documents: list[dict[str, Any]], **options: Any) -> list[str]:
    """The first column of the file written for ``documents``: header, then one cell per row."""
    return [row[0] if row else "" for row in table(written(documents, **options))]


# ------------------------------------------------------------------------------------------
# A field whose type varies between documents
# ------------------------------------------------------------------------------------------


def test_int_int64_double_and_string_in_one_field_are_told_apart() -> None:
    documents = [{"n": 1}, {"n": Int64(1)}, {"n": 1.0}, {"n": "1"}, {"n": 2**40}]
    assert column(documents) == [
        "n.json()",
        "1",
        '{"$numberLong":"1"}',
        "1.0",
        '"1"',
        "1099511627776",
    ]
    assert same_bson(read(written(documents)), documents)


def test_integers_of_32_and_64_bits_in_one_field_keep_their_bson_types() -> None:
    documents = [{"n": 1}, {"n": 2**40}, {"n": -(2**31)}]
    assert column(documents) == ["n.json()", "1", "1099511627776", "-2147483648"]
    assert same_bson(read(written(documents)), documents)


def test_booleans_and_integers_in_one_field_stay_booleans_and_integers() -> None:
    documents = [{"f": True}, {"f": 1}, {"f": False}, {"f": 0}]
    assert column(documents) == ["f.json()", "true", "1", "false", "0"]
    back = read(written(documents))
    assert [type(d["f"]) for d in back] == [bool, int, bool, int]


def test_object_ids_mixed_with_their_hex_strings_stay_apart() -> None:
    documents = [{"ref": OID}, {"ref": str(OID)}]
    assert column(documents) == [
        "ref.json()",
        '{"$oid":"65f0a1b2c3d4e5f601234567"}',
        '"65f0a1b2c3d4e5f601234567"',
    ]
    assert same_bson(read(written(documents)), documents)


def test_every_natural_type_is_written_again_exactly_in_a_json_column() -> None:
    values = [
        "text",
        7,
        Int64(2**62),
        -0.0,
        math.inf,
        True,
        WHEN,
        OID,
        bson.Decimal128("1.10"),
        b"\x00\xff",
    ]
    documents = [{"v": value} for value in values] + [{"v": [1]}]
    for json_format in ("relaxed", "canonical"):
        data = written(documents, json_format=json_format)
        assert table(data)[0] == ["v.json()"]
        assert same_bson(read(data), documents)


def test_a_sub_document_kept_whole_is_rebuilt_from_its_nested_cells() -> None:
    documents = [
        {"m": {"a": 1, "b": {"c": WHEN, "d": [1, "x"]}, "e": "y"}},
        {"m": "flat"},
    ]
    assert column(documents) == [
        "m.json()",
        '{"a":1,"b":{"c":{"$date":"2024-05-17T08:30:01.250Z"},"d":[1,"x"]},"e":"y"}',
        '"flat"',
    ]
    assert same_bson(read(written(documents)), documents)


def test_a_formula_in_a_column_that_became_json_is_still_neutralized() -> None:
    documents = [{"f": -5}, {"f": "x"}]
    assert column(documents, neutralize_formulas=True) == ["f.json()", "'-5", '"x"']


def test_text_mode_writes_null_and_empty_strings_as_empty_cells() -> None:
    documents = [{"a": "x", "b": None}, {"a": "", "b": [1]}, {"a": 3, "b": None}]
    assert table(written(documents, typed=False, plain_values="text")) == [
        ["a", "b"],
        ["x", ""],
        ["", "[1]"],
        ["3", ""],
    ]


def test_one_empty_cell_is_a_quoted_row_not_a_blank_line() -> None:
    data = written([{"a": None}, {"a": "x"}], typed=False, plain_values="text")
    assert data == b'a\r\n""\r\nx\r\n'


# ------------------------------------------------------------------------------------------
# Documents BSON would change: written as the warehouse would store them
# ------------------------------------------------------------------------------------------


def test_naive_and_aware_dates_are_written_in_utc_as_bson_stores_them() -> None:
    documents = [
        {"t": datetime(2024, 5, 17, 8, 30, 1, 250999)},  # naive: UTC, microseconds cut
        {"t": datetime(2024, 5, 17, 10, 30, 1, 250000, tzinfo=timezone(timedelta(hours=2)))},
        {"t": WHEN},
    ]
    assert column(documents) == ["t.date()"] + ["2024-05-17T08:30:01.250Z"] * 3


def test_a_date_whose_utc_time_leaves_the_datetime_range_is_refused_with_its_row() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(UnsupportedValueError, match="Row 2 is not a BSON document"):
        written([{"t": WHEN}, {"t": early}])


def test_id_comes_first_as_in_a_stored_document() -> None:
    assert table(written([{"a": "x", "_id": 1}]))[0] == ["_id.int32()", "a.string()"]


@pytest.mark.parametrize(
    ("value", "header", "cell"),
    [
        ((1, 2), "v.json()", "[1,2]"),
        (Binary(b"\x01", 0), "v.binary(base64)", "AQ=="),
        (
            uuid.UUID(int=1),
            "v.json()",
            '{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAQ==","subType":"04"}}',
        ),
        (SON([("b", "x")]), "v.b.string()", "x"),
        (
            [uuid.UUID(int=1)],
            "v.json()",
            '[{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAQ==","subType":"04"}}]',
        ),
        ([(1,)], "v.json()", "[[1]]"),
    ],
)
def test_values_bson_changes_are_written_as_stored(value: Any, header: str, cell: str) -> None:
    assert table(written([{"v": value}])) == [[header], [cell]]


def test_values_bson_cannot_hold_are_refused_with_their_row() -> None:
    for bad in ({"a": 2**70}, {"a": [2**64]}, {"a": {"b\x00": 1}}, {"a": "\ud800"}):
        with pytest.raises(UnsupportedValueError, match="Row 2 is not a BSON document"):
            written([{"a": "fine"}, bad])


_SMALL_KEYS = st.sampled_from(["a", "b", "_id", "a.b", "$x", ""])
_AS_GIVEN = st.recursive(
    st.one_of(
        st.integers(-(2**65), 2**65),
        st.text(max_size=3),
        st.none(),
        st.floats(),
        st.booleans(),
        st.binary(max_size=3),
        st.binary(max_size=3).map(lambda b: Binary(b, 0)),
        st.uuids(),
        st.datetimes(
            timezones=st.none()
            | st.just(timezone.utc)
            | st.sampled_from([timezone(timedelta(hours=5)), timezone(timedelta(0), "GMT")])
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_SMALL_KEYS, children, max_size=3),
        st.dictionaries(_SMALL_KEYS, children, max_size=3).map(SON),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_SMALL_KEYS, _AS_GIVEN, max_size=4), max_size=4))
def test_documents_are_written_as_bson_would_store_them(documents: list[dict]) -> None:
    try:
        stored = [through_bson(document) for document in documents]
    except (bson.errors.BSONError, OverflowError, ValueError):
        with pytest.raises(UnsupportedValueError, match="is not a BSON document"):
            written(documents)
        return
    try:
        expected: bytes | str = written(stored)
    except UnsupportedValueError as exc:
        expected = str(exc)
    try:
        actual: bytes | str = written(documents)
    except UnsupportedValueError as exc:
        actual = str(exc)
    assert actual == expected


# ------------------------------------------------------------------------------------------
# Missing fields, quoting
# ------------------------------------------------------------------------------------------


def test_fields_missing_in_some_rows_leave_empty_cells_in_their_place() -> None:
    documents = [
        {"a": {"x": 1}, "z": "end"},
        {"a": {"y": WHEN}},
        {"z": "only"},
        {"a": {"x": 2, "y": WHEN}, "z": "all"},
    ]
    data = written(documents)
    assert table(data) == [
        ["a.x.int32()", "a.y.date()", "z.string()"],
        ["1", "", "end"],
        ["", "2024-05-17T08:30:01.250Z", ""],
        ["", "", "only"],
        ["2", "2024-05-17T08:30:01.250Z", "all"],
    ]
    assert read(data) == documents


_AWKWARD_TEXT = st.text(st.sampled_from(['"', ",", "\t", "\r", "\n", " ", "a", "é", "'", "="]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.none() | _AWKWARD_TEXT, st.none() | _AWKWARD_TEXT)),
    st.sampled_from([",", "\t"]),
)
def test_quoting_is_what_the_csv_module_writes(cells: list[tuple], delimiter: str) -> None:
    """Cells holding delimiters, quotes, CR or LF are quoted exactly as :mod:`csv` quotes."""
    documents = [{k: v for k, v in zip("ab", pair, strict=True) if v is not None} for pair in cells]
    data = written(documents, delimiter, typed=False, plain_values="text")
    rows = table(data, delimiter) if data else []
    again = io.StringIO(newline="")
    csv.writer(again, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    assert data.decode("utf-8") == again.getvalue()


# ------------------------------------------------------------------------------------------
# Bounded memory, whatever the number of shapes
# ------------------------------------------------------------------------------------------


def test_many_document_shapes_beyond_the_caches_write_the_same_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = [
        {k: (i if k == "n" else str(i)) for k in ("a", "b", "c", "n") if (i >> "abcn".index(k)) & 1}
        for i in range(64)
    ]
    expected = written(documents)
    monkeypatch.setattr(csv_format, "_MAX_SHAPES", 2)
    monkeypatch.setattr(csv_format, "_MAX_ORDERS", 1)
    monkeypatch.setattr(csv_format, "_SPILL_DOCUMENTS", 3)
    assert written(documents) == expected


def test_writer_memory_does_not_grow_with_the_document_count() -> None:
    def peak(count: int) -> int:
        documents = ({"_id": i, "text": "x" * 200, "n": {"v": i}} for i in range(count))
        tracemalloc.start()
        try:
            written_bytes = len(written(documents))  # type: ignore[arg-type]
            return tracemalloc.get_traced_memory()[1] - written_bytes
        finally:
            tracemalloc.stop()

    # The output itself goes to a BytesIO here; everything else is bounded by the spill batch.
    assert peak(60_000) < 2 * peak(6_000)


# ------------------------------------------------------------------------------------------
# Reading: per-header compiled rows
# ------------------------------------------------------------------------------------------


def test_a_sub_document_takes_the_place_of_its_first_filled_column() -> None:
    # a.x and a.y are not side by side: "a" comes where its first non-empty cell is.
    data = b"a.x,b,a.y\r\n,1,2\r\n3,4,\r\n5,6,7\r\n"
    documents = read(data)
    assert documents == [
        {"b": "1", "a": {"y": "2"}},
        {"a": {"x": "3"}, "b": "4"},
        {"a": {"x": "5", "y": "7"}, "b": "6"},
    ]
    assert [list(d) for d in documents] == [["b", "a"], ["a", "b"], ["a", "b"]]


def test_nested_columns_read_back_in_order_and_only_when_filled() -> None:
    data = (
        b"a.x.int32(),a.b.c.string(),a.b.d.date(),z.json()\r\n,,,1\r\n5,,2024-01-01T00:00:00Z,\r\n"
    )
    assert read(data) == [
        {"z": 1},
        {"a": {"x": 5, "b": {"d": datetime(2024, 1, 1, tzinfo=timezone.utc)}}},
    ]


def test_header_text_is_only_ever_a_key() -> None:
    name = 'x"] = 1; import os; g0["'
    data = ",".join(['"' + name.replace('"', '""') + '.string()"', "b.c.string()"]).encode()
    assert read(data + b"\r\nv,w\r\n") == [{name: "v", "b": {"c": "w"}}]


def test_dates_are_read_in_utc_to_the_millisecond() -> None:
    data = b"t.date()\r\n2024-05-17T10:30:01.250999+02:00\r\n2024-05-17T08:30:01.250\r\n"
    assert [d["t"] for d in read(data)] == [WHEN, WHEN]
    assert all(d["t"].tzinfo is timezone.utc for d in read(data))


def test_json_cells_read_escaped_wrappers_and_non_finite_numbers() -> None:
    data = b'v.json()\r\n"{""\\u0024oid"":""65f0a1b2c3d4e5f601234567""}"\r\n"[1,NaN]"\r\n'
    first, second = (d["v"] for d in read(data))
    assert first == OID
    assert second[0] == 1 and math.isnan(second[1])


def test_rows_of_ever_new_widths_without_a_header_all_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "_MAX_WIDTHS", 2)
    lines = [",".join(str(n) for n in range(width)) for width in (1, 2, 3, 1, 4, 2)]
    documents = read("\r\n".join(lines).encode(), skip_header=True)
    assert documents == [{str(n): str(n) for n in range(width)} for width in (1, 2, 3, 1, 4, 2)]


# ------------------------------------------------------------------------------------------
# An export's BSON, handed over in chunks
# ------------------------------------------------------------------------------------------


def chunks_of(documents: list[dict], options: Any, size: int = 2) -> BsonChunks:
    raws = [bson.encode(document) for document in documents]
    return BsonChunks(iter([raws[i : i + size] for i in range(0, len(raws), size)]), options)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STORED_DOCUMENTS, max_size=5))
def test_an_exports_bson_chunks_are_written_as_their_documents(documents: list[dict]) -> None:
    try:
        expected: bytes | str = written(documents)
    except UnsupportedValueError as exc:
        expected = str(exc)
    try:
        actual: bytes | str = written(chunks_of(documents, CODEC_OPTIONS))  # type: ignore[arg-type]
    except UnsupportedValueError as exc:
        actual = str(exc)
    assert actual == expected


def test_dates_before_1970_and_beyond_9999_from_bson_chunks() -> None:
    documents = [
        {
            "t": datetime(1, 1, 1, tzinfo=timezone.utc),
            "u": [datetime(1969, 12, 31, 23, 59, 59, 1000)],
        },
        {"t": WHEN, "u": [WHEN]},
    ]
    stored = [through_bson(d) for d in documents] + [
        through_bson({"t": DatetimeMS(2**62), "u": []})
    ]
    data = written(chunks_of(stored, CODEC_OPTIONS))  # type: ignore[arg-type]
    assert data == written(stored)
    assert table(data)[1] == [  # t is json(): a DatetimeMS shares the column
        '{"$date":{"$numberLong":"-62135596800000"}}',
        '[{"$date":{"$numberLong":"-999"}}]',
    ]


def test_bson_chunks_decoded_other_ways_are_written_as_they_decode() -> None:
    raw = bson.encode({"s": "ab"}).replace(b"ab\x00", b"\xffb\x00")  # not UTF-8
    lenient = CODEC_OPTIONS.with_options(unicode_decode_error_handler="replace")
    data = written(BsonChunks(iter([[raw]]), lenient))  # type: ignore[arg-type]
    assert table(data) == [["s.string()"], ["\ufffdb"]]
