"""Documents still in BSON (what an export reads from the warehouse) reach the JSON writers as
chunks of bytes, and come out exactly as the same documents decoded would."""

from __future__ import annotations

import io

import bson
import pytest
from bson.codec_options import CodecOptions
from hypothesis import given
from hypothesis import strategies as st

from hermes.formats import get_format
from hermes.formats.base import BsonChunks
from hermes.formats.jsonl import bson_lines_encoder
from hermes.storage.database import CODEC_OPTIONS
from tests.strategies import STORED_DOCUMENTS

CHUNKED = st.lists(st.lists(STORED_DOCUMENTS, max_size=4), max_size=4)


def _chunks(chunked: list[list[dict]]) -> list[list[bytes]]:
    return [[bson.encode(document) for document in chunk] for chunk in chunked]


def _written(format_name: str, documents, **options) -> tuple[bytes, int]:
    stream = io.BytesIO()
    count = get_format(format_name).write_stream(stream, documents, **options)
    return stream.getvalue(), count


def test_iterating_bson_chunks_decodes_every_document_in_order():
    documents = [{"_id": i, "n": i * 2} for i in range(7)]
    chunks = BsonChunks(iter(_chunks([documents[:3], [], documents[3:]])), CODEC_OPTIONS)
    assert list(chunks) == documents


@pytest.mark.parametrize("format_name", ["jsonl", "json"])
@pytest.mark.parametrize("json_format", ["relaxed", "canonical"])
@given(chunked=CHUNKED)
def test_bson_chunks_are_written_as_their_decoded_documents_would_be(
    format_name, json_format, chunked
):
    decoded = [document for chunk in chunked for document in chunk]
    expected = _written(format_name, iter(decoded), json_format=json_format)
    raw = BsonChunks(iter(_chunks(chunked)), CODEC_OPTIONS)
    assert _written(format_name, raw, json_format=json_format) == expected


def test_an_indented_json_array_of_bson_chunks_is_laid_out_like_decoded_documents():
    documents = [{"_id": 1, "tags": ["a", "b"], "inner": {"x": 1.5}}, {"_id": 2}]
    expected = _written("json", iter(documents), indent=2)
    raw = BsonChunks(iter(_chunks([documents])), CODEC_OPTIONS)
    assert _written("json", raw, indent=2) == expected


def test_the_direct_path_serves_the_warehouse_codec_only():
    """Other decoding options (naive dates here) change what a document is: those chunks are
    decoded with their own options and written from the result."""
    assert bson_lines_encoder(BsonChunks([], CODEC_OPTIONS)) is not None
    assert bson_lines_encoder([{"_id": 1}]) is None
    naive = CodecOptions()
    assert bson_lines_encoder(BsonChunks([], naive)) is None
    document = bson.decode(bson.encode({"_id": 1, "at": bson.datetime_ms.DatetimeMS(0)}), naive)
    expected = _written("jsonl", iter([document]))
    raw = BsonChunks(iter(_chunks([[document]])), naive)
    assert _written("jsonl", raw) == expected
