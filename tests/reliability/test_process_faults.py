"""Hermes itself dies or runs out of disk in the middle of writing, and two restores race.

A file or backup folder appears under its final name complete or not at all: a SIGKILLed
export or backup leaves only hidden temporary leftovers, and the next run succeeds.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hermes.cli import cli
from hermes.formats import iter_documents
from hermes.formats.base import STALE_AFTER
from hermes.sample import iter_collection
from hermes.storage.warehouse import DataWarehouseExporter, DataWarehouseManager
from tests.reliability.faults import damage, expected_bson, kill

BIG = 4000  # documents of about 5 KB: an export that takes a second or two


@pytest.fixture
def big(db) -> list[dict]:
    """A collection large enough to kill a command in the middle of writing it."""
    documents = [
        {**document, "padding": "x" * 5000} for document in iter_collection("raw_documents", BIG)
    ]
    db["big"].insert_many(documents)
    return documents


def hermes_process(uri: str, database: str, *args: str, cwd: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "hermes", "--uri", uri, "--database", database, *args]
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"finished before the fault: {process.communicate()}"
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.005)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_an_export_killed_while_writing_leaves_no_file_under_its_name(
    big, warehouse_server, database_name, tmp_path, ledger
):
    out = tmp_path / "out"
    process = hermes_process(
        warehouse_server.uri,
        database_name,
        "export",
        "-c",
        "big",
        "--output-dir",
        "out",
        cwd=tmp_path,
    )
    wait_for(lambda: out.is_dir() and hidden(out), process)
    kill(process.pid)
    assert not (out / "big.json").exists()
    [leftover] = hidden(out)
    assert leftover.startswith(".big.json.") and leftover.endswith(".tmp")

    export = ["--uri", warehouse_server.uri, "--database", database_name, "export", "-c", "big"]
    export += ["--output-dir", str(out)]
    rerun = CliRunner().invoke(cli, export)
    assert rerun.exit_code == 0, rerun.output
    assert hidden(out) == [leftover]  # too recent to be judged abandoned
    age(out / leftover)
    assert CliRunner().invoke(cli, [*export, "--force"]).exit_code == 0
    assert hidden(out) == []  # the next write of big.json removed it
    lost = damage(expected_bson(big), expected_bson(iter_documents(out / "big.json")))
    ledger.record("hermes SIGKILLed mid-export", documents=BIG, lost=lost)
    assert lost == 0


def test_a_backup_killed_while_writing_leaves_no_backup_folder(
    big, db_manager, warehouse_server, database_name, tmp_path, ledger
):
    process = hermes_process(
        warehouse_server.uri,
        database_name,
        "backup",
        "--backup-dir",
        "backups/nightly",
        cwd=tmp_path,
    )
    backups = tmp_path / "backups"

    def writing() -> bool:
        return backups.is_dir() and any(
            hidden(folder) for folder in backups.iterdir() if folder.is_dir()
        )

    wait_for(writing, process)
    kill(process.pid)
    assert not (backups / "nightly").exists()
    [leftover] = hidden(backups)
    assert leftover.startswith(".nightly.tmp-")
    assert not (backups / leftover / "manifest.json").exists()

    age(backups / leftover)
    result = DataWarehouseManager(db_manager).backup(backups / "nightly")
    assert DataWarehouseManager(db_manager).verify(result.path).ok
    assert hidden(backups) == []  # the abandoned folder went with the next backup
    lost = damage(expected_bson(big), expected_bson(iter_documents(result.path / "big.json")))
    ledger.record("hermes SIGKILLed mid-backup", documents=BIG, lost=lost)
    assert lost == 0


def age(path: Path) -> None:
    """Make a leftover look as old as an abandoned one (its writer would have touched it)."""
    past = time.time() - STALE_AFTER - 1
    os.utime(path, (past, past))


def test_a_temporary_file_still_locked_by_its_writer_is_left_alone(db_manager, db, tmp_path):
    db["c"].insert_one({"_id": 1})
    writing = tmp_path / ".c.json.abcd1234.tmp"
    writing.write_bytes(b"[")
    age(writing)
    with open(writing, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another writer, alive
        DataWarehouseExporter(db_manager).export_collection("c", tmp_path / "c.json")
        assert writing.exists()
    DataWarehouseExporter(db_manager).export_collection("c", tmp_path / "c.json")
    assert not writing.exists()


# ------------------------------------------------------------------------------------------
# A full disk
# ------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root and a mount namespace that allows it, else skipped)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_an_export_clearly_and_leaves_nothing(
    big, db_manager, small_disk, ledger
):
    target = small_disk / "big.jsonl"
    with pytest.raises(OSError, match=r"No space left on device: .*big\.jsonl"):
        DataWarehouseExporter(db_manager).export_collection("big", target)
    assert list(small_disk.iterdir()) == []
    ledger.record("disk full during an export", documents=BIG, lost=0)


def test_a_full_disk_fails_a_backup_clearly_and_leaves_nothing(big, db_manager, small_disk, ledger):
    with pytest.raises(OSError, match=r"No space left on device: .*big\.json"):
        DataWarehouseManager(db_manager).backup(small_disk / "backup")
    assert list(small_disk.iterdir()) == []
    ledger.record("disk full during a backup", documents=BIG, lost=0)


def _limit_file_size() -> None:
    """In the child: files may not grow past 1 MB, and going past fails the write (EFBIG)
    instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_file_size_limit_ends_the_cli_with_exit_2_naming_the_file(
    big, warehouse_server, database_name, tmp_path, ledger
):
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "hermes",
            "--uri",
            warehouse_server.uri,
            "--database",
            database_name,
            "export",
            "-c",
            "big",
            "--format",
            "jsonl",
            "--output-dir",
            "out",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        check=False,
    )
    assert finished.returncode == 2, finished.stderr
    assert "File too large" in finished.stderr and "big.jsonl" in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path / "out") == []
    ledger.record("file size limit during a CLI export", documents=BIG, lost=0)
