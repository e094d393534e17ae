"""The doc tests' reading of Markdown: which blocks run, how, and what a failure says."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import MarkdownError, fenced_blocks, section, subsections, table_rows
from tests.docs.test_examples import _run_python, _run_shell

DOCUMENT = """\
# Title

<!-- run -->
```console
$ echo one \\
    two
one two
$ true
```

```bash
./run demo
```

<!-- requires zenml -->
<!-- run exit=3 -->
```bash
exit 3
```

```python
x = 1
```

## Reference

### hermes export

| Option | Default |
| --- | --- |
| `-c`, `--collection NAME` | all |

## Next
"""


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT)
    return path


def test_blocks_carry_their_line_language_and_directives(document: Path):
    blocks = fenced_blocks(document, document.parent)
    assert [(b.line, b.language, b.runs) for b in blocks] == [
        (4, "console", True),
        (11, "bash", False),
        (17, "bash", True),
        (21, "python", True),
    ]
    assert blocks[2].directives == {"run": "exit=3", "requires": "zenml"}
    assert blocks[2].expected_exit == 3
    assert blocks[0].where == "doc.md, console block at line 4"


def test_a_console_block_runs_its_prompted_commands_not_their_output(document: Path):
    console = fenced_blocks(document)[0]
    assert console.shell_script() == "echo one \\\n    two\ntrue\n"


def test_an_unknown_directive_or_an_unclosed_fence_is_an_error(tmp_path: Path):
    typo = tmp_path / "typo.md"
    typo.write_text("<!-- runn -->\n```bash\ntrue\n```\n")
    with pytest.raises(MarkdownError, match="unknown directive 'runn'"):
        fenced_blocks(typo)
    unclosed = tmp_path / "unclosed.md"
    unclosed.write_text("text\n```python\nx = 1\n")
    with pytest.raises(MarkdownError, match="line 2: the fenced block is never closed"):
        fenced_blocks(unclosed)


def test_sections_subsections_and_table_rows(document: Path):
    reference = section(document.read_text(), "## Reference")
    assert "## Next" not in reference
    export = subsections(reference)["hermes export"]
    assert table_rows(export) == [["`-c`, `--collection NAME`", "all"]]


def test_a_failing_example_names_its_file_and_line(document: Path, tmp_path: Path):
    shell = fenced_blocks(document, document.parent)[1]  # ./run demo: not a command here
    with pytest.raises(pytest.fail.Exception, match=r"doc\.md, bash block at line 11 exited"):
        _run_shell(shell, tmp_path)
    python = fenced_blocks(document, document.parent)[3]
    broken = type(python)(python.path, python.line, "python", "x = 1 / 0\n")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)python block at line 21 failed.*doc\.md"):
        _run_python(broken, {})


def test_an_example_that_exits_as_documented_passes(document: Path, tmp_path: Path):
    _run_shell(fenced_blocks(document)[2], tmp_path)
