"""Errors end a command with one line on stderr and a documented exit code; --debug adds a traceback."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from pymongo.errors import OperationFailure

from hermes.cli import cli
from hermes.cli.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EXIT_WAREHOUSE,
    describe_error,
)
from hermes.errors import ConfirmationRequiredError

UNREACHABLE = "mongodb://u:secret@127.0.0.1:1/"


def test_unreachable_warehouse_exits_3_without_the_password():
    result = CliRunner().invoke(cli, ["--uri", UNREACHABLE, "load-sample"])
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "Error: Cannot reach the warehouse at mongodb://u:***@127.0.0.1:1/"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "secret" not in result.output
    assert "Traceback" not in result.output


def test_refused_credentials_exit_3_without_the_password(warehouse_server, database_name):
    uri = warehouse_server.uri.replace("mongodb://", "mongodb://reader:s3cret@")
    result = CliRunner().invoke(cli, ["--uri", uri, "--database", database_name, "load-sample"])
    assert result.exit_code == 3
    assert "mongodb://reader:***@127.0.0.1" in result.stderr
    assert "s3cret" not in result.output


def test_driver_errors_exit_3_with_every_credential_masked():
    uri = "mongodb://admin:pa55word@db.example.com:27017/?authSource=admin"
    error = OperationFailure(f"not authorized on twin (client {uri}, password pa55word)")
    code, message = describe_error(error, [uri])
    assert code == EXIT_WAREHOUSE
    assert "pa55word" not in message
    assert "mongodb://admin:***@db.example.com:27017/" in message


@pytest.mark.parametrize(
    "error",
    [
        FileExistsError("out/a.json already exists; pass overwrite=True to replace it"),
        ConfirmationRequiredError("out/a.json already exists; pass overwrite=True to replace it"),
    ],
    ids=type,
)
def test_library_parameters_in_a_message_are_named_as_the_cli_options(error):
    assert describe_error(error, []) == (
        EXIT_USAGE,
        "out/a.json already exists; pass --force to replace it",
    )


def test_migrate_onto_an_existing_file_names_the_force_option(run, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jsonl").write_text('{"_id": 1}\n')
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "a.json").write_text("[]\n")
    result = run("migrate", "--source-dir", "src", "--target-dir", "dst", "--target-format", "json")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: dst/a.json already exists; choose another folder, or pass --force to replace it\n"
    )


def test_an_invalid_database_name_is_a_usage_error(warehouse_server):
    result = CliRunner().invoke(cli, ["--database", "bad/name", "load-sample"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "/" in result.stderr


def test_errors_are_one_line_and_debug_adds_the_traceback(run, sample):
    plain = run("load-sample")
    assert plain.exit_code == 2
    assert plain.stderr.splitlines() == [plain.stderr.strip()]
    assert plain.stderr.startswith("Error: ")
    assert "--force" in plain.stderr
    assert "Traceback" not in plain.output

    debug = run("--debug", "load-sample")
    assert debug.exit_code == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ConfirmationRequiredError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()


@pytest.fixture
def failing_command():
    """A command that fails the way a bug or Ctrl-C would, added to the real group."""

    @click.command("fail")
    @click.argument("how")
    def fail(how: str) -> None:
        if how == "interrupt":
            raise KeyboardInterrupt
        raise RuntimeError("mongodb://admin:hunter2@db.example.com/ broke")

    cli.add_command(fail)
    yield
    cli.commands.pop("fail")


def test_ctrl_c_exits_130_with_a_short_message(failing_command):
    result = CliRunner().invoke(cli, ["fail", "interrupt"])
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr.strip() == "Interrupted."


def test_unexpected_errors_exit_70_masked_and_point_to_debug(failing_command):
    result = CliRunner().invoke(cli, ["fail", "bug"])
    assert result.exit_code == EXIT_INTERNAL
    assert "RuntimeError" in result.stderr
    assert "--debug" in result.stderr
    assert "hunter2" not in result.stderr
    assert "mongodb://admin:***@db.example.com/" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--format", "xml"],
        ["export", "--compression", "bzip2"],
        ["export", "--query", "{not json"],
        ["export", "--query", "[1, 2]"],
        ["export", "--sort", '{"a": 2}'],
        ["export", "--limit", "0"],
        ["import-data"],
        ["import-data", "--input-file", "missing.json"],
        ["import-data", "--input-dir", ".", "--input-file", "x.json"],
        ["import-data", "--input-file", "x.json", "--document-type", "tweets"],
        ["import-data", "--input-dir", ".", "--collection", "c"],
        ["migrate", "--source-dir", ".", "--target-dir", "out"],
        ["restore"],
        ["backup", "--format", "xml"],
        ["migrate", "--source-dir", "nowhere", "--target-dir", "out"],
    ],
    ids=" ".join,
)
def test_bad_options_are_usage_errors(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text("[]")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.stderr
    assert "Traceback" not in result.output
