"""The real ``hermes`` process, as a user runs it, on the session's embedded warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hermes.sample import COLLECTIONS
from tests.cli.conftest import documents
from tests.strategies import same_bson


def hermes(cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """``python -m hermes ARGS`` with this environment (its HERMES_HOME: the same server)."""
    return subprocess.run(
        [sys.executable, "-m", "hermes", *map(str, args)],
        cwd=cwd,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sample_export_import_backup_restore(
    db_manager, other_database, warehouse_server, tmp_path
):
    source = db_manager.database_name
    target = other_database.database_name

    loaded = hermes(tmp_path, "--database", source, "load-sample", "--size", "5")
    assert loaded.returncode == 0, loaded.stderr

    exported = hermes(tmp_path, "-q", "--database", source, "export", "--format", "jsonl")
    assert (exported.returncode, exported.stdout, exported.stderr) == (0, "", "")

    imported = hermes(tmp_path, "--database", target, "import-data", "--input-dir", "exports")
    assert imported.returncode == 0, imported.stderr
    for name in COLLECTIONS:
        assert same_bson(documents(db_manager, name), documents(other_database, name))

    other_database.client.drop_database(target)
    backed_up = hermes(tmp_path, "--database", source, "backup", "--backup-dir", "b")
    assert backed_up.returncode == 0, backed_up.stderr
    assert hermes(tmp_path, "verify", "--backup-dir", "b").returncode == 0
    restored = hermes(tmp_path, "--database", target, "restore", "--backup-dir", "b", "--confirm")
    assert restored.returncode == 0, restored.stderr
    for name in COLLECTIONS:
        assert same_bson(documents(db_manager, name), documents(other_database, name))


def test_restore_from_a_script_needs_confirm(db_manager, warehouse_server, tmp_path):
    source = db_manager.database_name
    assert hermes(tmp_path, "--database", source, "load-sample", "--size", "1").returncode == 0
    assert hermes(tmp_path, "--database", source, "backup", "--backup-dir", "b").returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "hermes", "--database", source, "restore", "--backup-dir", "b"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ")
    assert "--confirm" in result.stderr
