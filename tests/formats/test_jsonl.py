"""JSON Lines: one Extended JSON document per line; a bad line is reported with its number and
the lines around it are still read."""

from __future__ import annotations

import gzip
import io
import itertools

import bson
import pytest
import zstandard
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.errors import FormatError
from hermes.formats import iter_documents, jsonbson, read_documents, write_documents
from hermes.formats.jsonl import JsonLinesFormat
from hermes.sample import iter_collection
from tests.strategies import STORED_DOCUMENTS, same_bson

FORMAT = JsonLinesFormat()
ENCODE = {"codec_options": jsonbson.ENCODE_OPTIONS}


def _read_all(data: bytes, **options) -> list[tuple[str, dict]]:
    batches = FORMAT.read_batches(io.BytesIO(data), "data.jsonl", **options)
    return [pair for batch in batches for pair in batch]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(STORED_DOCUMENTS, max_size=8),
    st.sampled_from(["relaxed", "canonical"]),
    st.integers(1, 4),
)
def test_any_documents_round_trip(documents, json_format, batch_size):
    out = io.BytesIO()
    assert FORMAT.write_stream(out, documents, json_format=json_format) == len(documents)
    assert out.getvalue().count(b"\n") == len(documents)
    read = _read_all(out.getvalue(), batch_size=batch_size)
    assert same_bson([document for _, document in read], documents)
    assert [location for location, _ in read] == [f"line {n}" for n in range(1, len(documents) + 1)]


DECOMPRESS = {
    "": bytes,
    ".gz": gzip.decompress,
    ".zst": lambda raw: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read(),
}


@pytest.mark.parametrize("suffix", DECOMPRESS)
def test_files_round_trip_plain_and_compressed(tmp_path, suffix):
    documents = list(iter_collection("raw_documents", 40))
    path = tmp_path / f"raw.jsonl{suffix}"
    assert write_documents(path, documents).count == 40
    assert same_bson(list(iter_documents(path)), documents)
    assert DECOMPRESS[suffix](path.read_bytes()).count(b"\n") == 40


def test_a_bom_blank_lines_and_crlf_line_ends_are_accepted():
    data = b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"b": "\xc3\xa9"}\r\n\n'
    assert _read_all(data) == [("line 1", {"a": 1}), ("line 4", {"b": "é"})]


def test_the_last_line_needs_no_newline():
    assert _read_all(b'{"a": 1}\n{"a": 2}') == [("line 1", {"a": 1}), ("line 2", {"a": 2})]


def test_a_bad_line_in_the_middle_is_reported_with_its_number_and_the_others_are_read():
    data = b'{"a": 1}\n{"a": 2\n{"a": {"$oid": "nope"}}\n[1, 2]\n{"a": 5}\n'
    errors = []
    read = _read_all(data, on_error=errors.append)
    assert read == [("line 1", {"a": 1}), ("line 5", {"a": 5})]
    assert [(e.path, e.location) for e in errors] == [
        ("data.jsonl", "line 2, column 8"),  # just after the record cut short
        ("data.jsonl", "line 3"),
        ("data.jsonl", "line 4"),
    ]
    assert errors[0].reason == "malformed JSON: unexpected end of data"
    assert "$oid" in errors[1].reason
    assert "expected a JSON object" in errors[2].reason
    assert errors[0].raw == '{"a": 2'


def test_without_an_error_handler_the_first_bad_line_raises_a_format_error():
    data = b'{"a": 1}\n\n{"a": }\n{"a": 3}\n'
    with pytest.raises(FormatError) as caught:
        _read_all(data)
    assert caught.value.location == "line 3, column 7"
    assert str(caught.value) == (
        "data.jsonl, line 3, column 7: malformed JSON: unexpected character, expected a JSON value"
    )


def test_the_column_of_a_syntax_error_counts_characters_within_its_line():
    data = '{"a": 1}\n{"日本": 1 x}\n'.encode()
    errors = []
    _read_all(data, on_error=errors.append)
    assert [(e.location, e.reason) for e in errors] == [
        ("line 2, column 10", "malformed JSON: unexpected character, expected ',' or '}'")
    ]


def test_a_line_of_invalid_utf8_is_reported_and_the_others_are_read():
    data = b'{"a": "ok"}\n{"a": "\xff\xfe"}\n{"a": "fine"}\n'
    errors = []
    assert _read_all(data, on_error=errors.append) == [
        ("line 1", {"a": "ok"}),
        ("line 3", {"a": "fine"}),
    ]
    assert [(e.location, e.reason) for e in errors] == [("line 2, column 8", "invalid UTF-8")]
    assert errors[0].reason.startswith("invalid UTF-8")


def test_nan_and_infinity_as_python_json_writes_them_are_accepted():
    document = _read_all(b'{"x": NaN, "y": -Infinity}\n')[0][1]
    assert document["y"] == float("-inf") and document["x"] != document["x"]


def test_reading_streams_in_batches(tmp_path):
    path = tmp_path / "chunks.jsonl"
    write_documents(path, iter_collection("chunks", 25))
    sizes = [len(batch) for batch in read_documents(path, batch_size=10)]
    assert sizes == [10, 10, 5]


def test_writing_consumes_any_iterable_lazily():
    out = io.BytesIO()

    def documents():
        for n in itertools.count():
            if n == 3:
                return
            # every document already written is in the stream before the next is asked for
            assert out.getvalue().count(b"\n") == n
            yield {"n": n}

    assert FORMAT.write_stream(out, documents()) == 3


def test_an_unknown_json_format_is_refused():
    with pytest.raises(ValueError, match="relaxed or canonical"):
        FORMAT.write_stream(io.BytesIO(), [{"a": 1}], json_format="shell")


# -- raw_bson: what an import asks for --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(STORED_DOCUMENTS, max_size=6), st.sampled_from(["relaxed", "canonical"]))
def test_raw_bson_reading_gives_the_documents_bson_would_encode(documents, json_format):
    """Each record is either raw BSON (what the C decoder wrote) or the document the plain
    reader gives; either way an insert stores the same bytes."""
    out = io.BytesIO()
    FORMAT.write_stream(out, documents, json_format=json_format)
    plain = _read_all(out.getvalue())
    raw = _read_all(out.getvalue(), raw_bson=True)
    assert [location for location, _ in raw] == [location for location, _ in plain]
    for (_, mine), (_, theirs) in zip(raw, plain, strict=True):
        stored = mine.raw if isinstance(mine, RawBSONDocument) else bson.encode(mine, **ENCODE)
        assert stored == bson.encode(theirs, **ENCODE)


@pytest.mark.skipif(not jsonbson.AVAILABLE, reason="the C decoder is not built")
def test_raw_bson_reading_keeps_bad_lines_positions_and_reasons():
    data = (
        b'{"_id": 1, "at": {"$date": "2024-01-01T00:00:00Z"}}\n'
        b'{"_id": 2, "broken": \n'
        b"\n"
        b'{"_id": {"$numberDecimal": "1.5"}}\n'
        b'{"_id": 4}\n'
    )
    errors = []
    raw = _read_all(data, raw_bson=True, on_error=errors.append)
    plain_errors = []
    plain = _read_all(data, on_error=plain_errors.append)
    assert [location for location, _ in raw] == ["line 1", "line 4", "line 5"]
    assert [type(document).__name__ for _, document in raw] == [
        "RawBSONDocument",
        "dict",  # Decimal128 is left to the Python reader
        "RawBSONDocument",
    ]
    assert [(e.location, e.reason) for e in errors] == [
        (e.location, e.reason) for e in plain_errors
    ]
    assert errors[0].location.startswith("line 2, column")
    assert [bson.encode(d, **ENCODE) if isinstance(d, dict) else d.raw for _, d in raw] == [
        bson.encode(d, **ENCODE) for _, d in plain
    ]


@pytest.mark.parametrize("raw_bson", [False, True])
def test_the_records_before_an_overlong_line_are_handed_over_before_it_stops_the_read(
    monkeypatch, raw_bson
):
    import hermes.formats.jsonl

    monkeypatch.setattr(hermes.formats.jsonl, "MAX_LINE", 64)
    data = b'{"_id": 1}\n{"_id": 2, "text": "' + b"x" * 100 + b'"}\n{"_id": 3}\n'
    handed: list[str] = []
    batches = FORMAT.read_batches(io.BytesIO(data), "data.jsonl", raw_bson=raw_bson)
    with pytest.raises(FormatError, match="line 2: line longer than 64 bytes"):
        for batch in batches:
            handed.extend(location for location, _ in batch)
    assert handed == ["line 1"]
