"""Test fixtures: one real embedded warehouse per test session, a fresh database per test.

The server is SecantusDB in its own process on 127.0.0.1 (no mongomock, no fakes), with its data
in a temporary HERMES_HOME.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from hermes.config import get_settings
from hermes.storage.database import MongoDBManager
from hermes.storage.embedded import EmbeddedWarehouse, ServerInfo

# Examples are judged on what they find, never on how fast they run: CI machines are shared.
settings.register_profile(
    "hermes", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("hermes")


@pytest.fixture(scope="session")
def hermes_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("hermes-home")
    old = {k: os.environ.get(k) for k in ("HERMES_HOME", "MONGODB_URI", "HERMES_MONGODB_URI")}
    os.environ["HERMES_HOME"] = str(home)
    for key in ("MONGODB_URI", "HERMES_MONGODB_URI", "DATABASE_HOST"):
        os.environ.pop(key, None)
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def warehouse_server(hermes_home: Path) -> Iterator[ServerInfo]:
    """The embedded warehouse, started once for the whole test session."""
    warehouse = EmbeddedWarehouse(hermes_home)
    info = warehouse.ensure_running()
    yield info
    warehouse.stop()


@pytest.fixture
def database_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db_manager(warehouse_server: ServerInfo, database_name: str) -> Iterator[MongoDBManager]:
    """A connection to the session's server, on a database of this test's own (dropped after)."""
    manager = MongoDBManager(database=database_name, settings=get_settings())
    yield manager
    try:
        manager.client.drop_database(database_name)
    finally:
        manager.close()


@pytest.fixture
def db(db_manager: MongoDBManager):
    return db_manager.get_database()
