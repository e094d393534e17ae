"""A server that drops connections between batches: idempotent work is retried with backoff,
a read resumes where it stopped, an insert never stores a document twice; past the retry budget
the operation ends with a clear :class:`WarehouseUnavailableError`.

pymongo retries a read or a write once by itself, and never the ``getMore`` of a cursor; the
fail points here fail two to three times in a row, which only Hermes' own retries survive.
"""

from __future__ import annotations

import logging

import pytest

from hermes.errors import WarehouseUnavailableError
from hermes.formats import iter_documents, write_documents
from hermes.sample import iter_collection
from hermes.storage.retry import NO_RETRY, RetryPolicy
from hermes.storage.warehouse import (
    DataWarehouseExporter,
    DataWarehouseImporter,
    DataWarehouseManager,
)
from tests.reliability.faults import (
    LossyProxy,
    damage,
    expected_bson,
    fail_point,
    manager_for,
    stored_bson,
)

DOCUMENTS = 600


@pytest.fixture
def source(tmp_path):
    """Sample raw documents, in a JSON Lines file and as a list."""
    documents = list(iter_collection("raw_documents", DOCUMENTS))
    path = tmp_path / "raw_documents.jsonl"
    write_documents(path, documents)
    return path, documents


@pytest.fixture
def hermes(armed_server, armed_client, fresh_name):
    manager = manager_for(armed_server, fresh_name)
    yield manager
    manager.close()
    # With the test's own client: after lost connections, Hermes' quick-to-give-up client may
    # still be waiting for the driver to look at the server again.
    armed_client.drop_database(fresh_name)


def test_an_export_resumes_after_connections_drop_between_batches(
    hermes, armed_client, source, tmp_path, ledger
):
    path, documents = source
    hermes.get_collection("raw_documents").insert_many(documents)
    output = tmp_path / "out.jsonl"
    with fail_point(armed_client, ["getMore"], times=3):
        result = DataWarehouseExporter(hermes).export_collection(
            "raw_documents", output, "jsonl", batch_size=50
        )
    lost = damage(expected_bson(documents), expected_bson(iter_documents(output)))
    ledger.record("connection dropped 3x during an export", documents=DOCUMENTS, lost=lost)
    assert lost == 0
    assert result.count == DOCUMENTS


def test_an_export_with_a_sort_and_a_limit_resumes_by_position(
    hermes, armed_client, source, tmp_path, ledger
):
    _, documents = source
    hermes.get_collection("raw_documents").insert_many(documents)
    output = tmp_path / "out.jsonl"
    with fail_point(armed_client, ["getMore"], times=2):
        DataWarehouseExporter(hermes).export_collection(
            "raw_documents", output, "jsonl", sort="-platform", limit=250, batch_size=40
        )
    by_id = sorted(documents, key=lambda d: d["_id"])
    expected = sorted(by_id, key=lambda d: d["platform"], reverse=True)[:250]  # ties by _id
    written = list(iter_documents(output))
    lost = damage(expected_bson(expected), expected_bson(written))
    ledger.record("connection dropped 2x during a sorted export", documents=250, lost=lost)
    assert [d["_id"] for d in written] == [d["_id"] for d in expected]


def test_an_export_without_id_resumes_by_position(hermes, armed_client, source, tmp_path):
    _, documents = source
    hermes.get_collection("raw_documents").insert_many(documents)
    output = tmp_path / "links.jsonl"
    with fail_point(armed_client, ["getMore"], times=2):
        DataWarehouseExporter(hermes).export_collection(
            "raw_documents", output, "jsonl", fields={"_id": 0, "link": 1}, batch_size=50
        )
    assert list(iter_documents(output)) == [{"link": d["link"]} for d in documents]


@pytest.mark.parametrize("mode", ["insert", "upsert", "merge"])
def test_an_import_retries_batches_the_server_dropped(hermes, armed_client, source, ledger, mode):
    path, documents = source
    command = "insert" if mode == "insert" else "update"
    with fail_point(armed_client, [command], times=3):
        report = DataWarehouseImporter(hermes).import_collection(
            "raw_documents", path, batch_size=100, mode=mode
        )
    lost = damage(expected_bson(documents), stored_bson(hermes.get_collection("raw_documents")))
    ledger.record(
        f"connection dropped 3x during an import ({mode})", documents=DOCUMENTS, lost=lost
    )
    assert lost == 0
    assert (report.read, report.inserted, report.rejected) == (DOCUMENTS, DOCUMENTS, 0)


def test_an_insert_whose_replies_were_lost_stores_each_document_once(
    armed_server, armed_client, fresh_name, source, ledger
):
    """The server applied the batch, but the client never heard: twice (pymongo's own retry
    is lost too). Hermes' retry finds the batch stored byte for byte and counts it inserted."""
    path, documents = source
    proxy = LossyProxy(armed_server)
    manager = manager_for(armed_server, fresh_name, uri=proxy.uri)
    try:
        proxy.lose_replies("insert", 2)
        report = DataWarehouseImporter(manager).import_collection(
            "raw_documents", path, batch_size=200
        )
        collection = manager.get_collection("raw_documents")
        lost = damage(expected_bson(documents), stored_bson(collection))
        ledger.record("insert replies lost 2x (write applied)", documents=DOCUMENTS, lost=lost)
        assert proxy.lost == ["insert", "insert"]
        assert lost == 0
        assert (report.inserted, report.rejected, report.rejects_file) == (DOCUMENTS, 0, None)
    finally:
        armed_client.drop_database(fresh_name)
        manager.close()
        proxy.close()


def test_a_real_duplicate_in_a_retried_batch_is_still_rejected(
    armed_server, armed_client, fresh_name, source, tmp_path
):
    path, documents = source
    proxy = LossyProxy(armed_server)
    manager = manager_for(armed_server, fresh_name, uri=proxy.uri)
    try:
        different = {**documents[5], "content": {"title": "not the file's version"}}
        manager.get_collection("raw_documents").insert_one(different)
        proxy.lose_replies("insert", 2)
        report = DataWarehouseImporter(manager).import_collection(
            "raw_documents", path, batch_size=200
        )
        assert (report.inserted, report.rejected) == (DOCUMENTS - 1, 1)
        assert "duplicate key" in report.errors[0]
    finally:
        armed_client.drop_database(fresh_name)
        manager.close()
        proxy.close()


def test_a_merge_restore_retries_batches_the_server_dropped(
    hermes, armed_client, armed_server, source, tmp_path, ledger
):
    _, documents = source
    hermes.get_collection("raw_documents").insert_many(documents)
    backup = DataWarehouseManager(hermes).backup(tmp_path / "backup", "jsonl").path
    target = manager_for(armed_server, f"{hermes.database_name}_target")
    try:
        with fail_point(armed_client, ["update"], times=3):
            DataWarehouseManager(target).restore(backup, mode="merge", confirm=True)
        restored = stored_bson(target.get_collection("raw_documents"))
        lost = damage(expected_bson(documents), restored)
        ledger.record(
            "connection dropped 3x during a merge restore", documents=DOCUMENTS, lost=lost
        )
        assert lost == 0
    finally:
        armed_client.drop_database(target.database_name)
        target.close()


def test_past_the_retry_budget_the_error_says_what_failed_and_how_often(
    hermes, armed_client, source, caplog
):
    path, _ = source
    with (
        fail_point(armed_client, ["insert"], times=1000),
        caplog.at_level(logging.WARNING),
        pytest.raises(WarehouseUnavailableError) as failure,
    ):
        DataWarehouseImporter(hermes).import_collection("raw_documents", path)
    message = str(failure.value)
    assert "while writing to raw_documents after 4 attempts" in message
    assert "re-run with mode upsert" in message
    retries = [r for r in caplog.records if r.name == "hermes.storage.retry"]
    assert [r.getMessage().split("(attempt ")[1] for r in retries] == [
        "2 of 4)",
        "3 of 4)",
        "4 of 4)",
    ]


def test_without_retries_the_first_dropped_connection_ends_the_export(
    armed_server, armed_client, fresh_name, tmp_path
):
    manager = manager_for(armed_server, fresh_name)
    manager.retry = NO_RETRY
    try:
        manager.get_collection("c").insert_many([{"_id": i} for i in range(100)])
        with (
            fail_point(armed_client, ["getMore"], times=1),
            pytest.raises(WarehouseUnavailableError, match="while reading c: .*connection closed"),
        ):
            DataWarehouseExporter(manager).export_collection(
                "c", tmp_path / "c.jsonl", batch_size=10
            )
        assert list(tmp_path.iterdir()) == []
    finally:
        armed_client.drop_database(fresh_name)
        manager.close()


def test_the_backoff_doubles_up_to_its_ceiling():
    policy = RetryPolicy(attempts=6, initial_delay=0.5, max_delay=3.0)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]
