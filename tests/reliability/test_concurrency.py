"""Other clients at work during Hermes' operations: a second restore into the same database is
refused (not interleaved), and an export while others write exports each document that existed
for the whole export exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from pymongo import MongoClient

from hermes.errors import WarehouseUnavailableError
from hermes.formats import iter_documents
from hermes.sample import iter_collection
from hermes.storage._backup import LOCK_DATABASE
from hermes.storage.warehouse import DataWarehouseExporter, DataWarehouseManager
from tests.reliability.faults import damage, expected_bson, stored_bson

VOLATILE = 10_000  # _id of the first document the writer deletes
VOLATILE_COUNT = 500


def test_a_second_restore_while_one_runs_is_refused_and_the_first_is_whole(
    db, db_manager, warehouse_server, tmp_path, ledger
):
    documents = [
        {**document, "padding": "x" * 5000} for document in iter_collection("raw_documents", 4000)
    ]
    db["big"].insert_many(documents)
    backup = DataWarehouseManager(db_manager).backup(tmp_path / "backup").path
    target = f"{db.name}_target"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hermes",
            "--uri",
            warehouse_server.uri,
            "--database",
            target,
            "restore",
            "--backup-dir",
            str(backup),
            "--confirm",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MongoClient(warehouse_server.uri)
    try:
        locks = client[LOCK_DATABASE]["locks"]
        deadline = time.monotonic() + 30
        while locks.find_one({"_id": target}) is None:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.005)
        second = DataWarehouseManager(type(db_manager)(database=target))
        with pytest.raises(WarehouseUnavailableError, match=f"locked .*process {first.pid}"):
            second.restore(backup, confirm=True)
        assert first.wait(timeout=60) == 0, first.communicate()
        lost = damage(expected_bson(documents), stored_bson(client[target]["big"]))
        ledger.record("second restore during a restore", documents=len(documents), lost=lost)
        assert lost == 0
    finally:
        client.drop_database(target)
        client.close()


class Writer(threading.Thread):
    """Another client: inserts new documents, rewrites (and grows) existing ones, and deletes
    the volatile ones, in a loop until told to stop."""

    def __init__(self, uri: str, database: str, stable: list[int]) -> None:
        super().__init__(daemon=True)
        self.client = MongoClient(uri)
        self.collection = self.client[database]["live"]
        self.stable = stable
        self.stop = threading.Event()
        self.inserted = self.updated = self.deleted = 0

    def run(self) -> None:
        next_id = 1_000_000
        while not self.stop.is_set():
            self.collection.insert_one({"_id": next_id, "kind": "new"})
            next_id += 1
            self.inserted += 1
            key = self.stable[self.updated % len(self.stable)]
            self.collection.update_one({"_id": key}, {"$set": {"version": 2, "grown": "y" * 2000}})
            self.updated += 1
            gone = self.collection.delete_one({"_id": VOLATILE + self.deleted % VOLATILE_COUNT})
            self.deleted += gone.deleted_count
        self.client.close()


class InterleaveWrites:
    """A progress that, each time the export reports progress, lets the writer do ``writes``
    more rounds before the export goes on: the export and the writes interleave for sure."""

    def __init__(self, writer: Writer, writes: int = 15) -> None:
        self.writer = writer
        self.writes = writes

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        pass

    def advance(self, count: int = 1) -> None:
        if self.writer.ident is None:
            self.writer.start()
        goal = self.writer.updated + self.writes
        deadline = time.monotonic() + 10
        while self.writer.updated < goal and time.monotonic() < deadline:
            time.sleep(0.001)

    def finish(self) -> None:
        self.writer.stop.set()


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_an_export_during_writes_holds_every_lasting_document_once(
    db, db_manager, warehouse_server, tmp_path, ledger, file_format
):
    stable = list(range(3000))
    db["live"].insert_many(
        [{"_id": i, "kind": "stable", "version": 1} for i in stable]
        + [{"_id": VOLATILE + i, "kind": "volatile"} for i in range(VOLATILE_COUNT)]
    )
    writer = Writer(warehouse_server.uri, db.name, stable)
    output = tmp_path / f"live.{file_format}"
    DataWarehouseExporter(db_manager).export_collection(
        "live", output, None, batch_size=100, progress=InterleaveWrites(writer)
    )
    writer.join(timeout=30)
    exported = list(iter_documents(output))
    ids = Counter(document["_id"] for document in exported)
    twice = [key for key, seen in ids.items() if seen > 1]
    missing = [key for key in stable if key not in ids]
    ledger.record(
        "export while another client writes", documents=len(stable), lost=len(twice) + len(missing)
    )
    assert writer.updated and writer.inserted  # the writes did overlap the export
    assert twice == [] and missing == []
    assert all(d["version"] in (1, 2) for d in exported if d["kind"] == "stable")
