"""The warehouse server is SIGKILLed in the middle of an import or a restore.

The operation ends with a :class:`WarehouseUnavailableError`; what the server had acknowledged
(journaled writes) is still there after a restart; re-running in upsert or merge mode ends with
exactly the source documents, byte for byte: nothing missing, nothing twice. A restore re-run
in the same mode (replace, or merge: an upsert by ``_id``) ends with exactly the backup.
"""

from __future__ import annotations

import pytest

from hermes.errors import WarehouseUnavailableError
from hermes.formats import write_documents
from hermes.sample import iter_collection
from hermes.storage._backup import RESTORE_PREFIX
from hermes.storage.warehouse import DataWarehouseImporter, DataWarehouseManager
from tests.reliability.faults import KillAfter, damage, expected_bson, manager_for, stored_bson

DOCUMENTS = 1000
KILL_AT = 300
#: A restore writes batches of 1000 documents: the kill comes after the first.
RESTORED = 1500


@pytest.fixture
def documents() -> list[dict]:
    return list(iter_collection("chunks", DOCUMENTS))


@pytest.fixture
def backed_up() -> list[dict]:
    return list(iter_collection("chunks", RESTORED))


def test_an_import_cut_by_a_server_crash_completes_on_an_upsert_rerun(
    private_server, documents, tmp_path, ledger
):
    warehouse, info = private_server
    source = tmp_path / "chunks.jsonl"
    write_documents(source, documents)
    killer = KillAfter(info.pid, KILL_AT)
    with pytest.raises(WarehouseUnavailableError, match="while writing to chunks"):
        DataWarehouseImporter(manager_for(info, "twin")).import_collection(
            "chunks", source, batch_size=100, progress=killer
        )
    assert killer.killed

    manager = manager_for(warehouse.ensure_running(), "twin")
    collection = manager.get_collection("chunks")
    survived = collection.count_documents({})
    report = DataWarehouseImporter(manager).import_collection(
        "chunks", source, batch_size=500, mode="upsert"
    )
    lost = damage(expected_bson(documents), stored_bson(collection))
    ledger.record("server SIGKILLed mid-import", documents=DOCUMENTS, lost=lost)
    assert survived >= killer.acknowledged  # journaled writes outlive the crash
    assert lost == 0
    assert report.rejected == 0


@pytest.mark.parametrize("mode", ["replace", "merge"])
def test_a_restore_cut_by_a_server_crash_completes_on_a_rerun(
    private_server, backed_up, tmp_path, ledger, mode
):
    warehouse, info = private_server
    source = manager_for(info, "source")
    source.get_collection("chunks").insert_many(backed_up)
    backup = DataWarehouseManager(source).backup(tmp_path / "backup", "jsonl").path
    killer = KillAfter(info.pid, KILL_AT)
    state = "did not exist before" if mode == "replace" else "holds part of the backup"
    with pytest.raises(WarehouseUnavailableError, match=f"Restoring 'chunks' from .* {state}"):
        DataWarehouseManager(manager_for(info, "target")).restore(
            backup, mode=mode, confirm=True, progress=killer
        )
    assert killer.killed

    target = manager_for(warehouse.ensure_running(), "target")
    DataWarehouseManager(target).restore(backup, mode=mode, confirm=True)
    lost = damage(expected_bson(backed_up), stored_bson(target.get_collection("chunks")))
    ledger.record(f"server SIGKILLed mid-restore ({mode})", documents=RESTORED, lost=lost)
    assert lost == 0
    leftovers = [n for n in target.list_collections() if n.startswith(RESTORE_PREFIX)]
    assert leftovers == []
