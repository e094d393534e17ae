"""An export's documents, still in BSON, become CSV cells in C (``_bsoncsv``) without decoding,
and the second pass joins rows in C: the file is byte for byte the one the Python walk and row
makers write, and whatever the renderer does not reproduce exactly goes the Python way."""

from __future__ import annotations

import io
import os
from datetime import datetime, timezone
from typing import Any

import bson
import pytest
from bson import Decimal128, Int64, ObjectId, Regex
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.formats import csv as csv_format
from hermes.formats import get_format
from tests.formats.bson_writes import encoded, written, written_in_python
from tests.strategies import COLLECTIONS, STORED_DOCUMENTS

needs_c = pytest.mark.skipif(
    not csv_format.RENDERS_BSON,
    reason="hermes.formats._bsoncsv is not built (installed without a C compiler): every "
    "document is decoded and walked in Python, so there is no C output to compare",
)
OPTIONS = pytest.mark.parametrize(
    "options",
    [
        {},
        {"json_format": "canonical"},
        {"typed": False, "plain_values": "text"},
        {"typed": False},
        {"neutralize_formulas": True},
    ],
    ids=["typed", "canonical", "plain-text", "plain-strict", "neutralized"],
)


def write(chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    """The CSV bytes written from BSON chunks, or the error it raises."""
    return written("csv", chunks, **options)


def python_write(chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    """The reference: the same chunks decoded and walked in Python."""
    return written_in_python(csv_format, "_bsoncsv", "csv", chunks, **options)


def assert_same_file(chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    written = write(chunks, **options)
    assert written == python_write(chunks, **options)
    return written


def render(document: dict[str, Any], canonical: bool = False) -> Any:
    return csv_format._bsoncsv.render([bson.encode(document)], canonical)[0]


@needs_c
@OPTIONS
@settings(max_examples=100, deadline=None)
@given(documents=COLLECTIONS, chunk=st.integers(1, 5))
def test_collections_are_written_byte_for_byte_as_by_the_python_walk(options, documents, chunk):
    assert_same_file(encoded(documents, chunk), **options)


@needs_c
@settings(max_examples=100, deadline=None)
@given(documents=st.lists(STORED_DOCUMENTS, max_size=6), chunk=st.integers(1, 3))
def test_any_stored_documents_are_written_as_by_the_python_walk(documents, chunk):
    assert_same_file(encoded(documents, chunk))
    assert_same_file(encoded(documents, chunk), json_format="canonical")


@needs_c
@settings(max_examples=150, deadline=None)
@given(document=STORED_DOCUMENTS, canonical=st.booleans())
def test_the_cells_are_those_of_the_python_walk(document, canonical):
    made = render(document, canonical)
    if made is None:
        return  # declined: the Python walk renders it
    mode = "canonical" if canonical else "relaxed"
    schema = csv_format._Schema(csv_format._WriteOptions.parse(True, "refuse", mode, False))
    decoded = bson.decode(bson.encode(document), csv_format._STORED_OPTIONS)
    assert csv_format._unpacked(made[1]) == schema.add_stored(decoded, 1)[1]


@needs_c
def test_each_kind_of_value_renders_as_its_natural_cell():
    document = {
        "_id": ObjectId("65a0000000000000000000ff"),
        "text": 'café, "quoted"',
        "empty": "",
        "n": -7,
        "big": Int64(2**40),
        "x": 0.1,
        "nan": float("nan"),
        "at": datetime(1969, 7, 20, 20, 17, 40, 123000, tzinfo=timezone.utc),
        "far": DatetimeMS(-(2**62)),
        "yes": True,
        "none": None,
        "blob": b"\x00\xff",
        "uuid": Binary(bytes(16), 4),
        "tags": ["a", 1],
        "meta": {"lang": "fr", "inner": {"k": 1}},
        "odd": {"a.b": 1},
        "re": Regex("^a", "i"),
    }
    signature, packed = render(document)
    assert csv_format._unpacked(packed) == [
        b"65a0000000000000000000ff",
        'café, "quoted"'.encode(),
        b'""',
        b"-7",
        b"1099511627776",
        b"0.1",
        b"NaN",
        b"1969-07-20T20:17:40.123Z",
        b'{"$date":{"$numberLong":"-4611686018427387904"}}',
        b"true",
        b"null",
        b"AP8=",
        b'{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAA==","subType":"04"}}',
        b'["a",1]',
        b"fr",
        b"1",
        b'{"a.b":1}',
        b'{"$regularExpression":{"pattern":"^a","options":"i"}}',
        b"",
    ]
    assert render(document)[0] == signature
    assert render({**document, "empty": "now text"})[0] != signature
    assert render({**document, "meta": {"lang": "fr"}})[0] != signature


@needs_c
@pytest.mark.parametrize(
    "raw",
    [
        bson.encode({"price": Decimal128("1.10")}),
        bson.encode({"$set": 1}),
        bson.encode({"ref": {"$ref": "users", "$id": 1}}),
        # a repeated key
        b"\x13\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x10a\x00\x02\x00\x00\x00\x00",
        # a string that is not UTF-8
        b"\x0f\x00\x00\x00\x02s\x00\x02\x00\x00\x00\xff\x00\x00",
        # framing that lies about the length
        b"\x10\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x00",
    ],
    ids=["decimal", "dollar", "dbref", "repeat", "utf8", "framing"],
)
def test_what_the_renderer_declines_goes_the_python_way(raw):
    assert csv_format._bsoncsv.render([raw]) == [None]
    assert_same_file([[bson.encode({"_id": 1}), raw], [bson.encode({"_id": 2})]])


@needs_c
def test_a_document_of_a_known_shape_after_a_declined_one_is_still_rendered():
    documents = [{"_id": i, "price": Decimal128("1.10") if i == 1 else "free"} for i in range(4)]
    assert_same_file(encoded(documents, 2))


def write_documents_as(format_name: str, documents: list[dict[str, Any]]) -> tuple[Any, ...]:
    stream = io.BytesIO()
    try:
        get_format(format_name).write_stream(stream, iter(documents))
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("ok", stream.getvalue())


_TRICKY = st.text(alphabet=',\t"\r\n;aé', max_size=6)


@needs_c
@pytest.mark.parametrize("format_name", ["csv", "tsv"])
@settings(max_examples=100, deadline=None)
@given(
    documents=st.lists(
        st.fixed_dictionaries({"_id": st.integers(), "a": _TRICKY, "b": _TRICKY | st.integers()}),
        max_size=6,
    )
)
def test_rows_joined_in_c_are_those_the_python_row_makers_write(format_name, documents):
    written = write_documents_as(format_name, documents)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_format, "_bsoncsv", None)
        assert written == write_documents_as(format_name, documents)


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI has to prove the extension is built")
def test_ci_builds_the_extension():
    import hermes.formats._bsoncsv  # noqa: F401

    assert csv_format.RENDERS_BSON
