"""Bad and hostile input: damaged files of every format, documents MongoDB cannot hold, damaged
backups, and Extended JSON or queries that try to be more than data.

Whatever the bytes, reading a file raises nothing but Hermes' own errors, naming the file and,
where there is one, the position; it never hangs.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hermes.formats.csv
import hermes.formats.jsonl
from hermes.cli import cli
from hermes.errors import FormatError, HermesError, IntegrityError
from hermes.formats import iter_documents, write_documents
from hermes.formats.base import RecordError, atomic_output
from hermes.formats.parquet import KEYS_COLUMN
from hermes.sample import iter_collection
from hermes.storage.warehouse import (
    DataWarehouseExporter,
    DataWarehouseImporter,
    DataWarehouseManager,
    parse_query,
)
from tests.reliability.faults import damage, expected_bson, stored_bson

#: File names of every reader, compressed ones included.
SUFFIXES = [".json", ".jsonl", ".csv", ".tsv", ".parquet", ".jsonl.gz", ".csv.zst"]
SECONDS_PER_FILE = 10


def seed_documents() -> list[dict]:
    odd = {
        "_id": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "views": Int64(2**40),
        "price": Decimal128("19.990"),
        "when": datetime(2024, 5, 17, 8, 30, 1, 123000, tzinfo=timezone.utc),
        "blob": Binary(b"\x00\xff", 0),
        "title": 'Zoë\'s café 🚀, "quoted"\nline',
        "content": {"tags": ["a", 1, None, True], "nested": {"deep": [1.5]}},
    }
    return [*iter_collection("raw_documents", 4), odd]


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """A valid file of each format, to damage."""
    folder = Path(tempfile.mkdtemp())
    files = {}
    for suffix in SUFFIXES:
        path = folder / f"seed{suffix}"
        write_documents(path, seed_documents())
        files[suffix] = path.read_bytes()
    return files


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, inserted or deleted, a few times over."""
    damaged = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not damaged:
            break
        at = draw(st.integers(0, len(damaged) - 1))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if action == "truncate":
            del damaged[at:]
        elif action == "flip":
            damaged[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            damaged[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del damaged[at : at + draw(st.integers(1, 8))]
    return bytes(damaged)


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Turn a hang into a failure (hypothesis' deadline only judges examples that end)."""

    def expired(*_: object) -> None:
        raise TimeoutError(f"reading took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_all(path: Path) -> list[RecordError]:
    """Read ``path`` twice: stopping at the first error, and going past bad records."""
    errors: list[RecordError] = []
    with time_limit(SECONDS_PER_FILE):
        with contextlib.suppress(HermesError):
            for _ in iter_documents(path):
                pass
        try:
            for _ in iter_documents(path, on_error=errors.append):
                pass
        except HermesError as error:
            assert str(path) in str(error), error
    return errors


@pytest.mark.parametrize("suffix", SUFFIXES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_damaged_file_raises_only_hermes_errors_naming_the_file(seeds, suffix, data):
    content = data.draw(st.one_of(damaged(seeds[suffix]), st.binary(max_size=300)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(content)
        try:
            errors = read_all(path)
        except HermesError as error:
            assert str(path) in str(error)
            return
    for error in errors:
        assert error.path == str(path) and error.location and error.reason


@pytest.mark.parametrize(
    ("suffix", "content"),
    [
        (".json", b"[" * 200_000),
        (".jsonl", b'{"a":' * 200_000 + b"\n"),
        (".json", b'[{"a": "' + b"x" * 1_000_000),
        (".csv", b'a,b\n"' + b"x" * 1_000_000),
        (".jsonl", b'{"$date": {"$numberLong": "99999999999999999999999"}}\n'),
        (".jsonl", b'{"x": {"$binary": {"base64": "!!!", "subType": "00"}}}\n'),
    ],
    ids=["json-deep", "jsonl-deep", "json-unterminated", "csv-unterminated", "date", "binary"],
)
def test_hostile_files_are_format_errors_with_a_position(tmp_path, suffix, content):
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(content)
    with time_limit(SECONDS_PER_FILE), pytest.raises(FormatError) as failure:
        list(iter_documents(path))
    assert failure.value.path == str(path)
    assert failure.value.location


def hermes_parquet(folder: Path) -> tuple[Path, pa.Table]:
    path = folder / "seed.parquet"
    write_documents(path, seed_documents())
    return path, pq.read_table(path)


def rewritten(table: pa.Table, name: str, column: pa.Array, field: pa.Field, path: Path) -> Path:
    """``table`` with one column replaced, keeping Hermes' metadata: a file that passes
    Parquet's own checks but lies about its content."""
    changed = table.set_column(table.schema.get_field_index(name), field, column)
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)
    return path


def test_parquet_text_that_is_not_utf8_is_a_format_error(tmp_path):
    path, table = hermes_parquet(tmp_path)
    keys = table.column(KEYS_COLUMN).combine_chunks()
    names = keys.values.cast(pa.binary()).to_pylist()
    names[0] = b"\xff" + names[0]
    broken = pa.ListArray.from_arrays(keys.offsets, pa.array(names, pa.binary()).view(pa.string()))
    field = table.schema.field(KEYS_COLUMN)
    damaged_file = rewritten(table, KEYS_COLUMN, broken, field, tmp_path / "keys.parquet")
    with pytest.raises(FormatError, match=r"row 1: corrupt Parquet data \('utf-8' codec"):
        list(iter_documents(damaged_file))


def test_a_parquet_column_whose_type_contradicts_the_metadata_is_a_format_error(tmp_path):
    path, table = hermes_parquet(tmp_path)
    as_numbers = table.column("created_at").cast(pa.int64())
    field = pa.field("created_at", pa.int64())
    damaged_file = rewritten(table, "created_at", as_numbers, field, tmp_path / "type.parquet")
    errors: list[RecordError] = []
    readable = list(iter_documents(damaged_file, on_error=errors.append))
    assert damage(expected_bson(readable), expected_bson(seed_documents()[-1:])) == 0
    assert [e.location for e in errors] == ["row 1", "row 2", "row 3", "row 4"]
    assert all("column 'created_at': cannot read the value" in e.reason for e in errors)


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_runaway_line_is_rejected_without_being_held_in_memory(tmp_path, monkeypatch, suffix):
    """A line without end (a missing line break, a decompression bomb) costs at most the line
    limit in memory, is rejected as a record, and the lines after it are read."""
    monkeypatch.setattr(hermes.formats.jsonl, "MAX_LINE", 1 << 20)
    path = tmp_path / f"runaway{suffix}"
    with atomic_output(path) as out:
        out.stream.write(b'{"_id": 1}\n{"text": "' + b"x" * (16 << 20) + b'"}\n{"_id": 3}\n')
    errors: list[RecordError] = []
    tracemalloc.start()
    try:
        documents = list(iter_documents(path, on_error=errors.append))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert documents == [{"_id": 1}, {"_id": 3}]
    assert [(e.location, e.reason) for e in errors] == [
        ("line 2", "line longer than 1,048,576 bytes (is the file JSON Lines?)")
    ]
    assert peak < 12 << 20  # under the 16 MB line (some 230 MB when a line is read whole)


def test_a_csv_line_without_end_stops_the_read_without_being_held_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(hermes.formats.csv, "_MAX_LINE", 1 << 20)
    path = tmp_path / "runaway.csv.gz"
    with atomic_output(path) as out:
        out.stream.write(b'text\nfine\n"' + b"x" * (16 << 20) + b'"\n')
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"line 3: a line longer than 1,048,576 bytes"):
            list(iter_documents(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20  # under the 16 MB line


# ------------------------------------------------------------------------------------------
# Documents MongoDB cannot hold
# ------------------------------------------------------------------------------------------


def nested(levels: int) -> dict:
    """A document of ``levels`` levels, itself included."""
    document: dict = {"leaf": 1}
    for _ in range(levels - 1):
        document = {"a": document}
    return document


def test_documents_mongodb_cannot_hold_are_rejected_one_by_one(db_manager, tmp_path):
    good = [{"_id": i, "n": i} for i in range(6)]
    bad = {
        "too large": {"_id": "large", "text": "x" * (17 * 1024 * 1024)},
        "nesting deeper than 100 levels": {"_id": "deep", **nested(101)},
        "NUL": {"_id": "nul", "a\x00b": 1},
    }
    lines = [orjson.dumps(d) for d in good[:3]]
    lines += [orjson.dumps(d) for d in bad.values()]
    lines += [orjson.dumps(d) for d in good[3:]]
    source = tmp_path / "hostile.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    fine = tmp_path / "fine.jsonl"
    fine.write_bytes(orjson.dumps({"_id": "deep enough", **nested(100)}) + b"\n")

    importer = DataWarehouseImporter(db_manager)
    report = importer.import_collection("docs", source)
    assert importer.import_collection("docs", fine).inserted == 1

    rejects = [orjson.loads(line) for line in report.rejects_file.read_bytes().splitlines()]
    assert [r["location"] for r in rejects] == ["line 4", "line 5", "line 6"]
    for reject, expected in zip(rejects, bad, strict=True):
        assert expected in reject["reason"]
    collection = db_manager.get_collection("docs")
    assert damage(expected_bson(good), stored_bson(collection)) == 1  # just "deep enough"
    assert (report.read, report.inserted, report.rejected) == (9, 6, 3)


# ------------------------------------------------------------------------------------------
# Damaged backups: restore refuses before writing anything
# ------------------------------------------------------------------------------------------


def truncate(folder: Path) -> str:
    path = folder / "chunks.jsonl"
    path.write_bytes(path.read_bytes()[:-300])
    return r"chunks\.jsonl: .* bytes, manifest says"


def remove(folder: Path) -> str:
    (folder / "chunks.jsonl").unlink()
    return r"chunks\.jsonl: missing"


def recount(folder: Path) -> str:
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    manifest["collections"]["chunks"]["count"] += 1
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    return r"chunks\.jsonl: \d+ documents, manifest says"


def swap(folder: Path) -> str:
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    manifest["collections"]["chunks"]["file"] = "raw_documents.jsonl"
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    return r"raw_documents\.jsonl: .*(bytes|SHA-256)"


@pytest.mark.parametrize("spoil", [truncate, remove, recount, swap])
def test_a_damaged_backup_is_refused_before_anything_is_written(db, db_manager, tmp_path, spoil):
    db["raw_documents"].insert_many(list(iter_collection("raw_documents", 20)))
    db["chunks"].insert_many(list(iter_collection("chunks", 40)))
    folder = DataWarehouseManager(db_manager).backup(tmp_path / "backup", "jsonl").path
    problem = spoil(folder)
    target = type(db_manager)(database=f"{db.name}_restored")
    try:
        with pytest.raises(IntegrityError, match=problem):
            DataWarehouseManager(target).restore(folder, confirm=True)
        assert target.list_collections() == []
        result = CliRunner().invoke(cli, ["verify", "--backup-dir", str(folder)])
        assert result.exit_code == 2
    finally:
        target.client.drop_database(target.database_name)
        target.close()


# ------------------------------------------------------------------------------------------
# Extended JSON and queries that try to be more than data
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv", ".parquet"])
def test_a_document_with_its_own_ref_and_id_fields_stays_a_document(db_manager, tmp_path, suffix):
    """``{"$ref": ..., "$id": ...}`` at the top of a record is a document with two fields,
    never a DBRef: it is read, stored, exported and imported back byte for byte."""
    source = tmp_path / "refs.jsonl"
    source.write_bytes(
        b'{"_id": 1, "$ref": "authors", "$id": 7}\n'
        b'{"_id": 2, "$ref": "a", "$id": 2, "$db": "x", "extra": 5}\n'
        b'{"_id": 3, "link": {"$ref": "authors", "$id": 7}}\n'
    )
    assert all(type(d) is dict for d in iter_documents(source))
    DataWarehouseImporter(db_manager).import_collection("refs", source)
    exported = tmp_path / f"refs{suffix}"
    DataWarehouseExporter(db_manager).export_collection("refs", exported, None)
    DataWarehouseImporter(db_manager).import_collection("back", exported)
    stored = stored_bson(db_manager.get_collection("refs"))
    assert damage(stored, stored_bson(db_manager.get_collection("back"))) == 0


@pytest.mark.parametrize(
    "query",
    [
        '{"$where": "sleep(100000)"}',
        '{"$expr": {"$function": {"body": "function () { return 1 }", "args": [], "lang": "js"}}}',
        '{"$or": [{"a": 1}, {"$expr": {"$gt": [{"$accumulator": {}}, 1]}}]}',
    ],
)
def test_queries_that_would_run_javascript_are_refused(query, run_cli):
    with pytest.raises(FormatError, match=r"runs JavaScript on the server"):
        parse_query(query)
    with pytest.raises(FormatError, match=r"runs JavaScript on the server"):
        parse_query(orjson.loads(query))
    result = run_cli("export", "--query", query)
    assert result.exit_code == 2
    assert "runs JavaScript on the server" in result.output


def test_a_query_is_data_even_when_it_mentions_code(db_manager):
    """Strings that look like code are just values to compare with."""
    db_manager.get_collection("c").insert_one({"_id": 1, "body": "function () { return 1 }"})
    query = parse_query('{"body": "function () { return 1 }"}')
    assert db_manager.get_collection("c").count_documents(query) == 1


@pytest.fixture
def run_cli(database_name, warehouse_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        return CliRunner().invoke(cli, ["--database", database_name, *args])

    return run
