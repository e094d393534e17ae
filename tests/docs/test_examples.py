"""The examples of the README and the user guide run, in order, as a reader would run them.

Each document runs in its own temporary working folder and on its own database of the session's
embedded warehouse (``HERMES_DATABASE``), with the virtualenv's ``bin`` first on ``PATH`` so
that its shell blocks call this checkout's ``hermes``. See :mod:`tests.docs.markdown` for which
blocks run and how they are marked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hermes.storage.database import MongoDBManager
from tests.docs.markdown import Block, MarkdownError, fenced_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "docs/EXPORT_IMPORT.md")
BIN = Path(sys.executable).parent
SHELL_TIMEOUT = 180


@pytest.fixture
def zenml_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Iterator[None]:
    """A private, offline ZenML store for the examples that use ZenML (nothing is imported
    here: ZenML reads this environment when an example first uses it)."""
    from tests.zenml.conftest import ZENML_ENVIRONMENT, _forget_zenml_state

    root = tmp_path_factory.mktemp("zenml-docs")
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(root / "config"))
    monkeypatch.setenv("ZENML_LOCAL_STORES_PATH", str(root / "stores"))
    for key, value in ZENML_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    _forget_zenml_state()
    yield
    _forget_zenml_state()


@pytest.fixture
def reader_session(
    warehouse_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, zenml_sandbox
) -> Iterator[Path]:
    """A reader's terminal: an empty folder, a database of its own, this checkout's ``hermes``.

    Databases the examples create (``hermes --database staging ...``) are dropped afterwards.
    """
    database = f"docs_{uuid.uuid4().hex[:10]}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # a Python shell started here imports from here
    modules = set(sys.modules)
    monkeypatch.setenv("HERMES_DATABASE", database)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("COLUMNS", "120")
    with MongoDBManager(database=database) as manager:
        before = set(manager.client.list_database_names())
        yield tmp_path
        for name in set(manager.client.list_database_names()) - before | {database}:
            manager.client.drop_database(name)
    for name in set(sys.modules) - modules:  # modules the examples saved and imported
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]


def _save(block: Block, folder: Path) -> None:
    (folder / block.directives["save-as"]).write_text(block.text, encoding="utf-8")


def _run_python(block: Block, namespace: dict[str, Any]) -> None:
    # Padding puts each statement on its line of the document in tracebacks.
    code = compile("\n" * block.line + block.text, block.path, "exec")
    try:
        exec(code, namespace)
    except Exception:
        failure = traceback.format_exc()
    else:
        return
    pytest.fail(f"{block.where} failed:\n{failure}", pytrace=False)


def _run_shell(block: Block, folder: Path) -> None:
    script = block.shell_script()
    completed = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=folder,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if completed.returncode != block.expected_exit:
        pytest.fail(
            f"{block.where} exited with {completed.returncode}, expected {block.expected_exit}.\n"
            f"--- script\n{script}--- stdout\n{completed.stdout}--- stderr\n{completed.stderr}",
            pytrace=False,
        )


def _without(value: Any, keys: set[str]) -> Any:
    """A JSON value without the fields named in ``keys``, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(item, keys) for item in value]
    return value


def _check_json(block: Block, folder: Path) -> None:
    try:
        shown = json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f"{block.where} is not valid JSON: {exc}", pytrace=False)
    if "shows" not in block.directives:
        return
    path, _, skipped = block.directives["shows"].partition(" except ")
    real = json.loads((folder / path).read_text())
    ignored = set(skipped.split())
    assert _without(shown, ignored) == _without(real, ignored), (
        f"{block.where} no longer shows what {path} holds (but for {sorted(ignored)}):\n"
        f"{json.dumps(real, indent=2, ensure_ascii=False)}"
    )


def _missing_requirement(block: Block) -> str | None:
    module = block.directives.get("requires")
    if module and importlib.util.find_spec(module) is None:
        return module
    return None


@pytest.mark.parametrize("document", DOCUMENTS)
def test_examples_run_in_order(document: str, reader_session: Path) -> None:
    try:
        blocks = fenced_blocks(ROOT / document, ROOT)
    except MarkdownError as exc:
        pytest.fail(str(exc), pytrace=False)
    assert any(block.runs for block in blocks), f"{document} has no runnable example"
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    for block in blocks:
        if _missing_requirement(block):
            continue
        if "save-as" in block.directives:
            _save(block, reader_session)
        elif block.language == "python":
            _run_python(block, namespace)
        elif block.runs:
            _run_shell(block, reader_session)
        elif block.language == "json":
            _check_json(block, reader_session)
