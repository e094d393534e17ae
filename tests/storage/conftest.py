"""Fixtures of the warehouse tests: a second, empty database to restore or import into."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hermes.config import get_settings
from hermes.storage.database import MongoDBManager
from hermes.storage.embedded import ServerInfo


@pytest.fixture
def target_manager(warehouse_server: ServerInfo) -> Iterator[MongoDBManager]:
    """A connection to another fresh database of the same server (dropped after the test)."""
    name = f"target_{uuid.uuid4().hex[:12]}"
    manager = MongoDBManager(database=name, settings=get_settings())
    yield manager
    try:
        manager.client.drop_database(name)
    finally:
        manager.close()


@pytest.fixture
def target_db(target_manager: MongoDBManager):
    return target_manager.get_database()
