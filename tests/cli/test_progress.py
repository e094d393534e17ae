"""The progress bar: on stderr, only on a terminal, never with --quiet."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from rich.console import Console

from hermes.cli.progress import RichProgress
from hermes.cli.state import CliState
from hermes.progress import NO_PROGRESS


def _drawn(*tasks: tuple[str, int | None, str, int]) -> str:
    buffer = io.StringIO()
    with RichProgress(Console(file=buffer, force_terminal=True, width=150)) as bar:
        for label, total, unit, done in tasks:
            bar.start(label, total, unit)
            bar.advance(done)
            bar.finish()
    return buffer.getvalue()


def test_documents_show_done_out_of_total():
    out = _drawn(("raw_documents", 10, "docs", 10))
    assert "raw_documents" in out
    assert "10/10 docs" in out


def test_a_finished_task_ends_at_what_was_done_when_the_total_was_an_estimate():
    out = _drawn(("chunks", 100, "docs", 60), ("unknown", None, "docs", 7))
    assert "60/60 docs" in out
    assert "7/7 docs" in out


def test_file_reads_show_bytes():
    out = _drawn(("exports/raw_documents.json", 2_000_000, "bytes", 2_000_000))
    assert "2.0 MB/2.0 MB" in out


def test_no_bar_without_a_terminal_or_with_quiet():
    with CliState().progress() as progress:  # pytest captures stderr: not a terminal
        assert progress is NO_PROGRESS
    with CliState(quiet=True).progress() as progress:
        assert progress is NO_PROGRESS


def _hermes_with_stderr_on_a_terminal(cwd, *args: str) -> tuple[str, str]:
    """Run ``hermes ARGS`` with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hermes", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=child,
        env=os.environ.copy(),
    )
    os.close(child)
    terminal = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        terminal += data
    out, _ = proc.communicate(timeout=60)
    os.close(main)
    assert proc.returncode == 0, terminal.decode()
    return out.decode(), terminal.decode()


def test_an_export_draws_its_progress_on_a_terminal_stderr(db, database_name, tmp_path):
    db["things"].insert_many([{"n": i} for i in range(50)])
    stdout, terminal = _hermes_with_stderr_on_a_terminal(
        tmp_path, "--database", database_name, "export"
    )
    assert "50/50 docs" in terminal
    assert "things" in stdout
    assert "docs" not in stdout

    stdout, terminal = _hermes_with_stderr_on_a_terminal(
        tmp_path, "-q", "--database", database_name, "export", "--force"
    )
    assert (stdout, terminal) == ("", "")
