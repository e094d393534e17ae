"""JSON: a top-level array of Extended JSON documents, read incrementally in any layout (compact,
indented, one line, mongoexport's), with line and column in every error."""

from __future__ import annotations

import contextlib
import io
import json
from unittest import mock

import pytest
from bson import Decimal128, ObjectId
from bson.raw_bson import RawBSONDocument
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hermes.errors import FormatError
from hermes.formats import extjson, iter_documents, jsonbson, read_documents, write_documents
from hermes.formats import json as hermes_json
from hermes.formats.json import JsonFormat
from hermes.sample import iter_collection
from tests.strategies import STORED_DOCUMENTS, same_bson

FORMAT = JsonFormat()
needs_decoder = pytest.mark.skipif(
    not jsonbson.AVAILABLE,
    reason="hermes.formats._jsonbson is not built: every element goes through the scanner",
)


def _read(data: bytes, chunk: int | None = None, **options) -> list[tuple[str, dict]]:
    """(location, document) pairs read from ``data``, with a reading chunk of ``chunk`` bytes."""
    patch = mock.patch.object(hermes_json, "_CHUNK", chunk) if chunk else contextlib.nullcontext()
    with patch:
        batches = FORMAT.read_batches(io.BytesIO(data), "data.json", **options)
        return [pair for batch in batches for pair in batch]


def _write(documents, **options) -> bytes:
    out = io.BytesIO()
    assert FORMAT.write_stream(out, documents, **options) == len(documents)
    return out.getvalue()


def _documents(pairs):
    return [document for _, document in pairs]


def _line_text(data: bytes, location: str) -> str:
    number = int(location.split("(line ")[1].rstrip(")"))
    return data.split(b"\n")[number - 1].decode()


# ------------------------------------------------------------------------------------------
# Round trips and layouts
# ------------------------------------------------------------------------------------------

INDENTS = st.sampled_from([None, 0, 2, 4, "\t"])


@settings(max_examples=100, deadline=None)
@given(st.lists(STORED_DOCUMENTS, max_size=6), st.sampled_from(["relaxed", "canonical"]), INDENTS)
def test_any_documents_round_trip_in_any_layout(documents, json_format, indent):
    data = _write(documents, json_format=json_format, indent=indent)
    read = _read(data)
    assert same_bson(_documents(read), documents)
    # each location is the element's number and the line where it starts
    for number, (location, _) in enumerate(read, start=1):
        assert location.startswith(f"item {number} (line ")
        assert _line_text(data, location).lstrip(" \t").startswith("{")


def _layouts(documents: list[dict]) -> dict[str, bytes]:
    """The same documents as the tools people use lay them out."""
    extended = [extjson.to_extended(d) for d in documents]
    compact = [extjson.dumps(d) for d in documents]
    tabbed = [json.dumps(e, indent="\t", ensure_ascii=False).encode() for e in extended]
    return {
        "hermes compact": _write(documents),
        "hermes indent=4": _write(documents, indent=4),
        "one line (json.dump)": b"[" + b",".join(compact) + b"]",
        "json.dump indent=4 ascii": json.dumps(extended, indent=4).encode(),
        "mongoexport --jsonArray": b"[" + b",".join(compact) + b"]\n",
        "mongoexport --jsonArray --pretty": b"[" + b",\n".join(tabbed) + b"]\n\n",
        "mongoexport (documents one after another)": b"".join(c + b"\n" for c in compact),
        "mongoexport --pretty": b"\n".join(tabbed) + b"\n\n",
        "spaces and CRLF": b"\r\n [ \r\n" + b" ,\r\n\t".join(compact) + b"\r\n ] \r\n",
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(STORED_DOCUMENTS, min_size=1, max_size=5),
    st.data(),
    st.integers(min_value=1, max_value=64),
)
def test_every_layout_reads_the_same_at_any_chunk_boundary(documents, data, chunk):
    """Elements, strings, escapes and multi-byte characters cut anywhere between two reads."""
    name, text = data.draw(st.sampled_from(sorted(_layouts(documents).items())), label="layout")
    whole = _read(text)
    assert same_bson(_documents(whole), documents), name
    assert _read(text, chunk=chunk) == whole


def test_an_array_written_by_json_dump_with_indent_is_read_with_element_lines(tmp_path):
    documents = [{"name": "Zoë", "tags": ["a", "b"]}, {"name": "李小龙", "nested": {"x": 1}}]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(documents, indent=4, ensure_ascii=False), encoding="utf-8")
    read = [pair for batch in read_documents(path) for pair in batch]
    assert read == [("item 1 (line 2)", documents[0]), ("item 2 (line 9)", documents[1])]


def test_a_mongoexport_json_array_is_read():
    data = (
        b'[{"_id":{"$oid":"5f1e2d3c4b5a697887960a1b"},"n":{"$numberLong":"7"}},'
        b'{"_id":{"$oid":"5f1e2d3c4b5a697887960a1c"},"when":{"$date":"2024-01-01T00:00:00Z"}}]\n'
    )
    first, second = _documents(_read(data))
    assert first["_id"] == ObjectId("5f1e2d3c4b5a697887960a1b")
    assert type(first["n"]).__name__ == "Int64"
    assert second["when"].year == 2024


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_files_round_trip_plain_and_compressed(tmp_path, suffix):
    documents = list(iter_collection("embedded_chunks", 30))
    path = tmp_path / f"chunks.json{suffix}"
    assert write_documents(path, documents).count == 30
    assert same_bson(list(iter_documents(path)), documents)


def test_a_16_mb_document_round_trips(tmp_path):
    text = "é" * 4_000_000 + "a" * 8_000_000  # 16 MB of UTF-8
    documents = [{"_id": ObjectId(), "text": text}, {"_id": ObjectId(), "after": True}]
    path = tmp_path / "big.json"
    write_documents(path, documents)
    assert path.stat().st_size > 16_000_000
    assert same_bson(list(iter_documents(path)), documents)


# ------------------------------------------------------------------------------------------
# Streaming
# ------------------------------------------------------------------------------------------


class GeneratedArray(io.RawIOBase):
    """A JSON array of ``count`` documents made on demand; counts the bytes handed out."""

    def __init__(self, count: int) -> None:
        self._parts = self._generate(count)
        self._pending = b""
        self.served = 0

    @staticmethod
    def _generate(count: int):
        yield b"[\n"
        for n in range(count):
            yield (b",\n" if n else b"") + extjson.dumps({"n": n, "text": "x" * 200})
        yield b"\n]\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = next(self._parts, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.served += size
        return size


def test_the_first_batch_comes_before_the_file_is_read_and_memory_stays_bounded():
    stream = GeneratedArray(500_000)  # about 110 MB
    batches = FORMAT.read_batches(stream, "big.json", batch_size=1000)
    first = next(batches)
    assert [d["n"] for d in first.documents] == list(range(1000))
    assert stream.served <= 2 * hermes_json._CHUNK
    for _ in range(20):
        next(batches)
    # reading on takes only what the documents read so far need, plus one chunk
    assert stream.served <= 21_000 * 230 + 2 * hermes_json._CHUNK


def test_a_generated_array_is_read_to_the_end_in_order():
    numbers = [d["n"] for d in iter(_documents(_read_stream(GeneratedArray(5000))))]
    assert numbers == list(range(5000))


def _read_stream(stream) -> list[tuple[str, dict]]:
    return [pair for batch in FORMAT.read_batches(stream, "s.json") for pair in batch]


def test_writing_consumes_any_iterable_lazily():
    out = io.BytesIO()

    def documents():
        for n in range(3):
            # every document already written is in the stream before the next is asked for
            assert out.getvalue().count(b'{"n":') == n
            yield {"n": n}

    assert FORMAT.write_stream(out, documents()) == 3
    assert out.getvalue() == b'[\n{"n":0},\n{"n":1},\n{"n":2}\n]\n'


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def test_an_empty_iterable_writes_an_empty_array_that_reads_back_empty():
    assert _write([]) == b"[]\n"
    assert _write([], indent=4) == b"[]\n"
    assert _read(b"[]") == _read(b"  [ \n ]  \n") == []


@pytest.mark.parametrize("indent", [0, 1, 2, 4, "\t"])
def test_indented_output_is_laid_out_like_json_dumps(indent):
    documents = [{"a": 1, "b": {"c": [1, 2.5, None], "d": {}}, "e": []}, {"é": "日本"}, {}]
    expected = json.dumps(documents, indent=indent, ensure_ascii=False) + "\n"
    assert _write(documents, indent=indent) == expected.encode()


def test_canonical_mode_is_written_on_request():
    assert _write([{"n": 1}], json_format="canonical") == b'[\n{"n":{"$numberInt":"1"}}\n]\n'


def test_a_single_mapping_is_written_as_an_object_and_read_as_one_document():
    out = io.BytesIO()
    assert FORMAT.write_stream(out, {"_id": 1, "tags": ["x"]}, indent=2) == 1
    assert out.getvalue() == b'{\n  "_id": 1,\n  "tags": [\n    "x"\n  ]\n}\n'
    assert _read(out.getvalue()) == [("item 1 (line 1)", {"_id": 1, "tags": ["x"]})]


# ------------------------------------------------------------------------------------------
# What else is read
# ------------------------------------------------------------------------------------------


def test_a_bom_and_surrounding_whitespace_are_accepted():
    assert _read(b'\xef\xbb\xbf\n\n  [{"a": 1}]\n\n') == [("item 1 (line 3)", {"a": 1})]


def test_documents_one_after_another_are_read_as_mongoimport_does():
    data = b'{"a": 1}\n{"a": 2}\n\n{\n  "a": 3\n}\n'
    assert _read(data) == [
        ("item 1 (line 1)", {"a": 1}),
        ("item 2 (line 2)", {"a": 2}),
        ("item 3 (line 4)", {"a": 3}),
    ]


def test_nan_and_infinity_written_by_python_json_are_accepted():
    data = json.dumps([{"x": float("nan"), "y": float("inf"), "z": -float("inf")}]).encode()
    (document,) = _documents(_read(data))
    assert document["x"] != document["x"] and document["y"] == -document["z"] == float("inf")


def test_unknown_options_for_other_formats_are_ignored():
    read = _read(b'[{"a": 1}]', types={"a": "int64"}, skip_header=True)
    assert read == [("item 1 (line 1)", {"a": 1})]


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 3], ids=["whole", "3-byte chunks"])
def test_elements_that_are_not_documents_go_to_the_error_handler_and_reading_goes_on(chunk):
    data = b'[\n{"a": 1},\n23456,\n"x",\n[3],\nnull,\n{"b": {"$oid": "bad"}},\n{"c": 3}\n]'
    errors = []
    read = _read(data, chunk=chunk, on_error=errors.append)
    assert read == [("item 1 (line 2)", {"a": 1}), ("item 7 (line 8)", {"c": 3})]
    assert [(e.path, e.location) for e in errors] == [
        ("data.json", f"item {n - 1} (line {n})") for n in (3, 4, 5, 6, 7)
    ]
    assert "expected a JSON object, got int" in errors[0].reason
    assert errors[0].raw == "23456"  # read whole, though the chunks cut it
    assert "$oid" in errors[-1].reason
    assert errors[1].raw == '"x"'


def test_bad_elements_of_a_one_line_array_are_told_apart_by_their_number():
    """``json.dump`` and ``mongoexport --jsonArray`` write the whole array on line 1."""
    elements = [{"n": n} for n in range(1, 60)]
    elements[56] = {"n": {"$oid": "bad"}}
    elements[9] = 10
    errors = []
    read = _read(json.dumps(elements).encode(), chunk=64, on_error=errors.append)
    assert [e.location for e in errors] == ["item 10 (line 1)", "item 57 (line 1)"]
    assert [location for location, _ in read][:2] == ["item 1 (line 1)", "item 2 (line 1)"]


def test_without_an_error_handler_a_bad_element_raises_a_format_error():
    with pytest.raises(FormatError) as caught:
        _read(b'[{"a": 1},\n 5]')
    assert caught.value.location == "item 2 (line 2)"
    assert str(caught.value).startswith("data.json, item 2 (line 2): ")


def test_invalid_utf8_inside_a_string_spoils_only_its_element():
    data = b'[{"a": "ok"},\n{"a": "\xff\xfe"},\n{"a": "\xe6\x97\xa5"}]'
    errors = []
    read = _read(data, on_error=errors.append)
    assert read == [("item 1 (line 1)", {"a": "ok"}), ("item 3 (line 3)", {"a": "日"})]
    assert [(e.location, e.reason) for e in errors] == [("item 2 (line 2)", "invalid UTF-8")]
    assert "\ufffd" in errors[0].raw  # printable, never a lone surrogate


@pytest.mark.parametrize("chunk", [None, 7], ids=["whole", "7-byte chunks"])
@pytest.mark.parametrize(
    ("data", "location", "message"),
    [
        (b'[\n  {"a": 1},\n  {"a": 2,, "b": 3}\n]', "line 3, column 11", "malformed JSON"),
        ('[{"日本": 1 x}]'.encode(), "line 1, column 11", "malformed JSON: Expecting ','"),
        (b'[{"a": 1}\n {"b": 2}]', "line 2, column 2", "expected ',' or ']'"),
        (b'[{"a": 1},\n]', "line 2, column 1", "trailing comma"),
        (b'[{"a": 1}]\n{"b": 2}', "line 2, column 1", "after the end of the JSON array"),
        (b'[{"a": tru}]', "line 1, column 8", "malformed JSON"),
        (b'[{"a": "\xff" x}]', "line 1, column 12", "malformed JSON"),
        (b'[{"a": 1} \xff]', "line 1, column 11", "invalid UTF-8"),
        (b'"just a string"', "line 1, column 1", "expected a JSON array"),
        (b"", "line 1, column 1", "the file is empty"),
        (b" \n\t ", "line 2, column 3", "the file is empty"),
    ],
    ids=[
        "double comma",
        "column counts characters",
        "missing comma",
        "trailing comma",
        "after the array",
        "bad literal",
        "after a bad string",
        "invalid UTF-8 outside a string",
        "not an array",
        "empty file",
        "blank file",
    ],
)
def test_a_syntax_error_is_fatal_and_names_the_line_and_column(data, location, message, chunk):
    read = []
    with pytest.raises(FormatError) as caught:
        read.extend(_read(data, chunk=chunk, batch_size=1, on_error=lambda e: None))
    assert caught.value.location == location
    assert message in caught.value.reason
    assert str(caught.value).startswith(f"data.json, {location}: ")


def test_the_documents_before_a_syntax_error_are_read_first():
    data = b'[{"n": 1},\n{"n": 2},\n{"n": 3,]'
    read = []
    batches = FORMAT.read_batches(io.BytesIO(data), "data.json", batch_size=1)
    with pytest.raises(FormatError, match="line 3, column 9"):
        for batch in batches:
            read.extend(batch.documents)
    assert read == [{"n": 1}, {"n": 2}]


def test_a_truncated_file_is_a_format_error_after_every_complete_element():
    documents = [{"n": n, "text": '日本 🚀 "quoted"', "v": [1.5, None]} for n in range(4)]
    data = _write(documents, indent=2)
    end = data.rindex(b"]") + 1
    for cut in range(end):
        read: list[dict] = []
        with pytest.raises(FormatError) as caught:
            for batch in FORMAT.read_batches(io.BytesIO(data[:cut]), "cut.json", batch_size=1):
                read.extend(batch.documents)
        assert read == documents[: len(read)]
        assert caught.value.location.startswith("line ")
    assert _documents(_read(data[:end])) == documents


def test_a_truncated_element_names_where_it_starts():
    with pytest.raises(FormatError, match="the element that starts on line 2 is not complete"):
        _read(b'[{"a": 1},\n{"b": "unfinished')


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_documents_or_a_format_error_never_another_exception(data):
    with contextlib.suppress(FormatError):
        _read(data, on_error=lambda e: None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(STORED_DOCUMENTS, min_size=1, max_size=3),
    st.data(),
)
def test_a_damaged_file_gives_documents_or_a_format_error(documents, data):
    text = _write(documents, indent=data.draw(INDENTS, label="indent"))
    where = data.draw(st.integers(0, len(text) - 1), label="where")
    replacement = data.draw(st.sampled_from([b"", b",", b"]", b"}", b'"', b"\\", b"\xff", b"x"]))
    damaged = text[:where] + replacement + text[where + 1 :]
    assume(damaged != text)
    with contextlib.suppress(FormatError):
        _read(damaged, chunk=data.draw(st.sampled_from([None, 5])), on_error=lambda e: None)


# ------------------------------------------------------------------------------------------
# Read straight to BSON (imports): the same records, locations and errors
# ------------------------------------------------------------------------------------------


class ReadOnce(io.RawIOBase):
    """A stream that cannot be read again, as a decompressor."""

    def __init__(self, data: bytes) -> None:
        self.source = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _outcome(stream, raw_bson: bool, batch_size: int = 3) -> tuple:
    """Every record as (location, BSON or the document), every rejection, and the error."""
    records, rejected, error = [], [], None
    batches = FORMAT.read_batches(
        stream, "data.json", batch_size=batch_size, on_error=rejected.append, raw_bson=raw_bson
    )
    try:
        for batch in batches:
            for location, document in batch:
                if isinstance(document, RawBSONDocument):
                    records.append((location, document.raw))
                else:
                    with contextlib.suppress(jsonbson.NotBson):
                        document = jsonbson.encode_document(document)
                    records.append((location, document))
    except FormatError as exc:
        error = str(exc)
    return records, rejected, error


ODD_LINES = [
    b'{"_id": 1, "x": {"$oid": "not hex"}},',  # a bad element: rejected, reading goes on
    b'{"_id": 2, "d": {"$numberDecimal": "1.5"}},',  # a type the C decoder leaves to Python
    b'{"x": 1, "_id": 3},',  # _id not first
    b'{"_id": 4} {"_id": 5},',  # malformed
    b"7,",  # not a document
    b'{"_id": 6, "n": NaN},',
    b'{"_id": 7, "big": 123456789012345678901234567890},',
    b"",
    b"[",
]


@settings(max_examples=150, deadline=None)
@given(
    documents=st.lists(STORED_DOCUMENTS, max_size=8),
    indent=st.sampled_from([None, None, 2]),
    odd=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(ODD_LINES)), max_size=2),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
    batch_size=st.integers(1, 4),
)
def test_reading_straight_to_bson_gives_what_the_scanner_gives(
    documents, indent, odd, cut, batch_size
):
    lines = _write(documents, indent=indent).split(b"\n")
    for at, line in odd:
        lines.insert(min(at, len(lines)), line)
    data = b"\n".join(lines)[:cut]
    expected = _outcome(io.BytesIO(data), raw_bson=False, batch_size=batch_size)
    assert _outcome(io.BytesIO(data), raw_bson=True, batch_size=batch_size) == expected
    assert _outcome(ReadOnce(data), raw_bson=True, batch_size=batch_size) == expected


@needs_decoder
def test_hermes_arrays_are_read_straight_to_bson():
    documents = list(iter_collection("raw_documents", 30))
    read = FORMAT.read_batches(io.BytesIO(_write(documents)), "data.json", raw_bson=True)
    assert {type(d) for batch in read for d in batch.documents} == {RawBSONDocument}
    records, rejected, error = _outcome(io.BytesIO(_write(documents)), raw_bson=True)
    assert (rejected, error) == ([], None)
    assert [location for location, _ in records] == [
        f"item {n} (line {n + 1})" for n in range(1, 31)
    ]
    assert [raw for _, raw in records] == [jsonbson.encode_document(d) for d in documents]


@needs_decoder
def test_a_document_the_decoder_leaves_is_parsed_in_python_and_reading_goes_on():
    documents = [{"_id": n, "price": Decimal128(str(n)) if n == 5 else n} for n in range(9)]
    data = _write(documents)
    read = FORMAT.read_batches(io.BytesIO(data), "data.json", batch_size=2, raw_bson=True)
    kinds = [type(d).__name__ for batch in read for d in batch.documents]
    assert kinds == ["RawBSONDocument"] * 5 + ["dict"] + ["RawBSONDocument"] * 3
    assert _outcome(io.BytesIO(data), True) == _outcome(io.BytesIO(data), False)


def test_a_bad_element_is_rejected_with_its_location_and_the_others_are_read():
    data = _write([{"_id": 1}, {"_id": 2}]).replace(
        b"\n]", b',\n{"_id": {"$oid": "x"}},\n{"_id": 3}\n]'
    )
    records, rejected, error = _outcome(io.BytesIO(data), raw_bson=True)
    assert [location for location, _ in records] == [
        "item 1 (line 2)",
        "item 2 (line 3)",
        "item 4 (line 5)",
    ]
    assert [(r.location, r.raw) for r in rejected] == [
        ("item 3 (line 4)", '{"_id": {"$oid": "x"}}')
    ]
    assert error is None
