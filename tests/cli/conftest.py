"""Fixtures for the command line: run ``hermes`` in-process on the test's own database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from click.testing import CliRunner, Result

from hermes.cli import cli
from hermes.sample import load_corpus
from hermes.storage.database import MongoDBManager

Run = Callable[..., Result]

#: Documents with the values a lossy tool would damage: exact numeric types, dates, binary.
ODD_DOCUMENTS = [
    {
        "_id": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "title": "Zoë's café 🚀",
        "views": Int64(2**40),
        "price": Decimal128(Decimal("19.990")),
        "ratio": 0.1,
        "published_at": datetime(2024, 5, 17, 8, 30, 1, 123000, tzinfo=timezone.utc),
        "blob": Binary(b"\x00\xffdata", 0),
        "uuid": Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4),
        "content": {"body": "x", "tags": ["a", 1, None, True]},
    },
    {"_id": "plain-string-id", "title": "", "views": 3, "content": {}},
]


@pytest.fixture
def run(database_name: str, warehouse_server, monkeypatch, tmp_path: Path) -> Run:
    """``run("export", "--format", "jsonl")`` runs ``hermes --database <test db> export ...``.

    The working directory is the test's temporary folder, so ``exports/`` and ``backups/``
    land there.
    """
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: object, input: str | None = None, database: str = database_name) -> Result:
        return runner.invoke(cli, ["--database", database, *map(str, args)], input=input)

    return invoke


@pytest.fixture
def other_database(warehouse_server) -> Iterator[MongoDBManager]:
    """A second fresh database on the same server, to import or restore into."""
    manager = MongoDBManager(database=f"test_{uuid.uuid4().hex[:12]}")
    yield manager
    try:
        manager.client.drop_database(manager.database_name)
    finally:
        manager.close()


@pytest.fixture
def sample(db) -> dict[str, int]:
    """A small sample corpus, plus the odd documents in ``odd``; returns the counts."""
    counts = load_corpus(db, raw_count=4)
    db["odd"].insert_many([dict(doc) for doc in ODD_DOCUMENTS])
    counts["odd"] = len(ODD_DOCUMENTS)
    return counts


def documents(manager: MongoDBManager, collection: str) -> list[dict]:
    """A collection's documents as the warehouse holds them, in ``_id`` order."""
    return list(manager.get_collection(collection).find().sort("_id", 1))
