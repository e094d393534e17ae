"""The summary tables printed at the end of a command (stdout, suppressed by ``--quiet``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.filesize import decimal
from rich.table import Table


def size_text(value: int | None) -> str:
    return "-" if value is None else decimal(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _file(path: str | Path | None) -> str:
    return "-" if path is None else str(path)


#: Columns that hold counts.
_NUMERIC = {
    "documents",
    "read",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "existing",
    "indexes",
}


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table whose count columns are right-aligned with thousands separators."""
    result = Table(title=title, title_justify="left")
    for header in headers:
        numeric = header in _NUMERIC
        result.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        result.add_row(*(f"{cell:,}" if isinstance(cell, int) else str(cell) for cell in row))
    return result


def written_table(title: str, results: Iterable[Any]) -> Table:
    """Files written from the warehouse (export, backup, migrate): one row per collection."""
    return table(
        title,
        ("collection", "documents", "file", "size", "time"),
        (
            (r.collection, r.count, _file(r.path), size_text(r.bytes), _seconds(r.seconds))
            for r in results
        ),
    )


def imported_table(title: str, reports: Iterable[Any]) -> Table:
    """Files read into the warehouse (import, restore): what happened to each record."""
    return table(
        title,
        ("collection", "read", "inserted", "updated", "unchanged", "rejected", "file", "time"),
        (
            (
                r.collection,
                r.read,
                r.inserted,
                r.updated,
                r.unchanged,
                r.rejected,
                _file(r.path),
                _seconds(r.seconds),
            )
            for r in reports
        ),
    )


def restore_plan_table(title: str, report: Any) -> Table:
    """What a restore would do to each collection (``--dry-run``)."""
    return table(
        title,
        ("collection", "file", "documents", "existing", "indexes", "action"),
        (
            (
                c.collection,
                c.file,
                c.documents,
                "-" if c.existing is None else c.existing,
                c.indexes,
                c.action,
            )
            for c in report.collections
        ),
    )


def verified_table(title: str, checks: Iterable[Any]) -> Table:
    """Each file of a verified backup with the count it holds."""
    return table(
        title,
        ("collection", "documents", "file", "checksum"),
        (
            (c.collection, c.actual_count, c.file, "ok" if c.checksum_ok else "WRONG")
            for c in checks
        ),
    )
