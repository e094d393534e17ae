"""``hermes export`` and ``hermes import-data`` on the embedded warehouse."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.cli.conftest import documents
from tests.strategies import same_bson


def test_export_writes_every_collection_and_import_restores_them_exactly(
    run, sample, db_manager, other_database, tmp_path
):
    exported = run("export", "--format", "jsonl")
    assert exported.exit_code == 0, exported.output
    files = sorted(p.name for p in (tmp_path / "exports").iterdir())
    assert files == sorted(f"{name}.jsonl" for name in sample)
    for name, count in sample.items():
        [row] = [line for line in exported.stdout.splitlines() if f"/{name}.jsonl" in line]
        assert f" {name} " in row
        assert f" {count} " in row

    imported = run("import-data", "--input-dir", "exports", database=other_database.database_name)
    assert imported.exit_code == 0, imported.output
    for name in sample:
        assert same_bson(documents(db_manager, name), documents(other_database, name))


@pytest.mark.parametrize(
    ("file_format", "options"),
    [
        ("json", ["--json-format", "canonical"]),
        ("parquet", []),
        ("csv", []),
        ("jsonl", ["--compression", "gzip"]),
        ("tsv", ["--compression", "zstd"]),
    ],
)
def test_one_collection_round_trips_through_each_format(
    run, sample, db_manager, other_database, tmp_path, file_format, options
):
    exported = run("export", "-c", "odd", "--format", file_format, *options)
    assert exported.exit_code == 0, exported.output
    [written] = list((tmp_path / "exports").iterdir())
    imported = run("import-data", "--input-file", written, database=other_database.database_name)
    assert imported.exit_code == 0, imported.output
    assert same_bson(documents(db_manager, "odd"), documents(other_database, "odd"))


def test_export_filters_projects_sorts_and_limits(run, sample, db, tmp_path):
    result = run(
        "export",
        "-c",
        "odd",
        "--format",
        "jsonl",
        "--query",
        '{"views": {"$gte": 1}}',
        "--fields",
        "title,views",
        "--sort",
        "-views",
        "--limit",
        "1",
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "exports" / "odd.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}, "title": "Zoë's café 🚀", "views": 2**40}
    ]


def test_export_query_accepts_extended_json(run, sample, tmp_path):
    result = run(
        "export", "-c", "odd", "--format", "jsonl",
        "--query", '{"_id": {"$oid": "65a1b2c3d4e5f60718293a4b"}}',
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "exports" / "odd.jsonl").read_text().splitlines()) == 1


def test_existing_output_is_refused_before_anything_is_written(run, sample, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "odd.json").write_text("keep me")
    result = run("export", "--format", "json")
    assert result.exit_code == 2
    assert "odd.json" in result.stderr
    assert "--force" in result.stderr
    assert [p.name for p in out.iterdir()] == ["odd.json"]
    assert (out / "odd.json").read_text() == "keep me"

    forced = run("export", "--format", "json", "--force")
    assert forced.exit_code == 0, forced.output
    assert (out / "odd.json").read_text() != "keep me"


def test_unknown_collection_is_an_input_error(run, sample, tmp_path):
    result = run("export", "-c", "no_such_collection")
    assert result.exit_code == 2
    assert "no_such_collection" in result.stderr
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_quiet_prints_nothing_on_success(run, sample):
    result = run("--quiet", "export", "-c", "odd")
    assert result.exit_code == 0
    assert result.output == ""


def test_import_collection_defaults_to_the_file_name(run, db, tmp_path):
    (tmp_path / "posts.jsonl.gz").write_bytes(gzip.compress(b'{"_id": 1}\n{"_id": 2}\n'))
    result = run("import-data", "--input-file", "posts.jsonl.gz")
    assert result.exit_code == 0, result.output
    assert sorted(d["_id"] for d in db["posts"].find()) == [1, 2]
    assert "posts" in result.stdout


def test_import_with_rejected_records_exits_1_and_names_the_rejects_file(run, db, tmp_path):
    (tmp_path / "things.jsonl").write_text('{"_id": 1}\n{not json\n{"_id": 1}\n{"_id": 2}\n')
    result = run("import-data", "--input-file", "things.jsonl", "--rejects-file", "bad.jsonl")
    assert result.exit_code == 1, result.output
    assert "bad.jsonl" in result.stderr
    assert "2 record(s) of things rejected" in result.stderr
    assert sorted(d["_id"] for d in db["things"].find()) == [1, 2]
    rejects = (tmp_path / "bad.jsonl").read_text().splitlines()
    assert len(rejects) == 2
    assert "line 2" in rejects[0]


def test_stop_on_error_stops_with_exit_2(run, db, tmp_path):
    (tmp_path / "things.jsonl").write_text('{"_id": 1}\n{not json\n{"_id": 2}\n')
    result = run("import-data", "--input-file", "things.jsonl", "--stop-on-error")
    assert result.exit_code == 2
    assert "things.jsonl" in result.stderr
    assert "line 2" in result.stderr


def test_upsert_makes_a_rerun_idempotent(run, db, tmp_path):
    (tmp_path / "things.jsonl").write_text('{"_id": 1, "v": "a"}\n{"_id": 2, "v": "b"}\n')
    assert run("import-data", "--input-file", "things.jsonl").exit_code == 0
    (tmp_path / "things.jsonl").write_text('{"_id": 1, "v": "new"}\n{"_id": 2, "v": "b"}\n')
    result = run("import-data", "--input-file", "things.jsonl", "--mode", "upsert")
    assert result.exit_code == 0, result.output
    assert {d["_id"]: d["v"] for d in db["things"].find()} == {1: "new", 2: "b"}


def test_document_type_validates_into_its_collection(run, db, sample, tmp_path):
    run("export", "-c", "raw_documents", "--format", "jsonl")
    lines = (tmp_path / "exports" / "raw_documents.jsonl").read_text().splitlines()
    (tmp_path / "incoming.jsonl").write_text("\n".join([*lines, '{"_id": "x", "content": 5}']))
    db["raw_documents"].drop()
    result = run("import-data", "--input-file", "incoming.jsonl", "--document-type", "raw")
    assert result.exit_code == 1, result.output
    assert db["raw_documents"].count_documents({}) == len(lines)
    assert "incoming" not in db.list_collection_names()


def test_drop_replaces_the_collection(run, db, tmp_path):
    db["things"].insert_one({"_id": "old"})
    (tmp_path / "things.json").write_text('[{"_id": "new"}]')
    result = run("import-data", "--input-file", "things.json", "--drop")
    assert result.exit_code == 0, result.output
    assert [d["_id"] for d in db["things"].find()] == ["new"]


def test_import_into_a_named_collection_with_an_explicit_format(run, db, tmp_path):
    (tmp_path / "data.txt").write_text('{"_id": 1}\n')
    result = run(
        "import-data", "--input-file", "data.txt", "--format", "jsonl", "--collection", "c"
    )
    assert result.exit_code == 0, result.output
    assert db["c"].count_documents({}) == 1


def test_unknown_file_format_is_an_input_error(run, db, tmp_path):
    (tmp_path / "data.xml").write_text("<a/>")
    result = run("import-data", "--input-file", "data.xml")
    assert result.exit_code == 2
    assert "data.xml" in result.stderr


def test_export_for_spreadsheets_neutralizes_formulas(run, db, tmp_path):
    db["sheet"].insert_many(
        [{"_id": 1, "cell": '=HYPERLINK("http://x")'}, {"_id": 2, "cell": "ok"}]
    )
    exported = run("export", "-c", "sheet", "--format", "csv", "--neutralize-formulas")
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "exports" / "sheet.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK" in text
    assert ",ok" in text


def test_formula_neutralization_is_for_csv_only(run, db, tmp_path):
    db["sheet"].insert_one({"_id": 1, "cell": "=1+1"})
    refused = run("export", "-c", "sheet", "--format", "jsonl", "--neutralize-formulas")
    assert refused.exit_code == 2
    assert "--neutralize-formulas" in refused.output
    assert not (tmp_path / "exports").exists()
