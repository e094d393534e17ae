"""The user guide's reference sections match the code: every command and option of ``hermes`` is
documented and nothing else is, the exit codes are the CLI's, and each troubleshooting message is
one that Hermes can print."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from hermes.cli import cli
from hermes.cli import errors as cli_errors
from tests.docs.markdown import code_spans, fenced_blocks, section, subsections, table_rows

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "EXPORT_IMPORT.md"
REFERENCE = "## Command-line reference"
_OPTION = re.compile(r"^(--?[A-Za-z][\w-]*)")


def _guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def command_tree(
    command: click.Command, path: str = "hermes"
) -> Iterator[tuple[str, click.Command]]:
    """Every command under ``command`` with its full name, lazily registered ones included."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} lists {name!r} but cannot load it"
            yield from command_tree(sub, f"{path} {name}")


def option_names(command: click.Command) -> set[str]:
    """``--output-dir``, ``-c``...: every spelling of every option (``--help`` aside)."""
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts + param.secondary_opts)
        else:
            names.add(param.human_readable_name)
    return names


def documented_options(text: str) -> set[str]:
    """The options named in the first column of the tables of a command's section."""
    names: set[str] = set()
    for row in table_rows(text):
        for span in code_spans(row[0]):
            match = _OPTION.match(span)
            if match:
                names.add(match.group(1))
    return names


def documented_commands() -> dict[str, str]:
    """``hermes export`` -> the text of its reference section."""
    found = subsections(section(_guide(), REFERENCE))
    return {title: text for title, text in found.items() if title.split(" ")[0] == "hermes"}


def test_every_command_is_documented_and_every_documented_command_exists():
    actual = {path for path, _ in command_tree(cli)}
    documented = set(documented_commands())
    assert not actual - documented, f"commands missing from {GUIDE.name}: {actual - documented}"
    assert not documented - actual, f"documented commands that do not exist: {documented - actual}"


@pytest.mark.parametrize("path, command", list(command_tree(cli)), ids=lambda v: str(v))
def test_every_option_of_a_command_is_documented_and_no_other(path: str, command: click.Command):
    documented = documented_options(documented_commands().get(path, ""))
    actual = option_names(command)
    assert not actual - documented, (
        f"options of {path!r} missing from the '### {path}' table of {GUIDE.name}: "
        f"{sorted(actual - documented)}"
    )
    assert not documented - actual, (
        f"the '### {path}' table of {GUIDE.name} documents options {path!r} does not have: "
        f"{sorted(documented - actual)}"
    )


def test_the_exit_codes_are_the_cli_exit_codes():
    rows = table_rows(subsections(section(_guide(), REFERENCE))["Exit codes"])
    documented = {int(row[0]) for row in rows}
    actual = {
        value
        for name, value in vars(cli_errors).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert documented == actual


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """A module's ``NAME = "text"`` assignments, so ``f"{MANIFEST}: missing"`` reads whole."""
    constants = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            constants[node.targets[0].id] = node.value.value
    return constants


def _template(node: ast.JoinedStr, constants: dict[str, str]) -> str:
    parts = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
        elif (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Name)
            and part.value.id in constants
            and part.conversion == -1
            and part.format_spec is None
        ):
            parts.append(constants[part.value.id])
        else:
            parts.append("…")
    return "".join(parts)


def message_templates() -> list[str]:
    """Every string literal of the ``hermes`` package, f-strings with ``…`` for each
    placeholder (implicit concatenation already joined by the parser; module string constants
    inlined), each also as the CLI prints it (library parameters spelled as its options)."""
    templates: list[str] = []
    for path in (ROOT / "hermes").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _string_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                templates.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                templates.append(_template(node, constants))
    return templates + [cli_errors.in_cli_words(template) for template in templates]


def troubleshooting_messages() -> list[str]:
    """The messages of the troubleshooting section: the code spans in bold (**`...`**)."""
    text = section(_guide(), "## Troubleshooting")
    return re.findall(r"\*\*`([^`]+)`\*\*", text)


def _fragments(message: str) -> list[str]:
    """The literal parts of a message, without the punctuation that joins them to a value
    (``"…: no such file"`` is the path, then ``"no such file"``)."""
    parts = (part.strip(" :;,.") for part in message.split("…"))
    return [part for part in parts if part]


def _printed_by_hermes(message: str, templates: list[str]) -> bool:
    """Whether one string literal of the code holds every literal part of ``message``, in
    order."""
    parts = _fragments(message)
    for template in templates:
        position = 0
        for part in parts:
            found = template.find(part, position)
            if found < 0:
                break
            position = found + len(part)
        else:
            return True
    return False


def test_every_troubleshooting_message_is_one_hermes_prints():
    messages = troubleshooting_messages()
    assert len(messages) > 20, "the troubleshooting section lists the messages in **`...`**"
    templates = message_templates()
    stale = [message for message in messages if not _printed_by_hermes(message, templates)]
    assert not stale, f"{GUIDE.name} troubleshoots messages the code no longer prints: {stale}"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("document", ["README.md", "docs/EXPORT_IMPORT.md"])
def test_links_to_sections_lead_to_a_heading(document: str):
    path = ROOT / document
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text)
    assert links or document == "README.md"
    for target, anchor in links:
        linked = (path.parent / target) if target else path
        headings = re.findall(r"^#{1,6} (.+)$", linked.read_text(encoding="utf-8"), re.M)
        assert anchor in {_slug(h) for h in headings}, f"{document}: no heading for #{anchor}"


def test_the_readme_starts_with_the_two_commands_of_a_fresh_machine():
    first = fenced_blocks(ROOT / "README.md")[0]
    commands = [line.split("#")[0].strip() for line in first.text.splitlines() if line.strip()]
    assert (first.language, commands) == ("bash", ["./run demo", "./run test"])


@pytest.mark.parametrize("document", ["README.md", "docs/EXPORT_IMPORT.md"])
def test_shell_examples_with_a_prompt_are_exactly_the_tested_ones(document: str):
    """Readers are told that a ``$`` prompt marks a tested example: hold the docs to it."""
    for block in fenced_blocks(ROOT / document, ROOT):
        if (
            block.language in ("bash", "sh", "shell", "console")
            and "save-as" not in block.directives
        ):
            prompted = block.language == "console"
            assert prompted == ("run" in block.directives), (
                f"{block.where}: use a console block with $ prompts for a tested example, "
                "a bash block without prompts for an illustration"
            )
