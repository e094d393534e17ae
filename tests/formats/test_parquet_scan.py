"""An export's documents, still in BSON, become Parquet columns in C (``_bsonarrow``) without a
Python object per value: the file is byte for byte the one the Python conversion writes from the
decoded documents, and whatever the scanner does not reproduce exactly goes the Python way."""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from typing import Any

import bson
import pyarrow.parquet as pq
import pytest
from bson import Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.formats import parquet
from hermes.formats.base import BsonChunks
from hermes.storage.database import CODEC_OPTIONS
from tests.formats.bson_writes import encoded, written, written_in_python
from tests.strategies import COLLECTIONS, STORED_DOCUMENTS, same_bson

needs_c = pytest.mark.skipif(
    not parquet.SCANS_BSON,
    reason="hermes.formats._bsonarrow is not built (installed without a C compiler): every "
    "chunk is converted in Python, so there is no C output to compare",
)
MODES = pytest.mark.parametrize("json_format", ["relaxed", "canonical"])


def write(chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    """The Parquet bytes written from BSON chunks, or the error it raises."""
    return written("parquet", chunks, **options)


def python_write(chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    """The reference: the same chunks decoded and converted in Python."""
    return written_in_python(parquet, "_bsonarrow", "parquet", chunks, **options)


def assert_same_file(chunks: list[list[bytes]], **options: Any) -> bytes:
    written = write(chunks, **options)
    assert written == python_write(chunks, **options)
    return written[1] if written[0] == "ok" else b""


def scan(documents: list[dict[str, Any]]) -> Any:
    return parquet._bsonarrow.scan([bson.encode(document) for document in documents])


@needs_c
@MODES
@settings(max_examples=120, deadline=None)
@given(documents=COLLECTIONS, chunk=st.integers(1, 5), row_group=st.integers(1, 8))
def test_collections_are_written_byte_for_byte_as_the_python_conversion(
    json_format, documents, chunk, row_group
):
    assert_same_file(encoded(documents, chunk), json_format=json_format, row_group_size=row_group)


@needs_c
@MODES
@settings(max_examples=80, deadline=None)
@given(documents=st.lists(STORED_DOCUMENTS, max_size=6), chunk=st.integers(1, 4))
def test_any_stored_documents_are_written_as_the_python_conversion(json_format, documents, chunk):
    assert_same_file(encoded(documents, chunk), json_format=json_format, row_group_size=3)


@needs_c
def test_the_documents_read_back_exactly():
    documents = [
        {
            "_id": ObjectId(),
            "title": "café 学习",
            "views": Int64(7),
            "score": 0.5,
            "at": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
            "tags": ["a", None, "b"],
            "meta": {"lang": "fr", "words": 120},
            "blob": b"\x00\x01",
            "uuid": Binary(bytes(range(16)), 4),
            "content": {"Title": "t"} if number % 2 else "plain",
        }
        for number in range(5)
    ]
    written = assert_same_file(encoded(documents))
    batches = parquet.ParquetFormat().read_batches(io.BytesIO(written), "export.parquet")
    back = [document for batch in batches for document in batch.documents]
    assert same_bson(back, [bson.decode(bson.encode(d), CODEC_OPTIONS) for d in documents])
    schema = pq.read_schema(io.BytesIO(written))
    assert str(schema.field("meta").type) == "struct<lang: string, words: int32>"


# -- what the scanner infers and builds -------------------------------------------------------


@needs_c
def test_the_scanner_infers_the_descriptors_of_the_python_conversion():
    names, descs, keys, _ = scan(
        [
            {"_id": 1, "s": "a", "d": datetime(2020, 1, 1), "m": 1, "o": {"k": [1.5]}},
            {"_id": 2, "s": None, "m": "two", "o": {"k": []}, "e": {}},
        ]
    )
    assert names == ("_id", "s", "d", "m", "o", "e")
    assert descs == (
        "int32",
        "string",
        "date",
        "mixed",
        ("object", (("k", ("array", "double")),)),
        "mixed",
    )
    assert keys == [("_id", "s", "d", "m", "o"), ("_id", "s", "m", "o", "e")]


@needs_c
def test_documents_with_the_same_keys_in_order_need_no_key_lists():
    assert scan([{"a": 1, "b": 2}, {"a": 3, "b": 4}])[2] is None


@needs_c
@pytest.mark.parametrize(
    ("values", "desc"),
    [
        ([Binary(b"x" * 16, 4), Binary(b"y" * 16, 4)], "uuid"),
        ([Binary(b"x" * 16, 4), Binary(b"short", 4)], ("binary", 4)),
        ([b"raw", Binary(b"x", 5)], "mixed"),
        ([DatetimeMS(-(2**62)), DatetimeMS(2**62)], "datetimeMS"),
        ([DatetimeMS(-(2**62)), datetime(2020, 1, 1)], "mixed"),
        ([1, Int64(1)], "mixed"),
        ([[1, "a"], [2]], "mixed"),
        ([Regex("a"), None], "regex"),
        ([Timestamp(1, 2)], "timestamp"),
    ],
)
def test_the_scanner_types_columns_as_the_python_conversion(values, desc):
    assert scan([{"v": value} for value in values])[1] == (desc,)
    assert_same_file(encoded([{"v": value} for value in values]))


@needs_c
@pytest.mark.parametrize(
    "raw",
    [
        bson.encode({"price": Decimal128("1.10")}),
        bson.encode({"$set": 1}),
        bson.encode({"ref": {"$ref": "users", "$id": 1}}),
        bson.encode({"sub": {"a": {"$oid": "0" * 24}}}),
        # a repeated key
        b"\x13\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x10a\x00\x02\x00\x00\x00\x00",
        # a string that is not UTF-8
        b"\x0f\x00\x00\x00\x02s\x00\x02\x00\x00\x00\xff\x00\x00",
        # old binary (subtype 2)
        b"\x15\x00\x00\x00\x05b\x00\x05\x00\x00\x00\x02\x01\x00\x00\x00x\x00",
        # framing that lies about the length
        b"\x10\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x00",
    ],
    ids=["decimal", "dollar", "dbref", "wrapper", "repeat", "utf8", "old-binary", "framing"],
)
def test_what_the_scanner_declines_goes_the_python_way(raw):
    assert parquet._bsonarrow.scan([bson.encode({"_id": 1}), raw]) is None
    assert_same_file([[bson.encode({"_id": 1}), raw], [bson.encode({"_id": 2})]])


@needs_c
def test_a_value_that_cannot_be_text_is_refused_as_in_python():
    """A wrapper-shaped plain sub-document cannot be Extended JSON text: refused either way."""
    chunks = [[bson.encode({"v": 1}), bson.encode({"v": {"$oid": "0" * 24}})]]
    written = assert_same_file(chunks)
    assert written == b"" and write(chunks)[0] == "raised"


@needs_c
def test_a_later_chunk_widens_the_columns_of_earlier_ones():
    first = [{"_id": i, "n": i, "late": None} for i in range(3)]
    second = [{"_id": 10, "n": "ten", "late": {"k": 1}, "new": True}]
    reordered = [{"n": 11, "_id": 11}]
    assert_same_file(encoded(first + second + reordered, 2), row_group_size=4)
    assert_same_file(encoded(first + second + reordered, 3), row_group_size=2)


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI has to prove the extension is built")
def test_ci_builds_the_extension():
    import hermes.formats._bsonarrow  # noqa: F401

    assert parquet.SCANS_BSON


def test_chunks_decoded_with_other_options_are_converted_with_them():
    """Clamped dates are other values than the warehouse's: the scanner is not used for them."""
    from bson.codec_options import DatetimeConversion

    far = bson.encode({"_id": 1, "at": DatetimeMS(2**62)})
    clamped = CODEC_OPTIONS.with_options(datetime_conversion=DatetimeConversion.DATETIME_CLAMP)
    stream = io.BytesIO()
    parquet.ParquetFormat().write_stream(stream, BsonChunks(iter([[far]]), clamped))
    batches = parquet.ParquetFormat().read_batches(io.BytesIO(stream.getvalue()), "x.parquet")
    [document] = [d for batch in batches for d in batch.documents]
    assert document["at"] == datetime.max.replace(microsecond=999000, tzinfo=timezone.utc)
