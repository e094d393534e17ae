"""Fixtures of the reliability tests, and the ledger of faults they injected.

Every fault test records what it injected and how many documents were at stake and lost; when
reliability tests ran, the session ends with a small table of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import MongoClient

from hermes.storage.embedded import EmbeddedWarehouse, ServerInfo
from tests.reliability.faults import discard, private_warehouse


@dataclass
class FaultRecord:
    fault: str
    documents: int
    lost: int


LEDGER: list[FaultRecord] = []


class Ledger:
    """What a test injected, and what it lost (documents missing, duplicated or changed)."""

    def record(self, fault: str, *, documents: int, lost: int) -> None:
        LEDGER.append(FaultRecord(fault, documents, lost))


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER:
        return
    rows: dict[str, list[int]] = {}
    for record in LEDGER:
        runs, documents, lost = rows.setdefault(record.fault, [0, 0, 0])
        rows[record.fault] = [runs + 1, documents + record.documents, lost + record.lost]
    width = max(len(fault) for fault in rows)
    write = terminalreporter.write_line
    terminalreporter.section("faults injected")
    write(f"{'fault':<{width}}  runs  documents  lost")
    for fault, (runs, documents, lost) in rows.items():
        write(f"{fault:<{width}}  {runs:>4}  {documents:>9}  {lost:>4}")
    survived = sum(1 for record in LEDGER if record.lost == 0)
    lost = sum(record.lost for record in LEDGER)
    write(f"{len(LEDGER)} fault(s) injected, {survived} survived, {lost} document(s) lost")


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[tuple[EmbeddedWarehouse, ServerInfo]]:
    """A warehouse server of this test alone, which it may kill and restart."""
    warehouse = private_warehouse(tmp_path / "home")
    info = warehouse.ensure_running()
    yield warehouse, info
    discard(warehouse)


@pytest.fixture(scope="module")
def armed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A server shared by a module's tests that arm fail points on it (never killed)."""
    warehouse = private_warehouse(tmp_path_factory.mktemp("armed") / "home")
    yield warehouse.ensure_running()
    discard(warehouse)


@pytest.fixture
def armed_client(armed_server: ServerInfo) -> Iterator[MongoClient]:
    """The test's own client of the armed server (fail points never target it)."""
    client = MongoClient(armed_server.uri)
    yield client
    client.close()


@pytest.fixture
def fresh_name() -> str:
    return f"rel_{uuid.uuid4().hex[:10]}"
