"""Importing files into collections: modes, rejects with their source location, validation,
strict mode, and files written by other tools."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import bson
import orjson
import pytest
from bson import ObjectId

from hermes.domain.documents import DocumentType, RawDocument
from hermes.errors import (
    FormatError,
    InvalidNameError,
    MissingFileError,
    ValidationFailedError,
)
from hermes.formats import extjson, rawjson, write_documents
from hermes.storage.warehouse import DataWarehouseImporter
from tests.storage.warehouse_data import RecordingProgress, format_params, raw_snapshot


def jsonl(path, *lines: str):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rejects_of(report) -> list[dict]:
    return [orjson.loads(line) for line in report.rejects_file.read_bytes().splitlines()]


def raw_article(index: int, **changes) -> dict:
    document = {
        "_id": str(uuid.UUID(int=index, version=4)),
        "platform": "medium",
        "author_id": str(uuid.UUID(int=1000 + index, version=4)),
        "author_full_name": "Zoë Ångström",
        "link": f"https://medium.com/@zoe/{index}",
        "content": {"Title": f"Post {index}", "Content": "Text."},
        "created_at": datetime(2024, 1, 1 + index, tzinfo=timezone.utc),
    }
    document.update(changes)
    return document


@pytest.fixture
def importer(db_manager) -> DataWarehouseImporter:
    return DataWarehouseImporter(db_manager)


# ------------------------------------------------------------------------------------------
# Insert mode and rejects
# ------------------------------------------------------------------------------------------


def test_insert_rejects_duplicate_keys_with_their_line(importer, db, tmp_path):
    db.items.insert_one({"_id": 2, "old": True})
    path = jsonl(tmp_path / "items.jsonl", '{"_id": 1}', '{"_id": 2}', '{"_id": 3}', '{"_id": 1}')
    report = importer.import_collection("items", path)
    assert (report.read, report.inserted, report.rejected) == (4, 2, 2)
    assert report.rejects_file == tmp_path / "items.jsonl.rejects.jsonl"
    rejects = rejects_of(report)
    assert [(r["location"], r["record"]) for r in rejects] == [
        ("line 2", {"_id": 2}),
        ("line 4", {"_id": 1}),
    ]
    assert all(r["reason"].startswith("duplicate key") for r in rejects)
    assert all(r["source"] == str(path) for r in rejects)
    assert db.items.find_one({"_id": 2}) == {"_id": 2, "old": True}


def test_a_malformed_line_is_rejected_and_the_rest_imported(importer, db, tmp_path):
    path = jsonl(tmp_path / "items.jsonl", '{"_id": 1}', '{"_id": 2,', "", '{"_id": 3}')
    report = importer.import_collection("items", path)
    assert (report.read, report.inserted, report.rejected) == (3, 2, 1)
    [reject] = rejects_of(report)
    assert reject["location"] == "line 2, column 11"
    assert "malformed JSON" in reject["reason"]
    assert reject["record"] == '{"_id": 2,'
    assert report.errors == [f"line 2, column 11: {reject['reason']}"]
    assert sorted(d["_id"] for d in db.items.find()) == [1, 3]


def test_no_rejects_file_is_left_when_nothing_is_rejected(importer, tmp_path):
    path = jsonl(tmp_path / "items.jsonl", '{"_id": 1}')
    stale = tmp_path / "items.jsonl.rejects.jsonl"
    stale.write_text('{"from": "an earlier run"}\n')
    report = importer.import_collection("items", path)
    assert report.rejects_file is None and report.rejected == 0
    assert not stale.exists()


def test_rejects_go_where_asked(importer, tmp_path):
    path = jsonl(tmp_path / "items.jsonl", "not json")
    target = tmp_path / "elsewhere" / "bad.jsonl"
    report = importer.import_collection("items", path, rejects_file=target)
    assert report.rejects_file == target
    assert rejects_of(report)[0]["location"] == "line 1, column 1"


def test_documents_without_an_id_get_one(importer, db, tmp_path):
    report = importer.import_collection("items", jsonl(tmp_path / "i.jsonl", '{"a": 1}'))
    assert report.inserted == 1
    assert isinstance(db.items.find_one()["_id"], ObjectId)


def test_a_document_over_16_mb_is_rejected_alone(importer, db, tmp_path):
    path = tmp_path / "big.jsonl"
    huge = {"_id": "huge", "text": "x" * (16 * 1024 * 1024)}
    write_documents(path, [{"_id": "small"}, huge, {"_id": "after"}], "jsonl")
    report = importer.import_collection("items", path)
    assert (report.inserted, report.rejected) == (2, 1)
    assert report.errors[0].startswith("line 2: document too large")
    assert "16,777,216" in report.errors[0]
    assert sorted(d["_id"] for d in db.items.find()) == ["after", "small"]


def _nested(levels: int) -> dict:
    document: dict = {"leaf": 1}
    for _ in range(levels - 2):
        document = {"a": document}
    return {"_id": levels, "deep": document}


@pytest.mark.parametrize("read_off", ["bson", "dicts"])
def test_documents_nested_past_mongodbs_100_levels_are_rejected(
    importer, db, tmp_path, monkeypatch, read_off
):
    """The depth is read off the encoded BSON by the C encoder, or by walking the documents
    when it is not built: both find the same documents too deep."""
    if read_off == "dicts":
        monkeypatch.setattr(rawjson, "nesting_exceeds", lambda raw, limit: None)
    path = tmp_path / "deep.jsonl"
    write_documents(path, [_nested(100), _nested(101), _nested(200)], "jsonl")
    report = importer.import_collection("items", path)
    assert (report.inserted, report.rejected) == (1, 2)
    assert [error.split(":")[0] for error in report.errors] == ["line 2", "line 3"]
    assert all("nesting deeper than 100 levels" in error for error in report.errors)
    assert [d["_id"] for d in db.items.find()] == [100]


def test_a_key_bson_cannot_hold_is_rejected_with_the_reason(importer, db, tmp_path):
    path = jsonl(tmp_path / "i.jsonl", '{"_id": 1, "bad\\u0000key": 1}', '{"_id": 2}')
    report = importer.import_collection("items", path)
    assert (report.inserted, report.rejected) == (1, 1)
    assert "not storable as BSON" in report.errors[0] and "line 1" in report.errors[0]


def test_an_integer_beyond_64_bits_is_rejected_never_stored_as_another_number(
    importer, db, tmp_path
):
    path = jsonl(
        tmp_path / "i.jsonl", '{"_id": 1, "n": 123456789012345678901234567890}', '{"_id": 2}'
    )
    report = importer.import_collection("items", path)
    assert (report.inserted, report.rejected) == (1, 1)
    assert "line 1" in report.errors[0] and "8-byte ints" in report.errors[0]
    assert [d["_id"] for d in db.items.find()] == [2]


def test_drop_empties_the_collection_first(importer, db, tmp_path):
    db.items.insert_many([{"_id": 1}, {"_id": 99}])
    report = importer.import_collection(
        "items", jsonl(tmp_path / "i.jsonl", '{"_id": 1}'), drop=True
    )
    assert report.inserted == 1
    assert list(db.items.find()) == [{"_id": 1}]


def test_a_missing_file_fails_before_dropping_anything(importer, db, tmp_path):
    db.items.insert_one({"_id": 1})
    with pytest.raises(MissingFileError):
        importer.import_collection("items", tmp_path / "nope.jsonl", drop=True)
    assert db.items.count_documents({}) == 1


@pytest.mark.parametrize("name", ["", "a$b", "sys\x00tem", "../escape", "system.users", ".hidden"])
def test_unsafe_collection_names_are_refused(importer, tmp_path, name):
    with pytest.raises(InvalidNameError):
        importer.import_collection(name, jsonl(tmp_path / "i.jsonl", "{}"))


def test_an_unknown_mode_is_refused(importer, tmp_path):
    with pytest.raises(FormatError, match="mode"):
        importer.import_collection("items", jsonl(tmp_path / "i.jsonl", "{}"), mode="append")


def test_progress_counts_every_record_read(importer, tmp_path):
    lines = [f'{{"_id": {i}}}' for i in range(2500)]
    progress = RecordingProgress()
    importer.import_collection("items", jsonl(tmp_path / "i.jsonl", *lines), progress=progress)
    assert progress.tasks == [("import items", None, "docs")]
    assert (progress.advanced, progress.finished) == (2500, 1)


# ------------------------------------------------------------------------------------------
# Strict mode
# ------------------------------------------------------------------------------------------


def test_stop_on_error_raises_at_a_malformed_line(importer, tmp_path):
    path = jsonl(tmp_path / "i.jsonl", '{"_id": 1}', "{oops")
    with pytest.raises(FormatError) as caught:
        importer.import_collection("items", path, stop_on_error=True)
    assert caught.value.location == "line 2, column 2" and caught.value.path == str(path)


def test_stop_on_error_raises_at_a_duplicate_and_writes_nothing_after_it(importer, db, tmp_path):
    path = jsonl(tmp_path / "i.jsonl", '{"_id": 1}', '{"_id": 1}', '{"_id": 2}')
    with pytest.raises(ValidationFailedError, match=r"i\.jsonl, line 2: duplicate key"):
        importer.import_collection("items", path, stop_on_error=True)
    assert [d["_id"] for d in db.items.find()] == [1]


def test_stop_on_error_raises_at_an_invalid_document(importer, db, tmp_path):
    path = tmp_path / "raw.jsonl"
    write_documents(path, [raw_article(1), raw_article(2, platform=None)], "jsonl")
    with pytest.raises(ValidationFailedError, match="line 2: invalid RawDocument: platform"):
        importer.import_collection("items", path, document_class=RawDocument, stop_on_error=True)
    assert db.items.count_documents({}) == 1


@pytest.mark.parametrize(
    ("name", "text", "first_bad"),
    [
        ("parse.jsonl", '{"_id": 1}\n{"_id": 2}\n{oops\n{"_id": 4}\n', "line 3, column 2"),
        ("element.json", '[{"_id": 1},\n{"_id": 2},\n5,\n{"_id": 4}]', "item 3 (line 3)"),
        ("syntax.json", '[{"_id": 1},\n{"_id": 2}\n{"_id": 3}]', "line 3, column 1"),
        ("row.csv", "_id.int32()\n1\n2\nthree\n4\n", "row 3 (line 4)"),
    ],
)
def test_stop_on_error_writes_every_record_before_the_first_bad_one_and_none_after(
    importer, db, tmp_path, name, text, first_bad
):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FormatError) as caught:
        importer.import_collection("items", path, batch_size=1000, stop_on_error=True)
    assert caught.value.location == first_bad
    assert sorted(d["_id"] for d in db.items.find()) == [1, 2]


@pytest.mark.parametrize(
    ("lines", "error", "first_bad", "written"),
    [
        (["invalid", "{oops", "valid"], ValidationFailedError, "line 1", []),
        (["valid", "{oops", "invalid"], FormatError, "line 2, column 2", [1]),
        (["valid", "invalid", "valid"], ValidationFailedError, "line 2", [1]),
    ],
)
def test_stop_on_error_names_the_first_bad_record_whatever_is_wrong_with_it(
    importer, db, tmp_path, lines, error, first_bad, written
):
    records = {
        "valid": lambda i: extjson.dumps(raw_article(i)).decode(),
        "invalid": lambda i: extjson.dumps(raw_article(i, platform=None)).decode(),
        "{oops": lambda i: "{oops",
    }
    path = jsonl(tmp_path / "raw.jsonl", *(records[kind](i) for i, kind in enumerate(lines, 1)))
    with pytest.raises(error) as caught:
        importer.import_collection("raw", path, document_class=RawDocument, stop_on_error=True)
    assert caught.value.location == first_bad
    expected = [str(uuid.UUID(int=i, version=4)) for i in written]
    assert sorted(d["_id"] for d in db.raw.find()) == expected


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


def test_invalid_documents_are_rejected_with_the_validation_message(importer, db, tmp_path):
    path = tmp_path / "raw.jsonl"
    documents = [raw_article(1), raw_article(2, content="not a dict"), raw_article(3)]
    del documents[2]["link"]
    write_documents(path, documents, "jsonl")
    report = importer.import_collection("raw", path, document_class=RawDocument)
    assert (report.inserted, report.rejected) == (1, 2)
    reasons = {r["location"]: r["reason"] for r in rejects_of(report)}
    assert reasons["line 2"].startswith("invalid RawDocument: content")
    assert reasons["line 3"] == "invalid RawDocument: link: Field required"
    assert rejects_of(report)[0]["record"]["content"] == "not a dict"


def test_validation_decides_only_whether_a_document_is_stored_never_how(importer, db, tmp_path):
    """A valid document is stored exactly as the file holds it: no default added (the model
    would set ``created_at`` to the import time), no field converted or reordered."""
    article = {**raw_article(1), "created_at": "2024-03-01T12:00:00Z"}
    without_date = {k: v for k, v in reversed(raw_article(2).items()) if k != "created_at"}
    path = tmp_path / "raw.jsonl"
    write_documents(path, [article, without_date], "jsonl")
    report = importer.import_collection("raw", path, document_class=RawDocument)
    assert (report.inserted, report.rejected) == (2, 0)
    assert raw_snapshot(db.raw) == [bson.encode(article), bson.encode(without_date)]


@pytest.mark.parametrize("kind", [DocumentType.RAW, "raw"])
def test_import_by_type_validates_into_the_types_collection(importer, db, tmp_path, kind):
    path = tmp_path / "raw.jsonl"
    write_documents(path, [raw_article(1), raw_article(2, link=None)], "jsonl")
    report = importer.import_documents_by_type(kind, path)
    assert (report.collection, report.inserted, report.rejected) == ("raw_documents", 1, 1)
    assert db.raw_documents.count_documents({}) == 1


# ------------------------------------------------------------------------------------------
# Upsert and merge
# ------------------------------------------------------------------------------------------


def test_an_upsert_import_run_twice_gives_the_same_collection(importer, db, tmp_path):
    path = tmp_path / "raw.jsonl"
    write_documents(path, [raw_article(i) for i in range(5)], "jsonl")
    first = importer.import_collection("raw", path, mode="upsert")
    snapshot = raw_snapshot(db.raw)
    second = importer.import_collection("raw", path, mode="upsert")
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 5)
    assert raw_snapshot(db.raw) == snapshot


def test_upsert_replaces_the_whole_matched_document(importer, db, tmp_path):
    db.raw.insert_one({**raw_article(1), "stale_field": True})
    path = tmp_path / "raw.jsonl"
    write_documents(path, [raw_article(1, platform="substack"), raw_article(2)], "jsonl")
    report = importer.import_collection("raw", path, mode="upsert")
    assert (report.inserted, report.updated) == (1, 1)
    assert db.raw.find_one({"_id": raw_article(1)["_id"]}) == raw_article(1, platform="substack")


def test_upsert_can_match_on_other_fields(importer, db, tmp_path):
    db.raw.insert_one(raw_article(1, platform="old"))
    path = tmp_path / "raw.jsonl"
    incoming = raw_article(1, platform="new")
    write_documents(path, [incoming], "jsonl")
    report = importer.import_collection("raw", path, mode="upsert", upsert_fields="link,author_id")
    assert report.updated == 1
    assert list(db.raw.find()) == [incoming]


def test_merge_sets_the_files_fields_and_keeps_the_others(importer, db, tmp_path):
    db.raw.insert_one({"_id": "a", "title": "Old", "kept": 1})
    path = jsonl(
        tmp_path / "m.jsonl",
        '{"_id": "a", "title": "New", "tags.v2": ["x"]}',
        '{"_id": "b", "title": "Fresh"}',
    )
    report = importer.import_collection("raw", path, mode="merge")
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 0)
    assert db.raw.find_one({"_id": "a"}) == {
        "_id": "a",
        "title": "New",
        "kept": 1,
        "tags.v2": ["x"],
    }
    assert db.raw.find_one({"_id": "b"}) == {"_id": "b", "title": "Fresh"}
    again = importer.import_collection("raw", path, mode="merge")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


def test_merge_matched_on_another_field_keeps_the_stored_id(importer, db, tmp_path):
    db.raw.insert_one({"_id": "stored", "link": "https://x/1", "views": 1})
    path = jsonl(
        tmp_path / "m.jsonl",
        '{"_id": "other", "link": "https://x/1", "views": 2}',
        '{"_id": "new", "link": "https://x/2", "views": 3}',
    )
    importer.import_collection("raw", path, mode="merge", upsert_fields=["link"])
    assert list(db.raw.find(sort=[("link", 1)])) == [
        {"_id": "stored", "link": "https://x/1", "views": 2},
        {"_id": "new", "link": "https://x/2", "views": 3},
    ]


# ------------------------------------------------------------------------------------------
# Folders and other tools' files
# ------------------------------------------------------------------------------------------


def test_import_all_names_collections_after_their_files(importer, db, tmp_path):
    write_documents(tmp_path / "raw_documents.jsonl.gz", [{"_id": 1}], "jsonl")
    write_documents(tmp_path / "chunks.jsonl", [{"_id": 2}, {"_id": 3}], "jsonl")
    (tmp_path / "manifest.json").write_text("{}")
    jsonl(tmp_path / "chunks.jsonl.rejects.jsonl", '{"reason": "old"}')
    reports = importer.import_all_collections(tmp_path, "jsonl")
    assert [(r.collection, r.inserted) for r in reports] == [("chunks", 2), ("raw_documents", 1)]
    assert sorted(db.list_collection_names()) == ["chunks", "raw_documents"]


@pytest.mark.parametrize("bad_name", ["system.users.jsonl", "a$b.jsonl"])
def test_import_all_refuses_bad_names_before_writing_anything(importer, db, tmp_path, bad_name):
    jsonl(tmp_path / "aaa.jsonl", '{"_id": 1}')
    jsonl(tmp_path / bad_name, '{"_id": 1}')
    with pytest.raises(InvalidNameError):
        importer.import_all_collections(tmp_path, "jsonl")
    assert db.list_collection_names() == []


@pytest.mark.parametrize("hidden", [".hidden.json", ".jsonl", ".chunks.jsonl.k2j4h1.tmp"])
def test_import_all_skips_hidden_files(importer, db, tmp_path, hidden):
    jsonl(tmp_path / "items.jsonl", '{"_id": 1}')
    (tmp_path / hidden).write_text("[{half a write")
    reports = importer.import_all_collections(tmp_path, None)
    assert [(r.collection, r.inserted, r.rejected) for r in reports] == [("items", 1, 0)]
    assert db.list_collection_names() == ["items"]


def test_rejects_of_a_folder_import_can_go_to_another_folder(importer, tmp_path):
    (tmp_path / "in").mkdir()
    jsonl(tmp_path / "in" / "items.jsonl", "oops")
    [report] = importer.import_all_collections(
        tmp_path / "in", "jsonl", rejects_file=tmp_path / "rejects"
    )
    assert report.rejects_file == tmp_path / "rejects" / "items.jsonl.rejects.jsonl"


def handbook_articles() -> list[dict]:
    """Documents as the LLM Engineer's Handbook's ``tools/data_warehouse.py`` exports them."""
    return [
        {
            "_id": str(uuid.uuid4()),
            "content": {"Title": "Fine-tuning LLMs", "Content": "Text…", "language": "en"},
            "platform": "medium",
            "author_id": str(uuid.uuid4()),
            "author_full_name": "Paul Iusztin",
            "link": f"https://medium.com/@paul/{i}",
            "created_at": "2024-06-01T10:00:00" if i % 2 else "2024-06-01 10:00:00",
        }
        for i in range(4)
    ]


@pytest.mark.parametrize("file_format", format_params("json"))
def test_a_handbook_export_imports_as_it_is(importer, db, tmp_path, file_format):
    articles = handbook_articles()
    path = tmp_path / "ArticleDocument.json"
    with path.open("w") as handle:
        json.dump(articles, handle)
    report = importer.import_collection("raw_documents", path, file_format)
    assert (report.read, report.inserted, report.rejected) == (4, 4, 0)
    assert list(db.raw_documents.find()) == articles


@pytest.mark.parametrize("file_format", format_params("json"))
def test_a_handbook_export_validates_as_raw_documents(importer, db, tmp_path, file_format):
    path = tmp_path / "ArticleDocument.json"
    path.write_text(json.dumps(handbook_articles()))
    report = importer.import_documents_by_type("raw", path, file_format=file_format)
    assert (report.inserted, report.rejected) == (4, 0)
    assert list(db.raw_documents.find()) == json.loads(path.read_text())  # as written


def test_rejected_records_are_written_as_extended_json(importer, tmp_path):
    document = {"_id": ObjectId(), "when": datetime(2024, 1, 1, tzinfo=timezone.utc)}
    path = tmp_path / "i.jsonl"
    write_documents(path, [document, document], "jsonl")
    report = importer.import_collection("items", path)
    [reject] = rejects_of(report)
    assert extjson.from_extended(reject["record"]) == document
