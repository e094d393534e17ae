"""File managers: whole files in one call or in batches, atomic writes, appending to JSON arrays,
and the manager chosen from a file's name."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc

import pytest
from bson import ObjectId

from hermes.errors import (
    FormatError,
    MissingFileError,
    UnsupportedFormatError,
    UnsupportedValueError,
)
from hermes.formats.base import sha256_file
from hermes.sample import iter_collection
from hermes.utils.file_io import (
    CsvFileManager,
    JsonFileManager,
    JsonLinesFileManager,
    ParquetFileManager,
    get_file_manager,
)
from tests.strategies import same_bson

MANAGERS = {
    "raw.json": JsonFileManager,
    "raw.jsonl": JsonLinesFileManager,
    "raw.ndjson": JsonLinesFileManager,
    "raw.csv": CsvFileManager,
    "raw.tsv": CsvFileManager,
    "raw.parquet": ParquetFileManager,
}


def _raw_documents(count: int = 12) -> list[dict]:
    return list(iter_collection("raw_documents", count))


# ------------------------------------------------------------------------------------------
# Every manager
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", ".gz", ".zst"])
@pytest.mark.parametrize(("name", "manager"), MANAGERS.items(), ids=MANAGERS)
def test_each_manager_writes_and_reads_back_the_same_documents(
    tmp_path, name, manager, compression
):
    documents = _raw_documents()
    path = manager.write(tmp_path / f"{name}{compression}", documents)
    assert path == (tmp_path / f"{name}{compression}").resolve()
    assert same_bson(manager.read(path), documents)


@pytest.mark.parametrize(("name", "manager"), MANAGERS.items(), ids=MANAGERS)
def test_each_manager_streams_in_batches(tmp_path, name, manager):
    documents = _raw_documents(7)
    result = manager.write_stream(tmp_path / name, iter(documents))
    assert result.count == 7
    assert result.bytes == result.path.stat().st_size
    assert result.sha256 == sha256_file(result.path)
    assert [len(batch) for batch in manager.read_batches(result.path, batch_size=3)] == [3, 3, 1]
    assert same_bson(list(manager.iter_documents(result.path)), documents)


def test_a_manager_works_as_an_instance_too(tmp_path):
    manager = JsonLinesFileManager()
    path = manager.write(tmp_path / "x.jsonl", [{"a": 1}])
    assert manager.read(path) == [{"a": 1}]


def test_a_relative_path_is_returned_resolved_and_parent_folders_are_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = JsonFileManager.write("exports/2024/../raw.json", [{"a": 1}])
    assert path == tmp_path / "exports" / "raw.json"
    assert path.is_absolute() and path.is_file()


def test_a_lone_document_is_one_document_for_every_format_but_json(tmp_path):
    path = JsonLinesFileManager.write(tmp_path / "one.jsonl", {"a": 1})
    assert JsonLinesFileManager.read(path) == [{"a": 1}]


def test_text_is_not_taken_for_documents(tmp_path):
    with pytest.raises(TypeError, match="expected documents"):
        JsonFileManager.write(tmp_path / "x.json", "not documents")
    assert not (tmp_path / "x.json").exists()


def test_reading_a_missing_file_says_so(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        JsonFileManager.read(tmp_path / "missing.json")


def test_bad_records_can_be_skipped_while_reading(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n', encoding="utf-8")
    errors = []
    assert JsonLinesFileManager.read(path, on_error=errors.append) == [{"a": 1}, {"a": 3}]
    assert [e.location for e in errors] == ["line 2, column 7"]
    with pytest.raises(FormatError, match="line 2, column 7"):
        JsonLinesFileManager.read(path)


# ------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------


class SourceFailed(Exception):
    """Raised by a document source part way through."""


def _failing_documents():
    yield {"n": 1}
    yield {"n": 2}
    raise SourceFailed("the source failed")


@pytest.mark.parametrize(("name", "manager"), MANAGERS.items(), ids=MANAGERS)
def test_a_write_that_fails_midway_leaves_no_file_and_no_temporary_file(tmp_path, name, manager):
    with pytest.raises(SourceFailed):
        manager.write(tmp_path / name, _failing_documents())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "manager"), MANAGERS.items(), ids=MANAGERS)
def test_a_write_that_fails_midway_leaves_the_existing_file_untouched(tmp_path, name, manager):
    path = manager.write(tmp_path / name, [{"n": 0}])
    before = path.read_bytes()
    with pytest.raises(SourceFailed):
        manager.write(path, _failing_documents())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_a_value_the_format_cannot_hold_fails_the_write_and_leaves_nothing(tmp_path):
    ambiguous = {"a": {"$oid": "5f1e2d3c4b5a697887960a1b"}}  # would read back as an ObjectId
    with pytest.raises(UnsupportedValueError):
        JsonFileManager.write(tmp_path / "x.json", [{"ok": 1}, ambiguous])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------


def test_json_is_indented_by_four_like_json_dump_unless_asked_otherwise(tmp_path):
    documents = [{"name": "Zoë", "tags": ["a", "b"]}, {"name": "李小龙", "nested": {"x": 1.5}}]
    indented = JsonFileManager.write(tmp_path / "a.json", documents)
    assert indented.read_text("utf-8") == json.dumps(documents, indent=4, ensure_ascii=False) + "\n"
    compact = JsonFileManager.write(tmp_path / "b.json", documents, indent=None)
    assert compact.read_text("utf-8").splitlines()[1] == '{"name":"Zoë","tags":["a","b"]},'


def test_json_read_returns_what_the_file_holds(tmp_path):
    path = JsonFileManager.write(tmp_path / "settings.json", {"model": "llama", "top_k": 5})
    assert path.read_text().startswith("{\n")
    assert JsonFileManager.read(path) == {"model": "llama", "top_k": 5}
    values = [12345678, "text", None, [1, 2], {"_id": ObjectId("5f1e2d3c4b5a697887960a1b")}]
    path = JsonFileManager.write(tmp_path / "values.json", values)
    assert JsonFileManager.read(path) == values


def test_json_read_of_documents_one_after_another_returns_a_list(tmp_path):
    path = tmp_path / "export.json"
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert JsonFileManager.read(path) == [{"a": 1}, {"a": 2}]


def test_json_read_of_a_malformed_file_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"a": 1},\n  {"a" 2}\n]', encoding="utf-8")
    with pytest.raises(FormatError, match=r"bad\.json, line 3, column 8: malformed JSON"):
        JsonFileManager.read(path)


def test_canonical_json_on_request(tmp_path):
    path = JsonFileManager.write(
        tmp_path / "c.json", [{"n": 1}], indent=None, json_format="canonical"
    )
    assert path.read_text() == '[\n{"n":{"$numberInt":"1"}}\n]\n'


# ------------------------------------------------------------------------------------------
# Appending to a JSON array
# ------------------------------------------------------------------------------------------


def test_append_to_a_missing_file_creates_a_one_element_array(tmp_path):
    path = JsonFileManager.append(tmp_path / "new" / "log.json", {"n": 1})
    assert path == (tmp_path / "new" / "log.json").resolve()
    assert JsonFileManager.read(path) == [{"n": 1}]


@pytest.mark.parametrize("content", ["", "\n", "[]", "[ ]\n", "\ufeff[\n]\n"])
def test_append_to_an_empty_file_or_empty_array(tmp_path, content):
    path = tmp_path / "log.json"
    path.write_text(content, encoding="utf-8")
    JsonFileManager.append(path, {"n": 1})
    assert JsonFileManager.read(path) == [{"n": 1}]


@pytest.mark.parametrize("indent", [4, None])
def test_append_gives_the_file_write_would_have_written(tmp_path, indent):
    documents = _raw_documents(3)
    path = JsonFileManager.write(tmp_path / "log.json", documents[:2], indent=indent)
    JsonFileManager.append(path, documents[2], indent=indent)
    expected = JsonFileManager.write(tmp_path / "expected.json", documents, indent=indent)
    assert path.read_bytes() == expected.read_bytes()


def test_append_to_a_file_written_by_json_dump_and_to_a_compressed_file(tmp_path):
    plain = tmp_path / "dump.json"
    plain.write_text(json.dumps([{"a": 1}, {"b": 2}]), encoding="utf-8")  # one line, no newline
    JsonFileManager.append(plain, {"c": 3})
    assert JsonFileManager.read(plain) == [{"a": 1}, {"b": 2}, {"c": 3}]
    packed = JsonFileManager.write(tmp_path / "log.json.gz", [{"a": 1}])
    JsonFileManager.append(packed, {"b": 2})
    assert json.loads(gzip.decompress(packed.read_bytes())) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize("content", ['{"a": 1}', '[{"a": 1}', '"text"'])
def test_append_refuses_a_file_that_is_not_an_array_and_leaves_it_untouched(tmp_path, content):
    path = tmp_path / "log.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError, match="can only append to a JSON array"):
        JsonFileManager.append(path, {"n": 1})
    assert path.read_text(encoding="utf-8") == content
    assert list(tmp_path.iterdir()) == [path]


def test_append_of_an_item_that_cannot_be_written_leaves_the_file_untouched(tmp_path):
    path = JsonFileManager.write(tmp_path / "log.json", [{"n": 1}])
    before = path.read_bytes()
    with pytest.raises(UnsupportedValueError):
        JsonFileManager.append(path, {"a": {"$date": "2024-01-01"}})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_append_does_not_load_the_file_into_memory(tmp_path):
    big = [{"n": n, "text": "x" * 1_000_000} for n in range(30)]  # 30 MB on disk
    path = JsonFileManager.write(tmp_path / "big.json", big, indent=None)
    del big
    tracemalloc.start()
    try:
        JsonFileManager.append(path, {"n": 30})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000
    assert os.path.getsize(path) > 30_000_000
    assert [d["n"] for d in JsonFileManager.iter_documents(path)] == list(range(31))


# ------------------------------------------------------------------------------------------
# CSV options
# ------------------------------------------------------------------------------------------


def test_csv_takes_any_delimiter_for_writing_and_reading(tmp_path):
    documents = [{"a": 1, "b": "x;y"}, {"a": 2, "b": "z"}]
    path = CsvFileManager.write(tmp_path / "semi.csv", documents, delimiter=";")
    assert path.read_text("utf-8").splitlines()[0] == "a.int32();b.string()"
    assert CsvFileManager.read(path, delimiter=";") == documents


def test_tsv_comes_from_the_name_or_from_a_tab_delimiter(tmp_path):
    by_name = CsvFileManager.write(tmp_path / "a.tsv", [{"a": 1, "b": "x"}])
    by_option = CsvFileManager.write(tmp_path / "b.csv", [{"a": 1, "b": "x"}], delimiter="\t")
    assert by_name.read_bytes() == by_option.read_bytes()
    assert b"\t" in by_name.read_bytes()
    assert CsvFileManager.read(by_option, delimiter="\t") == [{"a": 1, "b": "x"}]


def test_csv_without_a_header_line_names_fields_by_position(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("1,x\r\n2,y\r\n", encoding="utf-8")
    assert CsvFileManager.read(path, skip_header=True) == [
        {"0": "1", "1": "x"},
        {"0": "2", "1": "y"},
    ]
    assert CsvFileManager.read(path) == [{"1": "2", "x": "y"}]  # the first line is the header


# ------------------------------------------------------------------------------------------
# Choosing a manager
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["", ".gz", ".zst"])
@pytest.mark.parametrize(("name", "manager"), MANAGERS.items(), ids=MANAGERS)
def test_the_manager_follows_the_file_name(name, manager, compression):
    assert get_file_manager(f"/data/{name}{compression}") is manager


def test_an_unknown_extension_has_no_manager_and_the_error_lists_the_supported_ones():
    with pytest.raises(UnsupportedFormatError) as caught:
        get_file_manager("notes.txt")
    for extension in (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet"):
        assert extension in str(caught.value)


def test_a_manager_writes_its_own_format_whatever_the_extension(tmp_path):
    path = JsonLinesFileManager.write(tmp_path / "export.txt", [{"a": 1}, {"a": 2}])
    assert path.read_text() == '{"a":1}\n{"a":2}\n'
    assert JsonLinesFileManager.read(path) == [{"a": 1}, {"a": 2}]
