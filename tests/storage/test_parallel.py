"""Part sets: a collection exported as ranges of ``_id`` at once, one file each plus a parts
manifest, and imported back in parallel with byte-identical BSON."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from bson import Int64, ObjectId
from click.testing import CliRunner

from hermes.cli import cli
from hermes.errors import FormatError, IntegrityError, UnsupportedValueError
from hermes.formats.base import sha256_file
from hermes.sample import iter_collection
from hermes.storage.parallel import id_ranges, part_path, parts_manifest_path
from hermes.storage.warehouse import DataWarehouseExporter, DataWarehouseImporter
from tests.storage.warehouse_data import every_type_document, raw_snapshot


@pytest.fixture
def raw_documents(db):
    """300 sample raw documents (string ``_id``s) and a few of every BSON type."""
    db.raw_documents.insert_many(list(iter_collection("raw_documents", 300)))
    return db.raw_documents


def export(db_manager, name, path, parallel, **options):
    return DataWarehouseExporter(db_manager).export_collection(
        name, path, None, parallel=parallel, **options
    )


def manifest_of(path):
    return json.loads(parts_manifest_path(path).read_text())


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".jsonl.gz"])
def test_a_parallel_export_writes_one_part_per_range_and_a_manifest(
    db_manager, raw_documents, tmp_path, suffix
):
    path = tmp_path / f"raw_documents{suffix}"
    result = export(db_manager, "raw_documents", path, 3)

    manifest = manifest_of(path)
    files = [part["file"] for part in manifest["parts"]]
    assert files == [part_path(path, i).name for i in range(3)]
    assert result.path == parts_manifest_path(path)
    assert result.count == manifest["count"] == sum(p["count"] for p in manifest["parts"]) == 300
    assert all(part["count"] > 0 for part in manifest["parts"])
    for part in manifest["parts"]:
        assert sha256_file(tmp_path / part["file"]) == part["sha256"]
        assert (tmp_path / part["file"]).stat().st_size == part["bytes"]
    assert not path.exists()


@pytest.mark.parametrize("parallel", [1, 3])
@pytest.mark.parametrize("given", ["manifest", "first part"])
def test_a_part_set_imports_back_to_identical_bson(
    db_manager, db, raw_documents, tmp_path, parallel, given
):
    db.raw_documents.insert_many([every_type_document() for _ in range(5)])
    path = tmp_path / "raw_documents.jsonl"
    export(db_manager, "raw_documents", path, 3)
    source = parts_manifest_path(path) if given == "manifest" else part_path(path, 0)

    report = DataWarehouseImporter(db_manager).import_collection("copy", source, parallel=parallel)

    assert report.read == report.inserted == 305
    assert report.rejected == 0
    assert raw_snapshot(db.copy) == raw_snapshot(db.raw_documents)


def test_every_document_lands_in_exactly_one_range_whatever_its_id_type(db):
    db.mixed.insert_many(
        [{"_id": i} for i in range(40)]
        + [{"_id": Int64(10**12 + i)} for i in range(10)]
        + [{"_id": f"s{i:03d}"} for i in range(40)]
        + [{"_id": ObjectId()} for _ in range(40)]
        + [{"_id": {"nested": i}} for i in range(5)]
    )

    ranges = id_ranges(db.mixed, 4)

    seen = [doc["_id"] for query in ranges for doc in db.mixed.find(query, {"_id": 1})]
    assert len(seen) == 135
    assert {repr(v) for v in seen} == {repr(doc["_id"]) for doc in db.mixed.find({}, {"_id": 1})}


def test_a_range_split_keeps_ids_of_other_types_in_the_first_range(db):
    db.mostly_strings.insert_many([{"_id": f"id-{i:04d}"} for i in range(400)] + [{"_id": 7}])

    ranges = id_ranges(db.mostly_strings, 4)

    counts = [db.mostly_strings.count_documents(query) for query in ranges]
    assert sum(counts) == 401
    assert db.mostly_strings.count_documents({"$and": [ranges[0], {"_id": 7}]}) == 1


def test_a_parallel_export_keeps_the_query(db_manager, raw_documents, tmp_path):
    path = tmp_path / "medium.jsonl"
    result = export(db_manager, "raw_documents", path, 2, query={"platform": "medium"})

    assert result.count == raw_documents.count_documents({"platform": "medium"}) > 0


def test_a_parallel_export_refuses_a_limit_or_a_sort(db_manager, raw_documents, tmp_path):
    with pytest.raises(FormatError, match="parallel"):
        export(db_manager, "raw_documents", tmp_path / "x.jsonl", 2, limit=10)
    with pytest.raises(FormatError, match="parallel"):
        export(db_manager, "raw_documents", tmp_path / "x.jsonl", 2, sort="_id")


def test_a_part_that_changed_is_refused_before_anything_is_written(
    db_manager, db, raw_documents, tmp_path
):
    path = tmp_path / "raw_documents.jsonl"
    export(db_manager, "raw_documents", path, 2)
    with open(part_path(path, 1), "ab") as part:
        part.write(b'{"_id": "extra"}\n')

    with pytest.raises(IntegrityError, match="part-0001"):
        DataWarehouseImporter(db_manager).import_collection("copy", parts_manifest_path(path))
    assert "copy" not in db.list_collection_names()


def test_a_folder_import_reads_a_part_set_as_one_collection(
    db_manager, db, raw_documents, tmp_path
):
    export(db_manager, "raw_documents", tmp_path / "raw_documents.jsonl", 3)
    db.raw_documents.rename("original")

    reports = DataWarehouseImporter(db_manager).import_all_collections(tmp_path, None)

    assert [(r.collection, r.inserted) for r in reports] == [("raw_documents", 300)]
    assert raw_snapshot(db.raw_documents) == raw_snapshot(db.original)


def test_the_cli_exports_and_imports_a_part_set(database_name, db, raw_documents, tmp_path):
    runner = CliRunner()
    exported = runner.invoke(
        cli,
        ["--database", database_name, "export", "-c", "raw_documents", "--format", "jsonl",
         "--output-dir", str(tmp_path), "--parallel", "2"],
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert len(manifest_of(tmp_path / "raw_documents.jsonl")["parts"]) == 2

    target = f"copy_{uuid.uuid4().hex[:8]}"
    imported = runner.invoke(
        cli,
        ["--database", target, "import-data", "--input-file",
         str(tmp_path / "raw_documents.parts.json"), "--parallel", "2"],
    )  # fmt: skip
    try:
        assert imported.exit_code == 0, imported.output
        copy = db.client[target].raw_documents
        assert raw_snapshot(copy) == raw_snapshot(raw_documents)
    finally:
        db.client.drop_database(target)


def test_an_export_that_fails_part_way_leaves_no_reading_thread_behind(db_manager, db, tmp_path):
    """The next batch is read by a background thread; an error in the writer stops it too."""
    db.items.insert_many([{"_id": i, "n": i} for i in range(2500)])
    db.items.insert_one({"_id": 9999, "looks_typed": {"$oid": "not a wrapper"}})

    def readers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("hermes-")]

    before = readers()

    with pytest.raises(UnsupportedValueError):
        DataWarehouseExporter(db_manager).export_collection(
            "items", tmp_path / "items.jsonl", "jsonl", batch_size=1000
        )

    assert readers() == before
    assert not (tmp_path / "items.jsonl").exists()
