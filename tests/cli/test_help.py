"""Help, version, the command list, and a fast start-up that imports nothing heavy."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from hermes import __version__
from hermes.cli import cli
from hermes.cli.app import LAZY_COMMANDS, LazyCommand
from hermes.cli.errors import EXIT_CODES_HELP
from hermes.cli.options import DOCUMENT_TYPES, FORMATS
from hermes.domain import DocumentType
from hermes.formats import format_names

COMMANDS = [
    ["export"],
    ["import-data"],
    ["backup"],
    ["restore"],
    ["migrate"],
    ["verify"],
    ["status"],
    ["load-sample"],
    ["warehouse"],
    ["warehouse", "stop"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself_with_an_example(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: hermes {' '.join(command)}" in result.output
    assert "Example" in result.output
    assert f"hermes {command[0]}" in result.output.split("Example", 1)[1]


def test_group_help_lists_commands_and_documents_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in {c[0] for c in COMMANDS}:
        assert f"  {command} " in result.output
    for line in EXIT_CODES_HELP.splitlines()[2:]:
        assert line.strip() in result.output
    for option in ("--uri", "--database", "--quiet", "--debug", "--version"):
        assert option in result.output


def _help(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_sort_examples_name_fields_the_sample_corpus_has():
    from hermes.sample import iter_collection

    fields = set(next(iter(iter_collection("raw_documents", 1))))
    text = _help("export")
    named = re.findall(r"--sort=-?(\w+)", text) + re.findall(r'"-?(\w+)[,:]', text)
    named += re.findall(r"""\{\\?"(\w+)\\?": -?1\}""", text)
    assert named and set(named) <= fields, set(named) - fields


@pytest.mark.parametrize("command", ["restore", "verify"])
def test_examples_read_backup_folders_named_as_hermes_names_them(command):
    examples = _help(command).split("Example", 1)[1].split("Options:")[0]
    folders = re.findall(r"--backup-dir (\S+)", examples)
    assert folders
    for folder in folders:
        assert re.fullmatch(r"backups/\d{8}T\d{6}Z", folder), folder


def test_json_format_help_names_every_format_it_shapes():
    text = " ".join(_help("export").split("--json-format", 1)[1].split("--compression")[0].split())
    for shaped in ("json/jsonl", "CSV json() cells", "Parquet Extended JSON"):
        assert shaped in text


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_option_choices_agree_with_the_libraries():
    assert set(FORMATS) == set(format_names())
    assert set(DOCUMENT_TYPES) == {t.value for t in DocumentType}


def test_help_imports_nothing_heavy():
    code = textwrap.dedent(
        """
        import sys
        from hermes.cli import main
        sys.argv = ["hermes", "--help"]
        try:
            main()
        except SystemExit:
            pass
        heavy = ("pymongo", "bson", "pyarrow", "rich", "pydantic", "pydantic_settings", "zenml")
        print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_package_offers_cli_and_main_and_shadows_none_of_its_modules():
    import importlib
    import pkgutil

    import hermes.cli
    from hermes.cli import main

    assert callable(main) and hermes.cli.cli is cli
    for module in pkgutil.iter_modules(hermes.cli.__path__):
        imported = importlib.import_module(f"hermes.cli.{module.name}")
        assert getattr(hermes.cli, module.name) is imported, module.name


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "hermes", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert __version__ in out.stdout


@pytest.fixture
def lazy_command(monkeypatch, tmp_path):
    """A command in a module of its own, registered lazily like ``export-artifacts``."""
    (tmp_path / "hermes_lazy_probe.py").write_text(
        textwrap.dedent(
            '''
            import click
            @click.command("probe")
            def probe():
                """Say that the module was loaded."""
                click.echo("probe ran")
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        LAZY_COMMANDS, "probe", LazyCommand("hermes_lazy_probe", "probe", "A lazily loaded probe.")
    )
    monkeypatch.delitem(sys.modules, "hermes_lazy_probe", raising=False)
    yield
    cli.commands.pop("probe", None)
    sys.modules.pop("hermes_lazy_probe", None)


def test_lazy_commands_are_listed_without_being_imported(lazy_command):
    result = CliRunner().invoke(cli, ["--help"])
    assert "probe" in result.output
    assert "A lazily loaded probe." in result.output
    assert "hermes_lazy_probe" not in sys.modules


def test_lazy_commands_load_when_run(lazy_command):
    result = CliRunner().invoke(cli, ["--debug", "probe"])
    assert result.exit_code == 0, result.output
    assert "probe ran" in result.output


def test_missing_lazy_modules_are_not_listed(monkeypatch):
    monkeypatch.setitem(
        LAZY_COMMANDS, "ghost", LazyCommand("hermes_no_such_module", "ghost", "Never there.")
    )
    result = CliRunner().invoke(cli, ["--help"])
    assert "ghost" not in result.output
    assert CliRunner().invoke(cli, ["ghost"]).exit_code == 2


def test_export_artifacts_is_offered_when_its_module_exists():
    listed = "export-artifacts" in CliRunner().invoke(cli, ["--help"]).output
    assert listed == LAZY_COMMANDS["export-artifacts"].available()


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["exprot"])
    assert result.exit_code == 2
    assert "No such command 'exprot'" in result.output
