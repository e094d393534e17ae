"""``convert_file``: one file into another format, streaming. A JSON Lines source goes through
BSON where the C codecs are built; the file written is the one decoded documents would give."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.errors import FormatError
from hermes.formats import (
    convert_file,
    extjson,
    iter_documents,
    jsonbson,
    read_documents,
    write_documents,
)
from tests.strategies import STORED_DOCUMENTS, same_bson

TARGETS = pytest.mark.parametrize("target", ["json", "jsonl", "csv", "parquet"])

#: Lines the C decoder takes, and lines it leaves to the Python reader (no ``_id``, a decimal):
#: both kinds in one file.
LINES = [
    b'{"_id":{"$oid":"65a000000000000000000001"},"title":"caf\\u00e9","n":1}',
    b'{"title":"no id","n":2}',
    b'{"_id":3,"price":{"$numberDecimal":"1.10"},"at":{"$date":"2024-01-01T00:00:00Z"}}',
    b"",
    b'{"_id":4,"tags":["a","b"],"inner":{"x":1.5}}',
]


def jsonl_file(folder: Path, lines: list[bytes], name: str = "source.jsonl") -> Path:
    path = folder / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def through_documents(source: Path, target: Path) -> bytes:
    """The reference: every document decoded, then written."""
    write_documents(target, iter_documents(source))
    return target.read_bytes()


@TARGETS
def test_a_conversion_writes_what_the_decoded_documents_would(tmp_path, target):
    source = jsonl_file(tmp_path, LINES)
    result = convert_file(source, tmp_path / f"out.{target}")
    assert result.count == 4 and result.format == target
    assert (tmp_path / f"out.{target}").read_bytes() == through_documents(
        source, tmp_path / f"reference.{target}"
    )


@TARGETS
@settings(max_examples=30, deadline=None)
@given(documents=st.lists(STORED_DOCUMENTS, max_size=5))
def test_any_stored_documents_convert_as_their_decoded_documents(
    tmp_path_factory, target, documents
):
    folder = tmp_path_factory.mktemp("convert")
    source = jsonl_file(folder, [extjson.dumps(document) for document in documents])
    outcome = []
    for name, convert in [
        ("out", lambda out: convert_file(source, out)),
        ("reference", lambda out: write_documents(out, iter_documents(source))),
    ]:
        try:
            convert(folder / f"{name}.{target}")
            outcome.append(("ok", (folder / f"{name}.{target}").read_bytes()))
        except Exception as exc:
            outcome.append(("raised", type(exc), str(exc)))
    assert outcome[0] == outcome[1]


@pytest.mark.parametrize(
    "line", [b'{"_id":5,"a\\u0000b":1}', b'{"title":"late id","_id":5}'], ids=["nul", "late-id"]
)
def test_a_document_bson_cannot_hold_as_it_is_is_converted_the_python_way(tmp_path, line):
    """A key with NUL cannot be BSON; an ``_id`` after other fields would move to the front:
    the conversion starts again through decoded documents, and JSON Lines holds both."""
    lines = [LINES[0], line, LINES[4]]
    source = jsonl_file(tmp_path, lines)
    result = convert_file(source, tmp_path / "out.jsonl")
    assert result.count == 3
    assert (tmp_path / "out.jsonl").read_bytes() == through_documents(
        source, tmp_path / "reference.jsonl"
    )


def test_a_malformed_line_stops_the_conversion_naming_file_and_line(tmp_path):
    source = jsonl_file(tmp_path, [LINES[0], b'{"_id": 2, "broken": }', LINES[4]])
    with pytest.raises(FormatError, match=r"source\.jsonl.*line 2"):
        convert_file(source, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_progress_is_told_each_batch(tmp_path):
    lines = [b'{"_id":%d,"n":%d}' % (i, i) for i in range(25)]
    told: list[int] = []
    convert_file(
        jsonl_file(tmp_path, lines),
        tmp_path / "out.parquet",
        batch_size=10,
        on_progress=told.append,
    )
    assert told == [10, 10, 5]


def test_compression_follows_each_name(tmp_path):
    source = tmp_path / "source.jsonl.gz"
    source.write_bytes(gzip.compress(b"\n".join(LINES)))
    convert_file(source, tmp_path / "out.parquet.zst")
    back = [d for batch in read_documents(tmp_path / "out.parquet.zst") for d in batch.documents]
    expected = [d for batch in read_documents(source) for d in batch.documents]
    assert same_bson(back, expected)


def test_other_sources_are_converted_through_documents(tmp_path):
    documents = [{"_id": ObjectId(), "n": i} for i in range(3)]
    write_documents(tmp_path / "source.parquet", documents)
    convert_file(tmp_path / "source.parquet", tmp_path / "out.jsonl")
    back = list(iter_documents(tmp_path / "out.jsonl"))
    assert same_bson(back, documents)


def test_without_the_c_decoder_the_conversion_is_the_same(tmp_path, monkeypatch):
    source = jsonl_file(tmp_path, LINES)
    convert_file(source, tmp_path / "with.parquet")
    monkeypatch.setattr(jsonbson, "AVAILABLE", False)
    convert_file(source, tmp_path / "without.parquet")
    assert (tmp_path / "with.parquet").read_bytes() == (tmp_path / "without.parquet").read_bytes()
