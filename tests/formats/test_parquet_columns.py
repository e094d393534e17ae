"""Parquet: the whole-column conversions (a chunk of documents at a time on writing, a whole
Arrow array at a time on reading) keep every value exact at their edges."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bson
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson import Int64, ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.formats import parquet
from hermes.formats.base import BsonChunks, RecordError
from hermes.formats.parquet import ParquetFormat
from hermes.storage.database import CODEC_OPTIONS
from tests.strategies import DOCUMENTS, STORED_DOCUMENTS, same_bson

FORMAT = ParquetFormat()
UTC = timezone.utc
NAN, INF = float("nan"), float("inf")


def to_bytes(documents: Any, **options: Any) -> bytes:
    stream = io.BytesIO()
    FORMAT.write_stream(stream, documents, **options)
    return stream.getvalue()


def from_bytes(data: bytes, batch_size: int = 1000, **options: Any) -> list[dict[str, Any]]:
    batches = FORMAT.read_batches(io.BytesIO(data), "mem.parquet", batch_size=batch_size, **options)
    return [doc for batch in batches for doc in batch.documents]


def parquet_file(data: bytes) -> pq.ParquetFile:
    return pq.ParquetFile(io.BytesIO(data))


def cells(data: bytes, name: str) -> list[Any]:
    """A column as plain pyarrow reads it, without Hermes' metadata."""
    return parquet_file(data).read().column(name).to_pylist()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two documents converted at a time, so that a row group is made of several chunks."""
    monkeypatch.setattr(parquet, "CHUNK_ROWS", 2)


# ------------------------------------------------------------------------------------------
# Chunks of one row group
# ------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents=st.lists(DOCUMENTS, max_size=10),
    chunk_rows=st.integers(1, 3),
    row_group_size=st.integers(2, 7),
)
def test_any_documents_round_trip_when_row_groups_gather_several_chunks(
    documents: list[dict], chunk_rows: int, row_group_size: int
) -> None:
    # Types and fields change between the chunks of one row group: the rows already
    # converted are re-encoded in the row group's final schema.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parquet, "CHUNK_ROWS", chunk_rows)
        data = to_bytes(documents, row_group_size=row_group_size)
    assert same_bson(documents, from_bytes(data, batch_size=3))


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("later", [Int64(7), 2.5, "seven"], ids=["Int64", "double", "string"])
def test_an_int_column_that_changes_type_in_a_later_chunk_is_one_mixed_row_group(
    later: Any,
) -> None:
    documents = [{"n": 1}, {"n": 2}, {"n": 3}, {"n": later}]
    data = to_bytes(documents)
    assert parquet_file(data).num_row_groups == 1
    assert parquet_file(data).schema_arrow.field("n").type == pa.string()
    assert same_bson(documents, from_bytes(data))


@pytest.mark.usefixtures("small_chunks")
def test_a_column_null_in_the_first_chunk_takes_the_type_of_a_later_one() -> None:
    documents = [{"a": None}, {"a": None}, {"a": "x"}, {"a": None}]
    data = to_bytes(documents)
    assert parquet_file(data).schema_arrow.field("a").type == pa.string()
    assert from_bytes(data) == documents


@pytest.mark.usefixtures("small_chunks")
def test_a_field_first_seen_in_a_later_chunk_keeps_earlier_rows_without_it() -> None:
    documents = [{"a": 1}, {"a": 2}, {"a": 3, "b": True}]
    back = from_bytes(to_bytes(documents))
    assert back == documents
    assert [list(doc) for doc in back] == [["a"], ["a"], ["a", "b"]]


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("row_group_size", [1, 3, 5, 10_000])
def test_row_groups_have_their_size_whatever_the_chunks(row_group_size: int) -> None:
    data = to_bytes([{"n": n} for n in range(11)], row_group_size=row_group_size)
    metadata = parquet_file(data).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [min(row_group_size, 11 - start) for start in range(0, 11, row_group_size)]


# ------------------------------------------------------------------------------------------
# Value types at the edges of their fast paths
# ------------------------------------------------------------------------------------------


def test_object_ids_are_their_hex_strings_with_and_without_nulls() -> None:
    ids = [ObjectId() for _ in range(3)]
    documents = [{"all": oid, "some": oid if n != 1 else None} for n, oid in enumerate(ids)]
    data = to_bytes(documents)
    assert cells(data, "all") == [str(oid) for oid in ids]
    assert cells(data, "some") == [str(ids[0]), None, str(ids[2])]
    back = from_bytes(data)
    assert back == documents
    assert all(type(doc["all"]) is ObjectId for doc in back)


def test_object_ids_mixed_with_strings_are_extended_json_text() -> None:
    oid = ObjectId()
    documents = [{"id": oid}, {"id": str(oid)}, {"id": None}]
    data = to_bytes(documents)
    assert cells(data, "id") == [f'{{"$oid":"{oid}"}}', f'"{oid}"', None]
    back = from_bytes(data)
    assert back == documents
    assert [type(doc["id"]) for doc in back] == [ObjectId, str, type(None)]


def test_naive_and_aware_datetimes_are_stored_as_utc_instants_to_the_millisecond() -> None:
    plus_two = timezone(timedelta(hours=2))
    documents = [
        {"d": datetime(2024, 1, 1, 12, 0, 0, 123456)},  # naive: taken as UTC, as BSON does
        {"d": datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=plus_two)},
        {"d": None},
        {"d": datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
        {"d": datetime(1, 1, 1, tzinfo=UTC)},
        {"d": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
    ]
    data = to_bytes(documents)
    assert parquet_file(data).schema_arrow.field("d").type == pa.timestamp("ms", tz="UTC")
    back = [doc["d"] for doc in from_bytes(data)]
    assert back == [
        datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC),
        None,
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ]
    assert all(date.tzinfo is UTC for date in back if date is not None)


def test_a_column_of_nulls_only_is_a_null_column() -> None:
    documents = [{"a": 1, "none": None}, {"a": 2, "none": None}]
    data = to_bytes(documents)
    assert parquet_file(data).schema_arrow.field("none").type == pa.null()
    assert from_bytes(data) == documents


def test_lists_empty_in_a_whole_row_group_read_back_empty() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    documents = [
        {"dates": [when], "texts": [{"a": 1}, [1, "x"]], "docs": [{"k": when}]},
        {"dates": [], "texts": [], "docs": []},
        {"dates": None, "texts": None, "docs": None},
    ]
    data = to_bytes(documents, row_group_size=1)
    assert from_bytes(data) == documents


def test_embeddings_keep_nan_and_infinities_as_doubles(tmp_path: Path) -> None:
    documents = [{"embedding": [0.25, NAN, INF, -INF, -0.0]}, {"embedding": [1.0] * 5}]
    data = to_bytes(documents)
    assert parquet_file(data).schema_arrow.field("embedding").type == pa.list_(pa.float64())
    back = from_bytes(data)
    assert same_bson(documents, back)
    assert math.isnan(back[0]["embedding"][1]) and back[0]["embedding"][2] == INF
    path = tmp_path / "embeddings.parquet"
    path.write_bytes(data)
    query = f"SELECT isnan(embedding[2]), embedding[3] FROM read_parquet('{path}')"
    assert duckdb.sql(query).fetchall() == [(True, INF), (False, 1.0)]


@pytest.mark.parametrize(
    "value",
    [
        {"score": NAN},
        {"scores": [1.5, INF]},
        [{"x": None}, {"y": -INF}],
    ],
    ids=["nan-in-a-sub-document", "infinity-in-a-list", "infinity-beside-a-null"],
)
def test_a_non_finite_double_inside_a_mixed_value_is_not_taken_for_null(value: Any) -> None:
    # orjson writes NaN and infinities as null: such a value takes the exact encoder.
    documents = [{"v": value}, {"v": "text"}]
    data = to_bytes(documents)
    assert "numberDouble" in cells(data, "v")[0]
    assert same_bson(documents, from_bytes(data))


def test_dollar_signs_in_mixed_values_are_kept_as_they_are() -> None:
    documents = [
        {"v": {"$x": 1}},  # a $ key that is no wrapper
        {"v": "costs $5"},
        {"v": {"quote": 'say "$"'}},
        {"v": 1},
    ]
    data = to_bytes(documents)
    assert same_bson(documents, from_bytes(data))


# ------------------------------------------------------------------------------------------
# Reading a whole array, and falling back to one cell at a time
# ------------------------------------------------------------------------------------------


def _hermes_file(column: pa.Array, bson_type: str) -> bytes:
    meta = (
        b'{"format": "hermes-parquet", "version": 1, "columns": [{"name": "v", "bson": "'
        + bson_type.encode()
        + b'"}]}'
    )
    table = pa.table({"v": column}).replace_schema_metadata({b"hermes": meta})
    stream = io.BytesIO()
    pq.write_table(table, stream)
    return stream.getvalue()


@pytest.mark.parametrize(
    ("bad_cell", "why"),
    [("1,2", "two values"), ("[1", "half a value"), ("", "nothing")],
)
def test_a_text_cell_that_is_not_one_value_is_a_bad_row_of_its_own(bad_cell: str, why: str) -> None:
    data = _hermes_file(pa.array(["1", bad_cell, '{"$oid": "' + "a" * 24 + '"}', None]), "mixed")
    errors: list[RecordError] = []
    batches = list(FORMAT.read_batches(io.BytesIO(data), "crafted.parquet", on_error=errors.append))
    assert [doc for batch in batches for doc in batch.documents] == [
        {"v": 1},
        {"v": ObjectId("a" * 24)},
        {"v": None},
    ], why
    assert [loc for batch in batches for loc in batch.locations] == ["row 1", "row 3", "row 4"]
    assert [error.location for error in errors] == ["row 2"]


def test_nested_columns_read_in_batches_that_cut_row_groups() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    documents = [
        {
            "tags": None if n % 3 == 0 else [f"t{n}", None],
            "meta": None if n % 4 == 1 else {"at": when + timedelta(days=n), "n": Int64(n)},
            "mixed": n if n % 2 else {"n": str(n)},
        }
        for n in range(9)
    ]
    data = to_bytes(documents, row_group_size=7)
    for batch_size in (1, 2, 5):
        assert same_bson(documents, from_bytes(data, batch_size=batch_size))


def test_dates_outside_python_read_as_bad_rows() -> None:
    millis = pa.array([0, 2**62, None], pa.int64())
    data = _hermes_file(millis.cast(pa.timestamp("ms", tz="UTC")), "date")
    errors: list[RecordError] = []
    batches = FORMAT.read_batches(io.BytesIO(data), "crafted.parquet", on_error=errors.append)
    assert [doc for batch in batches for doc in batch.documents] == [
        {"v": datetime(1970, 1, 1, tzinfo=UTC)},
        {"v": None},
    ]
    assert [error.location for error in errors] == ["row 2"]


def test_the_raw_bson_of_each_value_survives_a_mixed_column() -> None:
    documents = [{"v": {"a": [1, 2.5, None, True]}}, {"v": [{"b": "é"}]}, {"v": Int64(3)}]
    back = from_bytes(to_bytes(documents))
    assert [bson.encode(doc) for doc in back] == [bson.encode(doc) for doc in documents]


# ------------------------------------------------------------------------------------------
# Documents still in BSON (an export hands them over so)
# ------------------------------------------------------------------------------------------


def bson_chunks(documents: list[dict[str, Any]], size: int) -> BsonChunks:
    raws = [bson.encode(doc) for doc in documents]
    return BsonChunks(iter([raws[i : i + size] for i in range(0, len(raws), size)]), CODEC_OPTIONS)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents=st.lists(STORED_DOCUMENTS, max_size=8),
    chunk_size=st.integers(1, 3),
    row_group_size=st.integers(1, 4),
)
def test_bson_chunks_round_trip_exactly(
    documents: list[dict], chunk_size: int, row_group_size: int
) -> None:
    data = to_bytes(bson_chunks(documents, chunk_size), row_group_size=row_group_size)
    assert same_bson(documents, from_bytes(data))


def test_bson_chunks_write_the_file_their_decoded_documents_write() -> None:
    # The writer decodes dates as naive UTC (cheaper to decode): the same instants, the same
    # Extended JSON, so the same file as from documents with aware dates.
    when = datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)
    old = datetime(1912, 6, 23, tzinfo=UTC)
    documents = [
        {"_id": ObjectId(), "at": when, "mixed": {"at": when, "old": old}, "dates": [old]},
        {"_id": ObjectId(), "at": old, "mixed": "text", "dates": []},
        {"_id": ObjectId(), "at": None, "mixed": [when], "dates": None},
    ]
    from_chunks = to_bytes(bson_chunks(documents, 2))
    assert parquet_file(from_chunks).read() == parquet_file(to_bytes(documents)).read()
    assert cells(from_chunks, "mixed")[0] == (
        '{"at":{"$date":"2024-05-01T12:30:00.250Z"},'
        '"old":{"$date":{"$numberLong":"-1815350400000"}}}'
    )
    back = from_bytes(from_chunks)
    assert same_bson(documents, back)
    assert back[0]["at"].tzinfo is UTC


def test_empty_bson_chunks_add_no_rows_and_no_keys_column() -> None:
    documents = [{"_id": 1, "a": "x"}, {"_id": 2, "a": "y"}]
    raws = [bson.encode(doc) for doc in documents]
    chunks = BsonChunks(iter([[], raws[:1], [], raws[1:], []]), CODEC_OPTIONS)
    data = to_bytes(chunks)
    assert parquet_file(data).schema_arrow.names == ["_id", "a"]
    assert from_bytes(data) == documents


def test_an_empty_row_group_is_skipped_and_rows_keep_their_numbers() -> None:
    table = pq.ParquetFile(io.BytesIO(to_bytes([{"n": 1}, {"n": 2}]))).read()
    stream = io.BytesIO()
    with pq.ParquetWriter(stream, table.schema) as writer:
        writer.write_table(table.slice(0, 0))
        writer.write_table(table)
    assert parquet_file(stream.getvalue()).metadata.row_group(0).num_rows == 0
    batches = list(FORMAT.read_batches(io.BytesIO(stream.getvalue()), "m.parquet"))
    assert [doc for batch in batches for doc in batch.documents] == [{"n": 1}, {"n": 2}]
    assert [loc for batch in batches for loc in batch.locations] == ["row 1", "row 2"]


def test_reading_never_imports_pandas(tmp_path: Path) -> None:
    # pyarrow imports pandas (0.2 CPU-s, 45 MB) on its first pa.array, pa.scalar or
    # to_numpy; the reader reads buffers instead, whatever the column types.
    when = datetime(2024, 1, 1, tzinfo=UTC)
    documents = [
        {
            "_id": ObjectId(),
            "n": n,
            "big": Int64(n),
            "at": None if n == 1 else when,
            "mixed": {"k": n} if n else "text",
            "embedding": [0.5, NAN] if n != 2 else None,
            "counts": [1, 2],
            "meta": {"at": when, "tags": ["a", None]} if n != 1 else None,
            "blob": b"\x00",
            "re": bson.Regex("^a"),
        }
        for n in range(3)
    ]
    path = tmp_path / "all.parquet"
    path.write_bytes(to_bytes(documents))
    script = (
        "import sys; from hermes.formats import iter_documents; "
        f"count = len(list(iter_documents({str(path)!r}))); "
        "print(count, 'pandas' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["3", "False"]
