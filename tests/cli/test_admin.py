"""``hermes status``, ``load-sample`` and ``warehouse stop``."""

from __future__ import annotations

from click.testing import CliRunner

from hermes.cli import cli
from hermes.sample import corpus_sizes
from hermes.storage.embedded import EmbeddedWarehouse


def test_load_sample_fills_the_warehouse_and_refuses_to_overwrite(run, db):
    loaded = run("load-sample", "--size", "3")
    assert loaded.exit_code == 0, loaded.output
    sizes = corpus_sizes(3)
    assert {name: db[name].count_documents({}) for name in sizes} == sizes
    for name, count in sizes.items():
        assert any(
            f" {name} " in line and f" {count} " in line for line in loaded.stdout.splitlines()
        )

    again = run("load-sample", "--size", "5")
    assert again.exit_code == 2
    assert "--force" in again.stderr
    assert db["raw_documents"].count_documents({}) == 3

    forced = run("load-sample", "--size", "5", "--force")
    assert forced.exit_code == 0, forced.output
    assert db["raw_documents"].count_documents({}) == 5


def test_status_shows_location_collections_and_newest_backup(run, sample, database_name, tmp_path):
    assert run("backup", "--backup-dir", "backups/20240101T000000Z").exit_code == 0
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "embedded warehouse in" in result.stdout
    assert database_name in result.stdout
    for name, count in sample.items():
        assert any(
            f" {name} " in line and f" {count} " in line for line in result.stdout.splitlines()
        )
    assert "20240101T000000Z" in result.stdout


def test_warehouse_stop_says_when_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HERMES_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["warehouse", "stop"])
    assert result.exit_code == 0
    assert f"No embedded warehouse was running in {tmp_path}" in result.stdout


def test_warehouse_stop_stops_the_server_of_hermes_home(tmp_path, monkeypatch, request):
    warehouse = EmbeddedWarehouse(tmp_path)
    warehouse.ensure_running()
    request.addfinalizer(warehouse.stop)  # should the command fail to stop it
    monkeypatch.setenv("HERMES_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["warehouse", "stop"])
    assert result.exit_code == 0, result.output
    assert f"Stopped the embedded warehouse in {tmp_path}" in result.stdout
    assert warehouse.running() is None


def test_a_command_says_when_it_has_to_start_the_embedded_warehouse(tmp_path, monkeypatch, request):
    monkeypatch.setenv("HERMES_HOME", str(tmp_path))
    request.addfinalizer(EmbeddedWarehouse(tmp_path).stop)
    first = CliRunner().invoke(cli, ["status"])
    assert first.exit_code == 0, first.output
    assert f"Starting the embedded warehouse (data in {tmp_path}" in first.stderr
    running = CliRunner().invoke(cli, ["status"])
    assert running.exit_code == 0, running.output
    assert "Starting" not in running.stderr
    EmbeddedWarehouse(tmp_path).stop()
    quiet = CliRunner().invoke(cli, ["--quiet", "status"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
