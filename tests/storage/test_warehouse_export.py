"""Exporting collections to files, and the fidelity bar: warehouse -> file -> fresh collection
gives byte-identical BSON for every lossless format."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timezone

import pytest
from bson import Int64, ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.domain.documents import DocumentType
from hermes.errors import (
    FormatError,
    InvalidNameError,
    UnsupportedFormatError,
    UnsupportedValueError,
)
from hermes.formats import iter_documents
from hermes.sample import load_corpus
from hermes.storage.warehouse import (
    DataWarehouseExporter,
    DataWarehouseImporter,
    parse_fields,
    parse_query,
    parse_sort,
)
from tests.storage.warehouse_data import (
    LOSSLESS_FORMATS,
    RecordingProgress,
    every_type_document,
    raw_snapshot,
)
from tests.strategies import STORED_DOCUMENTS


def round_trip(db_manager, db, name, file_format, folder, **export_options) -> None:
    """Export ``name``, import the file into ``<name>_copy``; both must hold the same bytes."""
    path = folder / f"{name}.{file_format}"
    exported = DataWarehouseExporter(db_manager).export_collection(
        name, path, file_format, **export_options
    )
    report = DataWarehouseImporter(db_manager).import_collection(f"{name}_copy", path, file_format)
    assert exported.count == report.read == report.inserted == db[name].count_documents({})
    assert report.rejected == 0
    assert raw_snapshot(db[f"{name}_copy"]) == raw_snapshot(db[name])


# ------------------------------------------------------------------------------------------
# Fidelity
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", LOSSLESS_FORMATS)
def test_every_bson_type_survives_a_round_trip(db_manager, db, tmp_path, file_format):
    db.every_type.insert_many([every_type_document() for _ in range(3)])
    round_trip(db_manager, db, "every_type", file_format, tmp_path)


@pytest.mark.parametrize("file_format", LOSSLESS_FORMATS)
def test_the_sample_corpus_survives_a_round_trip(db_manager, db, tmp_path, file_format):
    load_corpus(db, raw_count=20)
    for name in ("raw_documents", "cleaned_documents", "chunks", "embedded_chunks"):
        round_trip(db_manager, db, name, file_format, tmp_path)


@pytest.mark.parametrize("file_format", LOSSLESS_FORMATS)
def test_a_15_mb_document_survives_a_round_trip(db_manager, db, tmp_path, file_format):
    db.big.insert_one(
        {
            "_id": ObjectId(),
            "text": "ünïcode text " * 700_000,
            "blob": os.urandom(4 * 1024 * 1024),
            "vector": [i / 7 for i in range(20_000)],
        }
    )
    round_trip(db_manager, db, "big", file_format, tmp_path)


@pytest.mark.parametrize("file_format", LOSSLESS_FORMATS)
def test_any_stored_documents_survive_a_round_trip_or_are_refused(
    db_manager, db, tmp_path, file_format
):
    exporter, importer = DataWarehouseExporter(db_manager), DataWarehouseImporter(db_manager)

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(STORED_DOCUMENTS, min_size=1, max_size=5, unique_by=lambda d: d["_id"]))
    def check(documents):
        db.source.drop()
        db.copy.drop()
        db.source.insert_many(documents)
        path = tmp_path / f"source.{file_format}"
        path.unlink(missing_ok=True)
        try:
            exporter.export_collection("source", path, file_format)
        except UnsupportedValueError:
            # The format cannot hold these documents exactly (CSV and conflicting field orders,
            # say): a clear refusal, and no file, is the other acceptable outcome.
            assert not path.exists()
            return
        report = importer.import_collection("copy", path, file_format)
        assert report.rejected == 0, report.errors
        assert raw_snapshot(db.copy) == raw_snapshot(db.source)

    check()


def test_canonical_extended_json_round_trips_too(db_manager, db, tmp_path):
    db.every_type.insert_one(every_type_document())
    round_trip(db_manager, db, "every_type", "jsonl", tmp_path, json_format="canonical")
    assert '"$numberInt":"42"' in (tmp_path / "every_type.jsonl").read_text()


# ------------------------------------------------------------------------------------------
# Query, fields, sort, limit
# ------------------------------------------------------------------------------------------


@pytest.fixture
def posts(db):
    """Ten posts, one per day of January 2024, alternately on medium and substack."""
    documents = [
        {
            "_id": ObjectId(f"{i:024x}"),
            "platform": "medium" if i % 2 else "substack",
            "views": Int64(i * 100),
            "created_at": datetime(2024, 1, i, tzinfo=timezone.utc),
        }
        for i in range(1, 11)
    ]
    db.posts.insert_many(documents)
    return documents


def exported(db_manager, tmp_path, **options) -> list[dict]:
    path = tmp_path / "posts.jsonl"
    DataWarehouseExporter(db_manager).export_collection("posts", path, "jsonl", **options)
    return list(iter_documents(path))


def test_a_query_in_extended_json_text_filters_by_date(db_manager, tmp_path, posts):
    query = '{"created_at": {"$gte": {"$date": "2024-01-08T00:00:00Z"}}}'
    assert exported(db_manager, tmp_path, query=query) == posts[7:]


def test_a_query_by_object_id_works_as_text_and_as_a_dict(db_manager, tmp_path, posts):
    wanted = [posts[2]]
    as_text = json.dumps({"_id": {"$oid": str(posts[2]["_id"])}})
    assert exported(db_manager, tmp_path, query=as_text) == wanted
    assert exported(db_manager, tmp_path, query={"_id": {"$oid": str(posts[2]["_id"])}}) == wanted
    assert exported(db_manager, tmp_path, query={"_id": posts[2]["_id"]}) == wanted


@pytest.mark.parametrize(
    "query",
    ['["not", "an", "object"]', '"text"', "42", "__import__('os').system('true')", "{bad json"],
)
def test_a_query_that_is_not_a_json_object_is_refused_without_being_run(
    db_manager, tmp_path, posts, query
):
    with pytest.raises(FormatError, match="query"):
        exported(db_manager, tmp_path, query=query)
    assert not (tmp_path / "posts.jsonl").exists()


def test_fields_sort_and_limit_shape_the_export(db_manager, tmp_path, posts):
    documents = exported(
        db_manager, tmp_path, fields="platform,views", sort="views:-1", limit=3, query=None
    )
    assert documents == [
        {"_id": p["_id"], "platform": p["platform"], "views": p["views"]}
        for p in reversed(posts[-3:])
    ]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at:-1,_id", [("created_at", -1), ("_id", 1)]),
        ("-created_at, _id:asc", [("created_at", -1), ("_id", 1)]),
        ("views:desc", [("views", -1)]),
        ('{"created_at": -1, "_id": 1}', [("created_at", -1), ("_id", 1)]),
        ({"created_at": -1}, [("created_at", -1)]),
        ([("created_at", -1), "_id"], [("created_at", -1), ("_id", 1)]),
        (None, None),
    ],
)
def test_sort_accepts_the_usual_spellings(sort, expected):
    assert parse_sort(sort) == expected


@pytest.mark.parametrize("sort", ["views:sideways", "views:2", ":1", {"views": True}])
def test_a_sort_direction_other_than_up_or_down_is_refused(sort):
    with pytest.raises(FormatError, match="sort"):
        parse_sort(sort)


def test_fields_accept_a_list_a_comma_string_or_a_projection():
    assert parse_fields("a, b") == parse_fields(["a", "b"]) == {"a": 1, "b": 1}
    assert parse_fields({"a": 0}) == {"a": 0}
    assert parse_fields(None) is None


def test_parse_query_leaves_the_callers_dict_alone():
    query = {"_id": {"$oid": "65a1b2c3d4e5f6a7b8c9d0e1"}}
    assert parse_query(query) == {"_id": ObjectId("65a1b2c3d4e5f6a7b8c9d0e1")}
    assert query == {"_id": {"$oid": "65a1b2c3d4e5f6a7b8c9d0e1"}}


# ------------------------------------------------------------------------------------------
# Files, names, progress
# ------------------------------------------------------------------------------------------


def test_the_result_describes_the_file_written(db_manager, tmp_path, posts):
    result = DataWarehouseExporter(db_manager).export_collection(
        "posts", tmp_path / "posts.jsonl", "jsonl"
    )
    assert result.collection == "posts"
    assert result.path == tmp_path / "posts.jsonl"
    assert (result.format, result.count) == ("jsonl", 10)
    assert result.bytes == (tmp_path / "posts.jsonl").stat().st_size
    assert len(result.sha256) == 64 and result.seconds >= 0


def test_compression_follows_the_file_name(db_manager, tmp_path, posts):
    path = tmp_path / "posts.jsonl.gz"
    DataWarehouseExporter(db_manager).export_collection("posts", path, "jsonl")
    assert gzip.decompress(path.read_bytes()).count(b"\n") == 10
    assert list(iter_documents(path)) == posts


def test_export_all_writes_one_file_per_collection_and_skips_system_ones(
    db_manager, db, tmp_path, posts
):
    db.authors.insert_one({"_id": 1, "name": "Zoë"})
    db["system.js"].insert_one({"_id": "f", "value": "function () {}"})
    results = DataWarehouseExporter(db_manager).export_all_collections(
        tmp_path / "out", "jsonl", compression="zstd"
    )
    assert [(r.collection, r.path.name, r.count) for r in results] == [
        ("authors", "authors.jsonl.zst", 1),
        ("posts", "posts.jsonl.zst", 10),
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "authors.jsonl.zst",
        "posts.jsonl.zst",
    ]


def test_export_all_can_be_limited_to_some_collections(db_manager, db, tmp_path, posts):
    db.authors.insert_one({"_id": 1})
    results = DataWarehouseExporter(db_manager).export_all_collections(
        tmp_path, "jsonl", collections=["authors"]
    )
    assert [r.collection for r in results] == ["authors"]


def test_an_unknown_collection_is_an_error_naming_the_ones_there(db_manager, tmp_path, posts):
    with pytest.raises(InvalidNameError, match="'pots'.*posts"):
        DataWarehouseExporter(db_manager).export_collection("pots", tmp_path / "x.jsonl", "jsonl")


def test_an_existing_file_is_kept_when_overwrite_is_off(db_manager, tmp_path, posts):
    path = tmp_path / "posts.jsonl"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError):
        DataWarehouseExporter(db_manager).export_collection("posts", path, "jsonl", overwrite=False)
    assert path.read_text() == "precious\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("posts.jsonl", "jsonl"), ("posts.json.gz", "json"), ("posts.ndjson", "jsonl"),
     ("posts.parquet", "parquet"), ("posts.tsv.zst", "tsv")],
)  # fmt: skip
def test_without_a_format_the_file_name_chooses_it(db_manager, tmp_path, posts, name, expected):
    result = DataWarehouseExporter(db_manager).export_collection("posts", tmp_path / name)
    assert result.format == expected
    assert list(iter_documents(tmp_path / name, expected)) == posts


def test_a_file_name_that_names_no_format_is_refused_with_the_choices(db_manager, tmp_path, posts):
    with pytest.raises(UnsupportedFormatError, match=r"\.jsonl"):
        DataWarehouseExporter(db_manager).export_collection("posts", tmp_path / "posts.data")
    assert list(tmp_path.iterdir()) == []


def test_a_format_given_overrides_the_file_name(db_manager, tmp_path, posts):
    path = tmp_path / "posts.data"
    result = DataWarehouseExporter(db_manager).export_collection("posts", path, "jsonl")
    assert (result.format, list(iter_documents(path, "jsonl"))) == ("jsonl", posts)


def test_export_all_checks_every_target_before_writing_any(db_manager, db, tmp_path, posts):
    db.authors.insert_one({"_id": 1})
    (tmp_path / "posts.jsonl").write_text("precious\n")
    exporter = DataWarehouseExporter(db_manager)
    with pytest.raises(FileExistsError, match="posts.jsonl already exists") as caught:
        exporter.export_all_collections(tmp_path, "jsonl", overwrite=False)
    assert "overwrite=True" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts.jsonl"]  # no authors.jsonl
    assert (tmp_path / "posts.jsonl").read_text() == "precious\n"


def test_a_parallel_export_all_checks_its_parts_manifests_before_writing_any(
    db_manager, db, tmp_path, posts
):
    db.authors.insert_one({"_id": 1})
    (tmp_path / "posts.parts.json").write_text("{}")
    with pytest.raises(FileExistsError, match="posts.parts.json already exists"):
        DataWarehouseExporter(db_manager).export_all_collections(
            tmp_path, "jsonl", overwrite=False, parallel=2
        )
    assert [p.name for p in tmp_path.iterdir()] == ["posts.parts.json"]
    with pytest.raises(FileExistsError) as caught:
        DataWarehouseExporter(db_manager).export_collection(
            "posts", tmp_path / "posts.jsonl", overwrite=False, parallel=2
        )
    assert str(caught.value).endswith("already exists; pass overwrite=True to replace it")


@pytest.mark.parametrize("kind", [DocumentType.RAW, "raw", "raw_documents"])
def test_export_by_document_type_reads_the_types_collection(db_manager, db, tmp_path, kind):
    load_corpus(db, raw_count=5)
    result = DataWarehouseExporter(db_manager).export_documents_by_type(
        kind, tmp_path / "raw.jsonl"
    )
    assert (result.collection, result.count, result.format) == ("raw_documents", 5, "jsonl")
    assert len((tmp_path / "raw.jsonl").read_text().splitlines()) == 5


def test_progress_is_told_about_every_document(db_manager, db, tmp_path):
    db.many.insert_many([{"_id": i} for i in range(2500)])
    progress = RecordingProgress()
    DataWarehouseExporter(db_manager).export_collection(
        "many", tmp_path / "many.jsonl", "jsonl", progress=progress
    )
    assert progress.tasks == [("export many", 2500, "docs")]
    assert (progress.advanced, progress.finished) == (2500, 1)


def test_a_progress_that_shows_no_totals_is_spared_the_count(db_manager, db, tmp_path):
    """Counting takes a full scan on the embedded warehouse (1.3 s per 200,000 documents):
    it is done only for a progress that shows the total."""
    db.many.insert_many([{"_id": i} for i in range(10)])
    progress = RecordingProgress()
    progress.shows_total = False  # type: ignore[attr-defined]
    exporter = DataWarehouseExporter(db_manager)
    exporter.export_collection("many", tmp_path / "many.jsonl", "jsonl", progress=progress)
    assert progress.tasks == [("export many", None, "docs")]
    assert progress.advanced == 10
