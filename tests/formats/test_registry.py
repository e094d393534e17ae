"""The format registry: a file's name chooses its format and compression; names have aliases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hermes.errors import FormatError, UnsupportedFormatError
from hermes.formats import EXTENSIONS as REGISTRY_EXTENSIONS
from hermes.formats import (
    detect_format,
    format_names,
    get_format,
    read_documents,
    supported_extensions,
    write_documents,
)

EXTENSIONS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
COMPRESSIONS = {"": None, ".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("extension", EXTENSIONS)
def test_every_extension_is_detected_with_or_without_compression(extension, compression):
    fmt, codec = detect_format(f"exports/raw_documents{extension}{compression}")
    assert (fmt.name, codec) == (EXTENSIONS[extension], COMPRESSIONS[compression])


def test_detection_ignores_case_and_folders_with_dots():
    fmt, codec = detect_format("/data/v1.2/Chunks.JSONL.GZ")
    assert (fmt.name, codec) == ("jsonl", "gzip")


def test_the_supported_extensions_are_exactly_those_detected():
    assert sorted(supported_extensions()) == sorted(EXTENSIONS)
    assert sorted(format_names()) == sorted(set(EXTENSIONS.values()))


@pytest.mark.parametrize("name", ["notes.txt", "archive.json.bz2", "data", "data.gz"])
def test_an_unknown_extension_is_refused_with_the_supported_ones_listed(name):
    with pytest.raises(UnsupportedFormatError) as caught:
        detect_format(name)
    message = str(caught.value)
    assert repr(name) in message
    for extension in EXTENSIONS:
        assert extension in message
    assert ".gz" in message and ".zst" in message


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("json", "json"),
        ("JSON", "json"),
        (".json", "json"),
        ("jsonl", "jsonl"),
        ("ndjson", "jsonl"),
        ("jsonlines", "jsonl"),
        ("json_lines", "jsonl"),
        ("csv", "csv"),
        ("tsv", "tsv"),
        ("parquet", "parquet"),
        ("pq", "parquet"),
    ],
)
def test_formats_are_found_by_name_or_alias(alias, name):
    assert get_format(alias).name == name


def test_an_unknown_format_name_is_refused_with_the_choices_listed():
    with pytest.raises(UnsupportedFormatError) as caught:
        get_format("xml")
    for name in EXTENSIONS.values():
        assert name in str(caught.value)


def test_tsv_is_csv_with_a_tab_delimiter():
    assert type(get_format("tsv")) is type(get_format("csv"))
    assert get_format("tsv").delimiter == "\t"


def test_an_existing_file_is_kept_unless_overwrite_and_the_refusal_names_the_parameter(tmp_path):
    path = tmp_path / "kept.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    with pytest.raises(FileExistsError) as caught:
        write_documents(path, [{"a": 2}], overwrite=False)
    assert str(caught.value) == f"{path} already exists; pass overwrite=True to replace it"
    assert path.read_bytes() == b'{"a": 1}\n'


def _unreadable_third_row(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"n": pa.array([1, 2, 2**64 - 1, 4], pa.uint64())}), path)


@pytest.mark.parametrize(
    ("name", "content", "location"),
    [
        ("line.jsonl", b'{"n": 1}\n{"n": 2}\n{oops\n{"n": 4}\n', "line 3, column 2"),
        ("element.json", b'[{"n": 1}, {"n": 2}, 5, {"n": 4}]', "item 3 (line 1)"),
        ("syntax.json", b'[{"n": 1}, {"n": 2} {"n": 3}]', "line 1, column 21"),
        ("cell.csv", b"n.int32()\n1\n2\nthree\n4\n", "row 3 (line 4)"),
        ("row.parquet", _unreadable_third_row, "row 3"),
    ],
)
def test_a_reader_that_stops_at_a_bad_record_first_hands_over_the_documents_before_it(
    tmp_path, name, content, location
):
    path = tmp_path / name
    content(path) if callable(content) else path.write_bytes(content)
    read = []
    with pytest.raises(FormatError) as caught:
        for batch in read_documents(path, batch_size=1000):
            read.extend(document["n"] for document in batch.documents)
    assert (read, caught.value.location) == ([1, 2], location)


def test_the_registry_lists_the_extensions_each_format_declares():
    for name in format_names():
        assert get_format(name).extensions == REGISTRY_EXTENSIONS[name]


def test_naming_a_json_lines_file_does_not_import_the_parquet_machinery():
    """A format's module loads on first use: a JSON Lines export or a status need no pyarrow
    (a few hundred milliseconds of start-up for every command)."""
    probe = (
        "import sys\n"
        "from hermes.formats import detect_format, write_documents, read_documents\n"
        "from hermes.storage._backup import file_name, collection_of\n"
        "import tempfile, pathlib\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / file_name('raw_documents', 'jsonl')\n"
        "write_documents(path, [{'_id': 1}])\n"
        "assert list(read_documents(path))[0].documents == [{'_id': 1}]\n"
        "assert collection_of(path) == 'raw_documents'\n"
        "print('pyarrow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
