"""The parts of a Markdown document the doc tests check: fenced blocks and sections.

A fenced block may be preceded by directives, HTML comments on the lines right before its
opening fence (invisible on a rendered page):

    <!-- run -->                 a bash/console block that the tests run; it must exit 0
    <!-- run exit=1 -->          ... and must exit with 1
    <!-- save-as chunks.py -->   a block whose text is saved to that file (a later block runs or
                                 imports it) instead of running
    <!-- requires zenml -->      skipped when the module cannot be imported
    <!-- shows PATH except K1 K2 -->
                                 a JSON block equal to the JSON file PATH (made by the blocks
                                 before it), but for the fields named K1, K2 (at any depth)

Python blocks always run, in document order, in one namespace per document; shell blocks run
only when marked with ``run``. Every other block is illustrative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^<!--\s*(?P<name>[a-z][a-z-]*)(?P<args>.*?)\s*-->\s*$")
DIRECTIVES = frozenset({"run", "save-as", "requires", "shows"})
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})


class MarkdownError(ValueError):
    """A document the doc tests cannot read: an unclosed fence, an unknown directive."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (the line of its opening fence), language, text."""

    path: str
    line: int
    language: str
    text: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}, {self.language or 'plain'} block at line {self.line}"

    @property
    def runs(self) -> bool:
        return self.language == "python" or (
            self.language in SHELL_LANGUAGES and "run" in self.directives
        )

    @property
    def expected_exit(self) -> int:
        match = re.fullmatch(r"exit=(\d+)", self.directives.get("run", "").strip() or "exit=0")
        if not match:
            raise MarkdownError(f"{self.where}: write <!-- run --> or <!-- run exit=N -->")
        return int(match.group(1))

    def shell_script(self) -> str:
        """The commands of a shell block: all of a bash block; the ``$ `` lines of a console
        block (with their ``\\`` continuation lines), not the output shown after them."""
        if self.language != "console":
            return self.text
        commands: list[str] = []
        continued = False
        for line in self.text.splitlines():
            if continued:
                commands.append(line)
            elif line.startswith("$ "):
                commands.append(line[2:])
            else:
                continue
            continued = line.endswith("\\")
        return "\n".join(commands) + "\n"


def _directive(line: str, path: str, number: int) -> tuple[str, str] | None:
    match = _DIRECTIVE.match(line.strip())
    if not match or match.group("name") not in DIRECTIVES:
        if line.strip().startswith("<!--") and match:
            raise MarkdownError(
                f"{path}, line {number}: unknown directive {match.group('name')!r}; "
                f"known: {', '.join(sorted(DIRECTIVES))}"
            )
        return None
    return match.group("name"), match.group("args").strip()


def fenced_blocks(path: Path, root: Path | None = None) -> list[Block]:
    """Every fenced block of a Markdown file, in order, with the directives right above it."""
    name = str(path.relative_to(root)) if root else str(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening.group("fence")
        language = opening.group("info").strip().split(" ")[0].lower()
        directives: dict[str, str] = {}
        above = index - 1
        while above >= 0 and (found := _directive(lines[above], name, above + 1)):
            directives.setdefault(*found)
            above -= 1
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence))
            and set(lines[end].strip()) == {fence[0]}
        ):
            body.append(lines[end])
            end += 1
        if end == len(lines):
            raise MarkdownError(f"{name}, line {index + 1}: the fenced block is never closed")
        blocks.append(Block(name, index + 1, language, "\n".join(body) + "\n", directives))
        index = end + 1
    return blocks


def section(text: str, heading: str) -> str:
    """The text under a heading (``## Command-line reference``), up to the next heading of the
    same or a higher level; fenced blocks are left out so that a ``#`` in them is no heading."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = _outside_fences(text)
    starts = [number for number, line in enumerate(lines) if line.strip() == heading]
    if not starts:
        raise MarkdownError(f"no heading {heading!r}")
    body = []
    for line in lines[starts[0] + 1 :]:
        hashes = len(line) - len(line.lstrip("#"))
        if 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            break
        body.append(line)
    return "\n".join(body)


def subsections(text: str, level: int = 3) -> dict[str, str]:
    """The headings of ``level`` in ``text`` with the text under each."""
    marker = "#" * level + " "
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(marker):
            current = found.setdefault(line[len(marker) :].strip(), [])
        elif line.startswith("#" * (level - 1) + " "):
            current = None
        elif current is not None:
            current.append(line)
    return {title: "\n".join(body) for title, body in found.items()}


def _outside_fences(text: str) -> list[str]:
    """The lines of ``text``, with the lines of fenced blocks blanked."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group("fence")
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``text``: each table's header row and rule row
    are left out."""
    rows: list[list[str]] = []
    position = 0  # of the current line within its table (0: not in a table)
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            position = 0
            continue
        position += 1
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if position > 2:
            rows.append(cells)
    return rows


def code_spans(text: str) -> list[str]:
    """The contents of the inline code spans (`` `...` ``) of ``text``."""
    return re.findall(r"`([^`]+)`", text)
