"""Backups (folder + manifest written last), verify, restore, migrate and status."""

from __future__ import annotations

import functools
import re
import socket
import stat
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from bson import ObjectId
from pymongo import monitoring

from hermes import __version__
from hermes.config import get_settings
from hermes.errors import (
    ConfirmationRequiredError,
    IntegrityError,
    InvalidNameError,
    WarehouseUnavailableError,
)
from hermes.formats import write_documents
from hermes.sample import load_corpus
from hermes.storage.database import MongoDBManager
from hermes.storage.warehouse import DataWarehouseManager, default_backup_dir
from tests.storage.warehouse_data import (
    LOSSLESS_FORMATS,
    RecordingProgress,
    every_type_document,
    raw_snapshot,
)


def indexes_of(collection) -> list[dict]:
    return [dict(index) for index in collection.list_indexes()]


def options_of(db, name: str) -> dict:
    [info] = list(db.list_collections(filter={"name": name}))
    return info["options"]


def manifest_of(folder: Path) -> dict:
    return orjson.loads((folder / "manifest.json").read_bytes())


def edit_manifest(folder: Path, change) -> None:
    data = manifest_of(folder)
    change(data)
    (folder / "manifest.json").write_bytes(orjson.dumps(data))


@pytest.fixture
def warehouse(db):
    """A small warehouse: the sample corpus, a unique and a compound index, a capped log."""
    load_corpus(db, raw_count=10)
    db.raw_documents.create_index("link", unique=True, name="link_unique")
    db.chunks.create_index([("document_id", 1), ("metadata.chunk_index", -1)])
    db.create_collection("events", capped=True, size=1 << 20, max=500)
    db.events.insert_many([every_type_document() for _ in range(3)])
    return db


@pytest.fixture
def manager(db_manager) -> DataWarehouseManager:
    return DataWarehouseManager(db_manager)


@pytest.fixture
def backup(manager, warehouse, tmp_path) -> Path:
    folder = tmp_path / "backup"
    manager.backup(folder, "jsonl")
    return folder


# ------------------------------------------------------------------------------------------
# Backup
# ------------------------------------------------------------------------------------------


def test_a_backup_holds_one_file_per_collection_and_a_manifest(manager, warehouse, tmp_path):
    result = manager.backup(tmp_path / "b", "jsonl")
    names = ["chunks", "cleaned_documents", "embedded_chunks", "events", "raw_documents"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        [f"{n}.jsonl" for n in names] + ["manifest.json"]
    )
    assert [r.collection for r in result.results] == names
    assert result.count == sum(warehouse[n].count_documents({}) for n in names)
    assert result.manifest == tmp_path / "b" / "manifest.json"


def test_the_manifest_describes_source_files_indexes_and_options(manager, warehouse, tmp_path):
    result = manager.backup(tmp_path / "b", "jsonl", compression="gzip")
    manifest = manifest_of(tmp_path / "b")
    assert manifest["hermes_version"] == __version__
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert (manifest["source"], manifest["database"]) == ("embedded", warehouse.name)
    raw = manifest["collections"]["raw_documents"]
    written = {r.collection: r for r in result.results}["raw_documents"]
    assert (raw["file"], raw["format"], raw["count"]) == ("raw_documents.jsonl.gz", "jsonl", 10)
    assert (raw["bytes"], raw["sha256"]) == (written.bytes, written.sha256)
    assert {"v": 2, "key": {"link": 1}, "name": "link_unique", "unique": True} in raw["indexes"]
    assert manifest["collections"]["events"]["options"] == {
        "capped": True,
        "size": 1 << 20,
        "max": 500,
    }


def test_the_manifest_never_holds_credentials(warehouse_server, database_name, tmp_path):
    admin = MongoDBManager(database=database_name, settings=get_settings())
    db = admin.get_database()
    db.command("createUser", "twin", pwd="s3cret-pw", roles=["readWrite"])
    db.items.insert_one({"_id": 1})
    uri = warehouse_server.uri.replace("mongodb://", "mongodb://twin:s3cret-pw@").replace(
        "/?", f"/{database_name}?"
    )
    try:
        with MongoDBManager(uri, database_name) as with_password:
            DataWarehouseManager(with_password).backup(tmp_path / "b", "jsonl")
        text = (tmp_path / "b" / "manifest.json").read_text()
        assert "s3cret-pw" not in text
        assert "mongodb://twin:***@127.0.0.1" in manifest_of(tmp_path / "b")["source"]
    finally:
        db.command("dropAllUsersFromDatabase")
        admin.client.drop_database(database_name)
        admin.close()


def test_backup_files_are_private(backup):
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in backup.iterdir()} == {0o600}


def test_an_existing_backup_is_not_overwritten_unless_asked(manager, warehouse, backup):
    before = manifest_of(backup)
    with pytest.raises(ConfirmationRequiredError, match="already exists") as caught:
        manager.backup(backup, "jsonl")
    assert str(caught.value).endswith("or pass overwrite=True to replace it")
    assert manifest_of(backup) == before
    manager.backup(backup, "jsonl", collections=["events"], overwrite=True)
    assert list(manifest_of(backup)["collections"]) == ["events"]
    assert sorted(p.name for p in backup.parent.iterdir()) == ["backup"]


def test_an_empty_folder_may_receive_a_backup(manager, warehouse, tmp_path):
    (tmp_path / "empty").mkdir()
    manager.backup(tmp_path / "empty", "jsonl", collections=["events"])
    assert (tmp_path / "empty" / "manifest.json").is_file()


def test_a_failed_backup_leaves_nothing_behind(manager, db, tmp_path):
    db.good.insert_one({"_id": 1})
    # A sub-document that looks like an Extended JSON wrapper cannot be written as JSON Lines.
    db.bad.insert_one({"_id": 1, "value": {"$oid": "not an ObjectId"}})
    with pytest.raises(ValueError, match="Extended JSON"):
        manager.backup(tmp_path / "b", "jsonl")
    assert list(tmp_path.iterdir()) == []


def test_backup_progress_counts_every_document_once(manager, warehouse, tmp_path):
    progress = RecordingProgress()
    result = manager.backup(tmp_path / "b", "jsonl", progress=progress, parallel=3)
    assert progress.tasks == [(f"backup {warehouse.name}", result.count, "docs")]
    assert (progress.advanced, progress.finished) == (result.count, 1)


def test_unknown_collections_are_refused(manager, warehouse, tmp_path):
    with pytest.raises(InvalidNameError, match="nope"):
        manager.backup(tmp_path / "b", "jsonl", collections=["raw_documents", "nope"])
    assert not (tmp_path / "b").exists()


def test_the_default_backup_folder_is_named_by_the_utc_time():
    folder = default_backup_dir("somewhere")
    assert folder.parent == Path("somewhere")
    assert re.fullmatch(r"\d{8}T\d{6}Z", folder.name)
    assert DataWarehouseManager.default_backup_dir().parent == Path("backups")


# ------------------------------------------------------------------------------------------
# Restore
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", LOSSLESS_FORMATS)
def test_restore_into_an_empty_database_gives_identical_collections(
    manager, warehouse, target_manager, target_db, tmp_path, file_format
):
    manager.backup(tmp_path / "b", file_format)
    report = DataWarehouseManager(target_manager).restore(tmp_path / "b", confirm=True)
    names = sorted(n for n in warehouse.list_collection_names())
    assert sorted(target_db.list_collection_names()) == names
    for name in names:
        assert raw_snapshot(target_db[name]) == raw_snapshot(warehouse[name]), name
        assert indexes_of(target_db[name]) == indexes_of(warehouse[name]), name
        assert options_of(target_db, name) == options_of(warehouse, name), name
    assert {r.collection: r.inserted for r in report.reports} == {
        n: warehouse[n].count_documents({}) for n in names
    }


def test_restore_replaces_only_the_collections_of_the_backup(manager, warehouse, backup):
    warehouse.raw_documents.insert_one({"_id": "added after the backup"})
    warehouse.notes.insert_one({"_id": 1, "text": "not in the backup"})
    before = raw_snapshot(warehouse.chunks)
    manager.restore(backup, confirm=True)
    assert warehouse.raw_documents.count_documents({"_id": "added after the backup"}) == 0
    assert list(warehouse.notes.find()) == [{"_id": 1, "text": "not in the backup"}]
    assert raw_snapshot(warehouse.chunks) == before


def test_restore_can_be_limited_to_some_collections(manager, warehouse, backup):
    warehouse.raw_documents.delete_many({})
    warehouse.chunks.delete_many({})
    report = manager.restore(backup, collections=["raw_documents"], confirm=True)
    assert [r.collection for r in report.reports] == ["raw_documents"]
    assert warehouse.raw_documents.count_documents({}) == 10
    assert warehouse.chunks.count_documents({}) == 0


def test_merge_restore_upserts_by_id_and_keeps_other_documents(manager, warehouse, backup):
    first = warehouse.raw_documents.find_one()
    warehouse.raw_documents.update_one({"_id": first["_id"]}, {"$set": {"platform": "edited"}})
    warehouse.raw_documents.insert_one({"_id": "newer", "link": "https://x/newer"})
    report = manager.restore(backup, collections=["raw_documents"], mode="merge", confirm=True)
    [restored] = report.reports
    assert (restored.updated, restored.unchanged, restored.inserted) == (1, 9, 0)
    assert warehouse.raw_documents.find_one({"_id": first["_id"]}) == first
    assert warehouse.raw_documents.count_documents({"_id": "newer"}) == 1


def test_merge_restore_creates_missing_collections_with_their_indexes(
    manager, warehouse, backup, target_manager, target_db
):
    DataWarehouseManager(target_manager).restore(backup, mode="merge", confirm=True)
    assert indexes_of(target_db.raw_documents) == indexes_of(warehouse.raw_documents)
    assert options_of(target_db, "events") == options_of(warehouse, "events")


def test_a_restore_that_fails_part_way_leaves_the_collection_as_it_was(manager, warehouse, backup):
    # A unique index the documents cannot satisfy: loading succeeds, building the index fails.
    impossible = {"v": 2, "key": {"platform": 1}, "name": "platform_unique", "unique": True}
    edit_manifest(backup, lambda m: m["collections"]["raw_documents"]["indexes"].append(impossible))
    warehouse.raw_documents.insert_one({"_id": "added after the backup"})
    before = raw_snapshot(warehouse.raw_documents)
    with pytest.raises(IntegrityError, match="indexes of 'raw_documents'.*platform_unique"):
        manager.restore(backup, collections=["raw_documents"], confirm=True)
    assert raw_snapshot(warehouse.raw_documents) == before
    assert not [n for n in warehouse.list_collection_names() if n.startswith("hermes_")]


class CommandNames(monitoring.CommandListener):
    """The names of the commands a client sends, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def watched(monkeypatch, target_manager) -> tuple[DataWarehouseManager, CommandNames]:
    """A manager of the target database on a new connection whose commands are recorded."""
    import pymongo

    commands = CommandNames()
    monkeypatch.setattr(
        pymongo, "MongoClient", functools.partial(pymongo.MongoClient, event_listeners=[commands])
    )
    manager = MongoDBManager(database=target_manager.database_name, settings=get_settings())
    yield DataWarehouseManager(manager), commands
    manager.close()


def test_a_collection_that_does_not_exist_is_loaded_under_its_own_name(
    warehouse, backup, watched, target_db
):
    manager, commands = watched
    manager.restore(backup, collections=["raw_documents"], confirm=True)
    assert "renameCollection" not in commands.names
    assert raw_snapshot(target_db.raw_documents) == raw_snapshot(warehouse.raw_documents)
    assert indexes_of(target_db.raw_documents) == indexes_of(warehouse.raw_documents)
    assert target_db.list_collection_names() == ["raw_documents"]


def test_an_existing_collection_is_replaced_by_a_rename(warehouse, backup, watched, target_db):
    manager, commands = watched
    target_db.raw_documents.insert_one({"_id": "there before"})
    manager.restore(backup, collections=["raw_documents"], confirm=True)
    assert "renameCollection" in commands.names
    assert raw_snapshot(target_db.raw_documents) == raw_snapshot(warehouse.raw_documents)


def test_a_failed_restore_of_a_new_collection_leaves_it_absent(
    warehouse, backup, target_manager, target_db
):
    impossible = {"v": 2, "key": {"platform": 1}, "name": "platform_unique", "unique": True}
    edit_manifest(backup, lambda m: m["collections"]["raw_documents"]["indexes"].append(impossible))
    with pytest.raises(IntegrityError, match="indexes of 'raw_documents'.*platform_unique"):
        DataWarehouseManager(target_manager).restore(
            backup, collections=["raw_documents"], confirm=True
        )
    assert target_db.list_collection_names() == []


def test_restore_needs_confirmation(manager, warehouse, backup):
    warehouse.raw_documents.delete_many({})
    with pytest.raises(ConfirmationRequiredError):
        manager.restore(backup)
    assert warehouse.raw_documents.count_documents({}) == 0


def test_a_dry_run_reports_the_plan_and_writes_nothing(manager, warehouse, backup):
    warehouse.raw_documents.delete_many({"platform": "medium"})
    warehouse.events.drop()
    before = {n: raw_snapshot(warehouse[n]) for n in warehouse.list_collection_names()}
    report = manager.restore(backup, dry_run=True)
    assert report.dry_run and report.reports == []
    plan = {c.collection: c for c in report.collections}
    assert plan["raw_documents"].documents == 10
    assert plan["raw_documents"].existing == warehouse.raw_documents.count_documents({})
    assert plan["raw_documents"].indexes == 1
    assert plan["events"].existing is None
    after = {n: raw_snapshot(warehouse[n]) for n in warehouse.list_collection_names()}
    assert after == before


def test_restore_refuses_a_damaged_backup_before_writing_anything(
    manager, warehouse, backup, target_manager, target_db
):
    path = backup / "chunks.jsonl"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"chunks\.jsonl: SHA-256 mismatch"):
        DataWarehouseManager(target_manager).restore(backup, confirm=True)
    assert target_db.list_collection_names() == []


def lock_holder(uri: str, database: str) -> subprocess.Popen:
    """Another process holding the restore lock of ``database`` until its stdin closes."""
    code = textwrap.dedent(
        f"""
        import sys
        from pymongo import MongoClient
        from hermes.storage._backup import database_lock
        with database_lock(MongoClient({uri!r})[{database!r}]):
            print("locked", flush=True)
            sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_restore_into_the_same_database_is_refused(
    manager, warehouse, backup, warehouse_server
):
    holder = lock_holder(warehouse_server.uri, warehouse.name)
    try:
        with pytest.raises(WarehouseUnavailableError, match=f"locked .*process {holder.pid}"):
            manager.restore(backup, confirm=True)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert manager.restore(backup, confirm=True).reports


def test_a_lock_left_by_a_dead_process_is_taken_over(manager, warehouse, backup):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    locks = warehouse.client["hermes_locks"]["locks"]
    stale = {"_id": warehouse.name, "token": "x", "host": socket.gethostname()}
    locks.insert_one({**stale, "pid": int(finished.stdout)})
    assert manager.restore(backup, confirm=True).reports
    assert locks.count_documents({"_id": warehouse.name}) == 0


# ------------------------------------------------------------------------------------------
# Verify
# ------------------------------------------------------------------------------------------


def test_a_fresh_backup_verifies(manager, backup):
    report = manager.verify(backup)
    assert report.ok and report.problems == []
    assert all(c.checksum_ok and c.actual_count == c.expected_count for c in report.collections)


def test_a_flipped_byte_is_found(manager, backup):
    path = backup / "raw_documents.jsonl"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    report = manager.verify(backup)
    assert not report.ok
    assert any(p.startswith("raw_documents.jsonl: SHA-256 mismatch") for p in report.problems)
    assert not {c.collection: c for c in report.collections}["raw_documents"].checksum_ok


def test_a_truncated_file_is_found(manager, backup):
    path = backup / "chunks.jsonl"
    path.write_bytes(path.read_bytes()[:-500])
    problems = manager.verify(backup).problems
    assert any("chunks.jsonl" in p and "bytes, manifest says" in p for p in problems)
    assert any("chunks.jsonl" in p and ("unreadable" in p or "documents" in p) for p in problems)


def test_a_missing_file_is_found(manager, backup):
    (backup / "events.jsonl").unlink()
    assert manager.verify(backup).problems == ["events.jsonl: missing"]


def test_a_wrong_checksum_in_the_manifest_is_found(manager, backup):
    edit_manifest(backup, lambda m: m["collections"]["events"].update(sha256="0" * 64))
    assert manager.verify(backup).problems == [
        f"events.jsonl: SHA-256 mismatch (file {manifest_sha(backup, 'events.jsonl')[:12]}…, "
        f"manifest {'0' * 12}…)"
    ]


def manifest_sha(folder: Path, name: str) -> str:
    from hermes.formats.base import sha256_file

    return sha256_file(folder / name)


def test_an_edited_count_is_found(manager, backup):
    edit_manifest(backup, lambda m: m["collections"]["events"].update(count=4))
    assert manager.verify(backup).problems == ["events.jsonl: 3 documents, manifest says 4"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.pop("database"), "field 'database' missing"),
        (lambda m: m["collections"]["events"].pop("sha256"), "field 'sha256' missing"),
        (
            lambda m: m["collections"]["events"].update(count="3"),
            "field 'count' missing or not an integer",
        ),
        (lambda m: m.update(collections=[]), "field 'collections' missing or not an object"),
        (lambda m: m.update(created_at="yesterday"), "not an ISO date"),
        (lambda m: m["collections"]["events"].update(format="xml"), "Unknown format 'xml'"),
    ],
)
def test_a_manifest_without_the_expected_fields_is_refused(manager, backup, change, problem):
    edit_manifest(backup, change)
    report = manager.verify(backup)
    assert not report.ok and any(problem in p for p in report.problems)


def test_a_manifest_that_is_not_json_is_refused(manager, backup):
    (backup / "manifest.json").write_text('{"collections": ')
    assert manager.verify(backup).problems[0].startswith("manifest.json: not valid JSON")


def test_a_folder_without_manifest_is_not_a_backup(manager, tmp_path):
    assert "manifest.json: missing" in manager.verify(tmp_path).problems[0]


@pytest.mark.parametrize(
    ("name", "file", "problem"),
    [
        ("events", "../outside.jsonl", "not a plain file name"),
        ("events", "/etc/passwd", "absolute path"),
        ("../../etc", "events.jsonl", "contains '/'"),
        ("system.users", "events.jsonl", "system collection"),
        ("a$b", "events.jsonl", "contains '$'"),
    ],
)
def test_names_that_try_to_escape_the_folder_are_refused(
    manager, backup, target_manager, target_db, name, file, problem
):
    (backup.parent / "outside.jsonl").write_bytes((backup / "events.jsonl").read_bytes())

    def change(manifest):
        entry = manifest["collections"].pop("events")
        manifest["collections"][name] = {**entry, "file": file}

    edit_manifest(backup, change)
    report = manager.verify(backup)
    assert any(problem in p for p in report.problems), report.problems
    with pytest.raises(IntegrityError, match=re.escape(problem)):
        DataWarehouseManager(target_manager).restore(backup, confirm=True)
    assert target_db.list_collection_names() == []


def test_a_symlink_pointing_outside_is_refused(manager, backup, tmp_path):
    outside = tmp_path / "outside.jsonl"
    (backup / "events.jsonl").rename(outside)
    (backup / "events.jsonl").symlink_to(outside)
    assert manager.verify(backup).problems == [
        "events.jsonl: symbolic link pointing outside the backup folder, refused"
    ]


# ------------------------------------------------------------------------------------------
# Migrate
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target_format", LOSSLESS_FORMATS)
def test_a_migrated_backup_verifies_and_restores_identically(
    manager, warehouse, backup, target_manager, target_db, tmp_path, target_format
):
    result = manager.migrate(backup, tmp_path / "migrated", "jsonl", target_format)
    assert manager.verify(tmp_path / "migrated").ok
    migrated = manifest_of(tmp_path / "migrated")
    original = manifest_of(backup)
    for name, entry in migrated["collections"].items():
        assert entry["format"] == result.target_format
        assert entry["count"] == original["collections"][name]["count"]
        assert entry["indexes"] == original["collections"][name]["indexes"]
        assert entry["options"] == original["collections"][name]["options"]
    DataWarehouseManager(target_manager).restore(tmp_path / "migrated", confirm=True)
    for name in warehouse.list_collection_names():
        assert raw_snapshot(target_db[name]) == raw_snapshot(warehouse[name]), name


def test_a_migrated_backup_is_dated_by_its_migration_and_names_its_source(
    manager, warehouse, tmp_path
):
    source = tmp_path / "backups" / "b-source"
    manager.backup(source, "jsonl", collections=["events"])
    edit_manifest(source, lambda m: m.update(created_at="2020-01-01T00:00:00Z"))
    manager.migrate(source, tmp_path / "backups" / "a-migrated", None, "parquet")
    migrated = manifest_of(tmp_path / "backups" / "a-migrated")
    assert datetime.fromisoformat(migrated["created_at"]).year > 2020
    assert migrated["source_created_at"] == "2020-01-01T00:00:00Z"
    assert migrated["migrated_from"] == str(source)
    assert manager.status(tmp_path / "backups").newest_backup == tmp_path / "backups" / "a-migrated"


def test_migrating_a_folder_checks_every_target_before_writing_any(manager, tmp_path):
    (tmp_path / "src").mkdir()
    write_documents(tmp_path / "src" / "a.jsonl", [{"_id": 1}], "jsonl")
    write_documents(tmp_path / "src" / "b.jsonl", [{"_id": 2}], "jsonl")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "b.json").write_text("precious")
    with pytest.raises(FileExistsError, match="b.json already exists"):
        manager.migrate(tmp_path / "src", tmp_path / "dst", "jsonl", "json")
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["b.json"]
    assert (tmp_path / "dst" / "b.json").read_text() == "precious"


def test_migrate_keeps_compression_and_converts_plain_folders(manager, tmp_path):
    documents = [every_type_document(ObjectId(f"{i:024x}")) for i in range(3)]
    (tmp_path / "src").mkdir()
    write_documents(tmp_path / "src" / "a.jsonl.gz", documents, "jsonl")
    write_documents(tmp_path / "src" / "b.jsonl", documents[:1], "jsonl")
    (tmp_path / "src" / "notes.txt").write_text("not data")
    (tmp_path / "src" / ".b.jsonl.3f9a1c.tmp").write_text('{"half": ')
    (tmp_path / "src" / ".draft.jsonl").write_text('{"half": ')
    result = manager.migrate(tmp_path / "src", tmp_path / "dst", "jsonl", "json")
    assert result.manifest is None
    assert [(r.collection, r.path.name, r.count) for r in result.results] == [
        ("a", "a.json.gz", 3),
        ("b", "b.json", 1),
    ]
    back = manager.migrate(tmp_path / "dst", tmp_path / "again", "json", "jsonl")
    assert [r.sha256 for r in back.results] == [
        manifest_sha(tmp_path / "src", "a.jsonl.gz"),
        manifest_sha(tmp_path / "src", "b.jsonl"),
    ]


def test_migrate_refuses_a_damaged_backup(manager, backup, tmp_path):
    (backup / "events.jsonl").write_text("{}\n")
    with pytest.raises(IntegrityError, match="events.jsonl"):
        manager.migrate(backup, tmp_path / "migrated", "jsonl", "json")
    assert not (tmp_path / "migrated").exists()


# ------------------------------------------------------------------------------------------
# Status
# ------------------------------------------------------------------------------------------


def test_status_shows_collections_and_the_newest_backup(manager, warehouse, tmp_path):
    older = manager.backup(tmp_path / "backups" / "older", "jsonl", collections=["events"])
    newer = manager.backup(tmp_path / "backups" / "newer", "jsonl", collections=["events"])
    edit_manifest(older.path, lambda m: m.update(created_at="2020-01-01T00:00:00Z"))
    status = manager.status(tmp_path / "backups")
    assert status.database == warehouse.name
    assert status.location.startswith("embedded warehouse in ")
    counts = {c.name: c.count for c in status.collections}
    assert counts == {
        n: warehouse[n].count_documents({}) for n in warehouse.list_collection_names()
    }
    assert all(c.size and c.size > 0 for c in status.collections)
    assert status.newest_backup == newer.path


def test_status_without_backups(manager, warehouse, tmp_path):
    status = manager.status(tmp_path / "none")
    assert status.newest_backup is None and status.newest_backup_created is None
