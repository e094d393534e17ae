"""Parquet: exact BSON round trips through typed columns that DuckDB and Polars read as they are."""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import bson
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson import Decimal128, Int64, ObjectId
from bson.binary import Binary
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.errors import FormatError, UnsupportedValueError
from hermes.formats import iter_documents, read_documents, write_documents
from hermes.formats.base import RecordError
from hermes.formats.parquet import ParquetFormat
from hermes.sample import generate_corpus
from tests.strategies import DOCUMENTS, STORED_DOCUMENTS, as_stored, same_bson

FORMAT = ParquetFormat()
UTC = timezone.utc


def to_bytes(documents: Any, **options: Any) -> bytes:
    stream = io.BytesIO()
    FORMAT.write_stream(stream, documents, **options)
    return stream.getvalue()


def from_bytes(data: bytes, batch_size: int = 1000, **options: Any) -> list[dict[str, Any]]:
    batches = FORMAT.read_batches(io.BytesIO(data), "mem.parquet", batch_size=batch_size, **options)
    return [doc for batch in batches for doc in batch.documents]


def arrow_table(data: bytes) -> pa.Table:
    """The file as plain pyarrow sees it, without Hermes' metadata."""
    return pq.ParquetFile(io.BytesIO(data)).read()


def arrow_schema(data: bytes) -> pa.Schema:
    return pq.ParquetFile(io.BytesIO(data)).schema_arrow


def hermes_metadata(data: bytes) -> dict[str, Any]:
    return json.loads(arrow_schema(data).metadata[b"hermes"])


def column_entry(data: bytes, name: str) -> dict[str, Any]:
    return next(c for c in hermes_metadata(data)["columns"] if c["name"] == name)


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict[str, Any]]]:
    return generate_corpus(6)


@pytest.fixture(scope="module")
def corpus_files(
    corpus: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    paths = {}
    for name, documents in corpus.items():
        paths[name] = folder / f"{name}.parquet"
        write_documents(paths[name], documents, row_group_size=5)
    return paths


# ------------------------------------------------------------------------------------------
# Exact round trips
# ------------------------------------------------------------------------------------------

ROUND_TRIP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROUND_TRIP
@given(
    documents=st.lists(DOCUMENTS, max_size=8),
    row_group_size=st.integers(1, 4),
    batch_size=st.integers(1, 5),
    json_format=st.sampled_from(["relaxed", "canonical"]),
)
def test_any_documents_round_trip_exactly(
    documents: list[dict], row_group_size: int, batch_size: int, json_format: str
) -> None:
    # Small row groups: types and fields change between batches, so segments get merged.
    data = to_bytes(documents, row_group_size=row_group_size, json_format=json_format)
    assert same_bson(documents, from_bytes(data, batch_size))


@ROUND_TRIP
@given(documents=st.lists(STORED_DOCUMENTS, max_size=8), row_group_size=st.integers(1, 4))
def test_stored_documents_round_trip_exactly(documents: list[dict], row_group_size: int) -> None:
    data = to_bytes(documents, row_group_size=row_group_size)
    assert same_bson(documents, from_bytes(data, batch_size=3))


@pytest.mark.parametrize("suffix", [".parquet", ".parquet.gz", ".parquet.zst"])
def test_sample_corpus_round_trips_through_files(
    corpus: dict[str, list[dict]], tmp_path: Path, suffix: str
) -> None:
    for name, documents in corpus.items():
        path = tmp_path / f"{name}{suffix}"
        result = write_documents(path, documents, row_group_size=7)
        assert result.count == len(documents)
        assert same_bson(documents, list(iter_documents(path)))


def test_locations_are_one_based_rows_over_the_whole_file() -> None:
    data = to_bytes([{"n": n} for n in range(7)], row_group_size=3)
    batches = list(FORMAT.read_batches(io.BytesIO(data), "mem.parquet", batch_size=2))
    assert [loc for batch in batches for loc in batch.locations] == [
        f"row {n}" for n in range(1, 8)
    ]


def test_missing_field_and_explicit_null_stay_distinct() -> None:
    documents = [{"a": 1, "b": None}, {"a": 2}, {"b": None}]
    back = from_bytes(to_bytes(documents))
    assert back == documents
    assert [sorted(doc) for doc in back] == [["a", "b"], ["a"], ["b"]]


def test_each_document_keeps_its_own_key_order() -> None:
    documents = [{"a": 1, "b": 2}, {"b": 3, "a": 4}]
    back = from_bytes(to_bytes(documents))
    assert [list(doc) for doc in back] == [["a", "b"], ["b", "a"]]


def test_regular_documents_need_no_keys_column() -> None:
    data = to_bytes([{"a": 1, "b": "x"}, {"a": 2, "b": None}])
    assert arrow_schema(data).names == ["a", "b"]
    assert hermes_metadata(data)["keys_column"] is None


def test_a_field_named_like_the_keys_column_is_kept() -> None:
    documents = [{"__hermes_keys": ["x"], "a": 1}, {"a": 2}]
    data = to_bytes(documents)
    assert from_bytes(data) == documents
    assert hermes_metadata(data)["keys_column"] == "__hermes_keys_"


def test_documents_without_fields_keep_their_count() -> None:
    assert from_bytes(to_bytes([{}, {}, {}])) == [{}, {}, {}]


def test_no_documents_make_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    assert write_documents(path, []).count == 0
    assert list(iter_documents(path)) == []
    assert duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall() == [(0,)]


# ------------------------------------------------------------------------------------------
# Types: native where Arrow has them, portable otherwise, exact always
# ------------------------------------------------------------------------------------------


def test_native_types_become_native_arrow_columns() -> None:
    documents = [
        {
            "s": "text",
            "i": 1,
            "l": Int64(1),
            "f": 1.5,
            "b": True,
            "d": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
            "bin": b"\x00\x01",
            "list": [1.0, 2.0],
            "doc": {"x": 1, "y": "z"},
        }
    ]
    data = to_bytes(documents)
    schema = arrow_schema(data)
    assert {name: schema.field(name).type for name in schema.names} == {
        "s": pa.string(),
        "i": pa.int32(),
        "l": pa.int64(),
        "f": pa.float64(),
        "b": pa.bool_(),
        "d": pa.timestamp("ms", tz="UTC"),
        "bin": pa.binary(),
        "list": pa.list_(pa.float64()),
        "doc": pa.struct([("x", pa.int32()), ("y", pa.string())]),
    }
    back = from_bytes(data)
    assert same_bson(documents, back)
    assert type(back[0]["l"]) is Int64
    assert back[0]["d"].tzinfo is UTC


def test_bson_only_types_get_portable_columns_and_come_back_exact() -> None:
    oid = ObjectId()
    an_id = uuid.uuid4()
    documents = [
        {
            "oid": oid,
            "dec": Decimal128("1.10"),
            "uuid": Binary(an_id.bytes, 4),
            "md5": Binary(b"0123456789abcdef", 5),
            "re": bson.Regex("^a", "i"),
        }
    ]
    data = to_bytes(documents)
    assert arrow_table(data).to_pylist() == [
        {
            "oid": str(oid),
            "dec": "1.10",
            "uuid": str(an_id),
            "md5": b"0123456789abcdef",
            "re": '{"$regularExpression":{"pattern":"^a","options":"i"}}',
        }
    ]
    assert column_entry(data, "oid") == {"name": "oid", "bson": "objectId", "storage": "hex string"}
    assert column_entry(data, "md5") == {"name": "md5", "bson": "binary", "subtype": 5}
    assert same_bson(documents, from_bytes(data))


def test_metadata_records_the_bson_type_of_every_column_path(corpus_files: dict) -> None:
    data = corpus_files["embedded_chunks"].read_bytes()
    assert column_entry(data, "_id")["bson"] == "objectId"
    assert column_entry(data, "embedding") == {
        "name": "embedding",
        "bson": "array",
        "items": {"bson": "double"},
    }
    fields = column_entry(data, "metadata")["fields"]
    assert [(f["name"], f["bson"]) for f in fields] == [
        ("chunk_index", "int32"),
        ("chunk_size", "int32"),
        ("embedding_model_id", "string"),
    ]
    assert hermes_metadata(data)["version"] == 1


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ([1, "one"], "int32 and string"),
        ([1, Int64(1)], "int32 and Int64"),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], "struct key order differs"),
        ([{"a": 1}, {"a": 1, "b": 2}], "struct key set differs"),
        ([{}], "empty sub-document"),
        ([[1, "x"]], "list with mixed elements"),
        ([Binary(b"x", 5), Binary(b"x", 6)], "binary subtypes differ"),
    ],
)
def test_a_field_whose_type_varies_is_kept_as_extended_json(values: list, why: str) -> None:
    documents = [{"v": value} for value in values]
    data = to_bytes(documents)
    assert arrow_schema(data).field("v").type == pa.string(), why
    assert column_entry(data, "v")["bson"] == "mixed"
    assert same_bson(documents, from_bytes(data))


def test_a_mixed_struct_field_leaves_its_siblings_typed() -> None:
    documents = [{"m": {"a": 1, "b": "x"}}, {"m": {"a": 2, "b": 3}}]
    data = to_bytes(documents)
    assert arrow_schema(data).field("m").type == pa.struct([("a", pa.int32()), ("b", pa.string())])
    assert same_bson(documents, from_bytes(data))


def test_canonical_json_format_applies_to_extended_json_columns() -> None:
    documents = [{"v": 1}, {"v": "x"}]
    data = to_bytes(documents, json_format="canonical")
    assert arrow_table(data).column("v").to_pylist() == [
        '{"$numberInt":"1"}',
        '"x"',
    ]
    assert same_bson(documents, from_bytes(data))


def test_a_type_change_in_a_later_batch_widens_the_whole_column() -> None:
    documents = [{"v": n} for n in range(5)] + [{"v": "five"}]
    data = to_bytes(documents, row_group_size=2)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.num_row_groups == 3
    assert parquet.schema_arrow.field("v").type == pa.string()
    assert same_bson(documents, from_bytes(data))


def test_a_field_appearing_only_in_a_later_batch_is_kept() -> None:
    late = datetime(2024, 1, 1, tzinfo=UTC)
    documents = [{"a": n} for n in range(4)] + [{"a": 4, "late": late}]
    data = to_bytes(documents, row_group_size=2)
    assert arrow_schema(data).field("late").type == pa.timestamp("ms", tz="UTC")
    assert same_bson(documents, from_bytes(data))


def test_a_column_null_in_early_batches_takes_the_later_type() -> None:
    documents = [{"a": None}, {"a": None}, {"a": 1.5}]
    data = to_bytes(documents, row_group_size=2)
    assert arrow_schema(data).field("a").type == pa.float64()
    assert from_bytes(data) == documents


def test_documents_as_the_exporter_drains_them(corpus: dict) -> None:
    stored = [as_stored(doc) for doc in corpus["embedded_chunks"]]
    raw = [RawBSONDocument(bson.encode(doc)) for doc in stored]
    assert same_bson(stored, from_bytes(to_bytes(raw, row_group_size=4)))


def test_other_mappings_and_tuples_are_written_as_bson_would() -> None:
    documents = [{"son": SON([("b", 1), ("a", 2)]), "tuple": (1, 2), "id": uuid.UUID(int=7)}]
    back = from_bytes(to_bytes(documents))
    assert back == [
        {"son": {"b": 1, "a": 2}, "tuple": [1, 2], "id": Binary(uuid.UUID(int=7).bytes, 4)}
    ]


@pytest.mark.parametrize("value", [{1, 2}, 2**70], ids=["set", "int-over-64-bits"])
def test_values_bson_cannot_hold_are_refused(value: Any) -> None:
    with pytest.raises(UnsupportedValueError):
        to_bytes([{"v": value}])


def test_a_wrapper_shaped_sub_document_is_kept_as_a_struct() -> None:
    documents = [{"a": {"$oid": "not an id"}}]
    assert from_bytes(to_bytes(documents)) == documents


def test_a_wrapper_shaped_sub_document_in_a_mixed_column_is_refused() -> None:
    with pytest.raises(UnsupportedValueError):
        to_bytes([{"a": {"$oid": "not an id"}}, {"a": 1}])


# ------------------------------------------------------------------------------------------
# Options and temporary files
# ------------------------------------------------------------------------------------------


def test_compression_is_the_parquet_codec_zstd_by_default() -> None:
    def codec(data: bytes) -> str:
        return pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression

    assert codec(to_bytes([{"a": "x"}])) == "ZSTD"
    assert codec(to_bytes([{"a": "x"}], compression="snappy")) == "SNAPPY"
    assert codec(to_bytes([{"a": "x"}], compression="none")) == "UNCOMPRESSED"
    with pytest.raises(ValueError, match="Unknown Parquet compression"):
        to_bytes([{"a": "x"}], compression="zip")


def test_row_group_size_sets_the_rows_per_row_group() -> None:
    data = to_bytes([{"n": n} for n in range(25)], row_group_size=10)
    parquet = pq.ParquetFile(io.BytesIO(data))
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert sizes == [10, 10, 5]


def test_unknown_options_are_ignored() -> None:
    assert from_bytes(to_bytes([{"a": 1}], typed=True, delimiter=";")) == [{"a": 1}]


def _changing_then_failing() -> Iterator[dict[str, Any]]:
    yield {"a": 1}
    yield {"a": "x"}
    yield {"b": 2}
    raise RuntimeError("cursor lost")


@pytest.mark.parametrize("fail", [False, True])
def test_segments_are_removed_on_success_and_on_error(tmp_path: Path, fail: bool) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    documents = _changing_then_failing() if fail else iter([{"a": 1}, {"a": "x"}, {"b": 2}])
    if fail:
        with pytest.raises(RuntimeError, match="cursor lost"):
            to_bytes(documents, row_group_size=1, temp_dir=spool)
    else:
        assert len(from_bytes(to_bytes(documents, row_group_size=1, temp_dir=spool))) == 3
    assert list(spool.iterdir()) == []


# ------------------------------------------------------------------------------------------
# Other tools read our files as ordinary columns
# ------------------------------------------------------------------------------------------


def test_duckdb_reads_hex_ids_structs_and_embeddings(corpus: dict, corpus_files: dict) -> None:
    path = corpus_files["embedded_chunks"]
    rows = duckdb.sql(
        "select _id, typeof(_id), typeof(metadata), metadata.chunk_index, typeof(embedding), "
        f"embedding from read_parquet('{path}')"
    ).fetchall()
    documents = corpus["embedded_chunks"]
    assert [row[0] for row in rows] == [str(doc["_id"]) for doc in documents]
    assert {row[1] for row in rows} == {"VARCHAR"}
    assert rows[0][2].startswith("STRUCT(chunk_index INTEGER")
    assert [row[3] for row in rows] == [doc["metadata"]["chunk_index"] for doc in documents]
    assert {row[4] for row in rows} == {"DOUBLE[]"}
    assert [row[5] for row in rows] == [doc["embedding"] for doc in documents]


def test_duckdb_reads_dates_as_timestamps_and_mixed_fields_as_json(
    corpus: dict, corpus_files: dict
) -> None:
    path = corpus_files["raw_documents"]
    rows = duckdb.sql(
        f"select created_at, typeof(created_at), content from read_parquet('{path}')"
    ).fetchall()
    documents = corpus["raw_documents"]
    assert [row[0] for row in rows] == [doc["created_at"] for doc in documents]
    assert {row[1] for row in rows} == {"TIMESTAMP WITH TIME ZONE"}
    # The content sub-documents differ by platform: one JSON text column, plain JSON inside.
    assert [json.loads(row[2]) for row in rows] == [doc["content"] for doc in documents]


def test_polars_reads_the_same_columns(corpus: dict, corpus_files: dict) -> None:
    chunks = pl.read_parquet(corpus_files["embedded_chunks"])
    assert chunks.schema["_id"] == pl.String
    assert chunks.schema["embedding"] == pl.List(pl.Float64)
    assert chunks.schema["metadata"] == pl.Struct(
        {"chunk_index": pl.Int32, "chunk_size": pl.Int32, "embedding_model_id": pl.String}
    )
    assert chunks["embedding"].to_list() == [d["embedding"] for d in corpus["embedded_chunks"]]
    raw = pl.read_parquet(corpus_files["raw_documents"])
    assert raw.schema["created_at"] == pl.Datetime("ms", "UTC")
    assert raw.schema["content"] == pl.String
    assert raw["created_at"].to_list() == [d["created_at"] for d in corpus["raw_documents"]]


def test_duckdb_sees_a_type_change_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.parquet"
    write_documents(path, [{"v": 1}, {"v": 2}, {"v": "x"}], row_group_size=2)
    assert duckdb.sql(f"select v from read_parquet('{path}')").fetchall() == [
        ("1",),
        ("2",),
        ('"x"',),
    ]


# ------------------------------------------------------------------------------------------
# Parquet written by other tools: the natural mapping
# ------------------------------------------------------------------------------------------


def test_reads_parquet_written_by_pandas(tmp_path: Path) -> None:
    path = tmp_path / "pandas.parquet"
    frame = pd.DataFrame(
        {
            "i": [1, 2**40],
            "f": [1.5, float("nan")],
            "s": ["a", None],
            "b": [True, False],
            "t": pd.to_datetime(["2024-01-01 10:00:00.123456", None]),
            "tz": pd.to_datetime(
                ["2024-01-01 10:00:00+02:00", "2024-06-01 00:00:00+00:00"], utc=True
            ),
        }
    )
    frame.to_parquet(path)
    back = list(iter_documents(path))
    assert back[0] == {
        "i": 1,
        "f": 1.5,
        "s": "a",
        "b": True,
        "t": datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=UTC),
        "tz": datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
    }
    # pandas stores NaN and NaT as Parquet nulls.
    assert back[1] == {
        "i": 2**40,
        "f": None,
        "s": None,
        "b": False,
        "t": None,
        "tz": datetime(2024, 6, 1, tzinfo=UTC),
    }
    bson.encode(back[1])  # every value is one BSON holds


def test_reads_parquet_written_by_pyarrow_with_nested_and_decimal_types(tmp_path: Path) -> None:
    path = tmp_path / "pyarrow.parquet"
    table = pa.table(
        {
            "dec": pa.array([Decimal("1.23")], pa.decimal128(10, 2)),
            "ints": pa.array([[1, 2]], pa.list_(pa.int64())),
            "doc": pa.array([{"x": 1, "when": datetime(2024, 1, 1)}]),
            "map": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
            "day": pa.array([19723], pa.date32()),
            "cat": pa.array(["a"]).dictionary_encode(),
            "big": pa.array(["x" * 3], pa.large_string()),
        }
    )
    pq.write_table(table, path)
    assert list(iter_documents(path)) == [
        {
            "dec": Decimal128("1.23"),
            "ints": [1, 2],
            "doc": {"x": 1, "when": datetime(2024, 1, 1, tzinfo=UTC)},
            "map": {"k": 1},
            "day": datetime(2024, 1, 1, tzinfo=UTC),
            "cat": "a",
            "big": "xxx",
        }
    ]


def test_reads_parquet_written_by_duckdb_and_polars(tmp_path: Path) -> None:
    duck = tmp_path / "duck.parquet"
    duckdb.sql(
        "copy (select 42::bigint as n, 'x' as s, timestamp '2024-01-01 00:00:01' as t) "
        f"to '{duck}' (format parquet)"
    )
    expected = {"n": 42, "s": "x", "t": datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert list(iter_documents(duck)) == [expected]
    polars_file = tmp_path / "polars.parquet"
    pl.DataFrame({"n": [42], "s": ["x"], "t": [datetime(2024, 1, 1, 0, 0, 1)]}).write_parquet(
        polars_file
    )
    assert list(iter_documents(polars_file)) == [expected]


def test_an_unreadable_value_in_a_foreign_file_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "uint.parquet"
    pq.write_table(pa.table({"n": pa.array([1, 2**64 - 1, 3], pa.uint64())}), path)
    errors: list[RecordError] = []
    documents = list(iter_documents(path, on_error=errors.append))
    assert documents == [{"n": 1}, {"n": 3}]
    assert [error.location for error in errors] == ["row 2"]


# ------------------------------------------------------------------------------------------
# Bad files
# ------------------------------------------------------------------------------------------


def test_a_json_file_named_parquet_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    with pytest.raises(FormatError, match="not a Parquet file") as caught:
        list(iter_documents(path))
    assert caught.value.path == str(path)


@pytest.mark.parametrize("suffix", [".parquet", ".parquet.gz"])
def test_a_truncated_file_is_a_format_error(tmp_path: Path, suffix: str) -> None:
    data = to_bytes([{"n": n, "s": "text" * 20} for n in range(200)])
    cut = data[: len(data) // 2]
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(gzip.compress(cut) if suffix.endswith(".gz") else cut)
    with pytest.raises(FormatError, match="not a Parquet file, or truncated") as caught:
        list(iter_documents(path))
    assert caught.value.path == str(path)


def _with_metadata(tmp_path: Path, table: pa.Table, metadata: bytes) -> Path:
    path = tmp_path / "crafted.parquet"
    pq.write_table(table.replace_schema_metadata({b"hermes": metadata}), path)
    return path


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (b"{not json", "corrupt Hermes metadata"),
        (b'{"format": "hermes-parquet", "version": 1}', "corrupt Hermes metadata"),
        (
            b'{"format": "hermes-parquet", "version": 1, "columns": '
            b'[{"name": "gone", "bson": "string"}]}',
            "no column 'gone'",
        ),
        (
            b'{"format": "hermes-parquet", "version": 1, "columns": '
            b'[{"name": "a", "bson": "quaternion"}]}',
            "unknown BSON type",
        ),
        (b'{"format": "hermes-parquet", "version": 99, "columns": []}', "newer Hermes"),
    ],
)
def test_corrupt_metadata_is_a_format_error(tmp_path: Path, metadata: bytes, message: str) -> None:
    path = _with_metadata(tmp_path, pa.table({"a": ["x"]}), metadata)
    with pytest.raises(FormatError, match=message) as caught:
        list(iter_documents(path))
    assert caught.value.path == str(path)


def test_a_bad_cell_is_a_bad_record_the_reader_can_skip(tmp_path: Path) -> None:
    good = ObjectId()
    table = pa.table({"_id": [str(good), "not-hex", str(good)]})
    meta = b'{"format": "hermes-parquet", "version": 1, "columns": [{"name": "_id", "bson": "objectId"}]}'
    path = _with_metadata(tmp_path, table, meta)
    errors: list[RecordError] = []
    batches = list(read_documents(path, on_error=errors.append))
    assert [loc for batch in batches for loc in batch.locations] == ["row 1", "row 3"]
    assert [doc for batch in batches for doc in batch.documents] == [{"_id": good}] * 2
    assert [(e.location, "_id" in e.reason) for e in errors] == [("row 2", True)]
    with pytest.raises(FormatError, match="row 2"):
        list(iter_documents(path))


class _OneWayStream(io.RawIOBase):
    """A stream that can only be read forward, like a decompressor."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_read() -> None:
    documents = [{"n": n} for n in range(5)]
    stream = io.BufferedReader(_OneWayStream(to_bytes(documents)))
    assert not stream.seekable()
    batches = FORMAT.read_batches(stream, "stream.parquet", batch_size=2)
    assert [doc for batch in batches for doc in batch.documents] == documents
