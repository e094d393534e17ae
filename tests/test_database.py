"""The warehouse connection: embedded and by URI, reuse, persistence, masked credentials."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hermes.config import Settings, get_settings
from hermes.errors import WarehouseUnavailableError
from hermes.storage.database import MongoDBManager, mask_uri
from hermes.storage.embedded import EmbeddedWarehouse


def test_embedded_connection_lists_collections(db_manager):
    db_manager.get_collection("things").insert_one({"a": 1})
    assert db_manager.list_collections() == ["things"]
    assert db_manager.ping()
    assert db_manager.is_embedded
    assert "embedded warehouse" in db_manager.location


def test_connect_with_uri(warehouse_server, database_name):
    with MongoDBManager(uri=warehouse_server.uri, database=database_name) as manager:
        manager.get_collection("c").insert_one({"x": 1})
        assert manager.get_collection("c").count_documents({}) == 1
        assert not manager.is_embedded
        manager.client.drop_database(database_name)


def test_uri_from_environment_aliases(monkeypatch, warehouse_server):
    for name in ("MONGODB_URI", "HERMES_MONGODB_URI", "DATABASE_HOST"):
        monkeypatch.delenv("MONGODB_URI", raising=False)
        monkeypatch.delenv("HERMES_MONGODB_URI", raising=False)
        monkeypatch.delenv("DATABASE_HOST", raising=False)
        monkeypatch.setenv(name, warehouse_server.uri)
        assert get_settings().uri == warehouse_server.uri
    monkeypatch.setenv("DATABASE_NAME", "handbook")
    assert get_settings().database == "handbook"
    monkeypatch.setenv("HERMES_DATABASE", "twin")
    assert get_settings().database == "twin"


def test_second_process_reuses_running_server(warehouse_server, hermes_home):
    code = (
        "from hermes.storage.embedded import EmbeddedWarehouse;"
        f"print(EmbeddedWarehouse({str(hermes_home)!r}).ensure_running().pid)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) == warehouse_server.pid


def test_data_persists_across_restart(tmp_path):
    warehouse = EmbeddedWarehouse(tmp_path / "home")
    settings = Settings(HERMES_HOME=str(tmp_path / "home"))
    first = warehouse.ensure_running()
    try:
        with MongoDBManager(settings=settings, database="keep") as manager:
            manager.get_collection("notes").insert_one({"_id": 1, "text": "still here"})
        assert warehouse.stop()
        assert warehouse.running() is None
        second = warehouse.ensure_running()
        assert second.pid != first.pid
        with MongoDBManager(settings=settings, database="keep") as manager:
            assert manager.get_collection("notes").find_one({"_id": 1})["text"] == "still here"
    finally:
        warehouse.stop()


def test_masked_uri_hides_password():
    uri = "mongodb://alice:s3cr3t@db.example.com:27017/?authSource=admin&password=x"
    masked = mask_uri(uri)
    assert "s3cr3t" not in masked
    assert masked.startswith("mongodb://alice:***@db.example.com:27017/")
    assert "password=***" in masked


def test_unreachable_server_fails_fast_with_masked_message():
    manager = MongoDBManager(uri="mongodb://bob:hunter2@127.0.0.1:1/", timeout_ms=500)
    started = time.monotonic()
    with pytest.raises(WarehouseUnavailableError) as info:
        manager.get_database().list_collection_names()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "hunter2" not in message
    assert "mongodb://bob:***@127.0.0.1:1/" in message
    assert "MONGODB_URI" in message
    assert "hunter2" not in repr(manager)
    assert info.value.exit_code == 3


def test_settings_repr_hides_uri(monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://u:topsecret@h/")
    assert "topsecret" not in repr(get_settings())
    assert "topsecret" not in str(get_settings().model_dump())


def test_embedded_start_failure_is_clear(tmp_path, monkeypatch):
    home = tmp_path / "home"
    warehouse = EmbeddedWarehouse(home, extra_args=["--cache-size", "not-a-size"])
    with pytest.raises(WarehouseUnavailableError, match="did not start"):
        warehouse.ensure_running()
    assert warehouse.running() is None
    assert os.path.exists(home / "warehouse.log")


def test_embedded_warehouse_without_its_extra_names_the_extra(monkeypatch):
    import hermes.storage.embedded as embedded
    from hermes.errors import MissingDependencyError

    monkeypatch.setattr(embedded.sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "secantus", None)
    monkeypatch.setitem(sys.modules, "secantus.cli", None)
    with pytest.raises(MissingDependencyError, match=r"hermes-llm\[embedded\]"):
        embedded._daemon_command()


def test_package_imports_without_optional_extras():
    code = (
        "import sys; sys.modules['zenml'] = None; sys.modules['secantus'] = None;"
        "import hermes, hermes.formats, hermes.utils.file_io, hermes.utils.export_import,"
        " hermes.storage.warehouse, hermes.cli, hermes.zenml_steps.export_steps,"
        " hermes.zenml_pipelines.artifact_export; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
