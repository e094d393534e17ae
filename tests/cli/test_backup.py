"""``hermes backup``, ``verify``, ``restore`` and ``migrate``."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import documents
from tests.strategies import same_bson


def _only_backup(root: Path) -> Path:
    [backup_dir] = list(root.iterdir())
    return backup_dir


def test_backup_verify_restore_gives_identical_collections(
    run, sample, db_manager, other_database, tmp_path
):
    backed_up = run("backup")
    assert backed_up.exit_code == 0, backed_up.output
    backup_dir = _only_backup(tmp_path / "backups")
    assert (backup_dir / "manifest.json").exists()
    for name in sample:
        assert name in backed_up.stdout

    verified = run("verify", "--backup-dir", backup_dir)
    assert verified.exit_code == 0, verified.output
    assert "intact" in verified.stdout

    restored = run(
        "restore", "--backup-dir", backup_dir, "--confirm", database=other_database.database_name
    )
    assert restored.exit_code == 0, restored.output
    for name in sample:
        assert same_bson(documents(db_manager, name), documents(other_database, name))


def test_backup_of_chosen_collections_in_a_chosen_folder(run, sample, tmp_path):
    result = run(
        "backup", "--backup-dir", "mine", "--collections", "odd", "--format", "parquet",
        "--compression", "zstd",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "mine" / "manifest.json").read_text())
    assert "odd" in json.dumps(manifest)
    assert "raw_documents" not in json.dumps(manifest)
    assert (tmp_path / "mine" / "odd.parquet.zst").exists()


def test_backup_and_restore_take_collections_as_export_does(
    run, sample, db_manager, other_database, tmp_path
):
    """``-c`` and ``--collection`` work as on ``export``; ``--collections`` too."""
    backed_up = run("backup", "--backup-dir", "b", "-c", "odd", "--collection", "chunks")
    assert backed_up.exit_code == 0, backed_up.output
    assert set(json.loads((tmp_path / "b" / "manifest.json").read_text())["collections"]) == {
        "odd",
        "chunks",
    }
    restored = run(
        "restore", "--backup-dir", "b", "-c", "odd", "--confirm",
        database=other_database.database_name,
    )  # fmt: skip
    assert restored.exit_code == 0, restored.output
    assert other_database.list_collections() == ["odd"]
    assert same_bson(documents(db_manager, "odd"), documents(other_database, "odd"))


def test_restore_refuses_a_format_the_manifest_does_not_record(run, sample, db, tmp_path):
    assert run("backup", "--backup-dir", "b", "-c", "odd").exit_code == 0
    db["odd"].delete_many({})
    result = run("restore", "--backup-dir", "b", "--format", "parquet", "--confirm")
    assert result.exit_code == 2
    assert "odd.json is json, not parquet (the manifest says so)" in result.stderr
    assert db["odd"].count_documents({}) == 0


def test_an_existing_backup_is_kept_unless_forced(run, sample, db, tmp_path):
    assert run("backup", "--backup-dir", "b", "--collections", "odd").exit_code == 0
    refused = run("backup", "--backup-dir", "b", "--collections", "chunks")
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    assert (tmp_path / "b" / "odd.json").exists()

    forced = run("backup", "--backup-dir", "b", "--collections", "chunks", "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["chunks.json", "manifest.json"]


def test_verify_finds_a_tampered_file(run, sample, tmp_path):
    assert run("backup", "--backup-dir", "b", "--format", "jsonl").exit_code == 0
    with open(tmp_path / "b" / "odd.jsonl", "a") as handle:
        handle.write('{"_id": "intruder"}\n')
    result = run("verify", "--backup-dir", "b")
    assert result.exit_code == 2
    assert "odd.jsonl" in result.stderr


def test_restore_without_confirm_refuses_when_nobody_can_answer(run, sample, db, tmp_path):
    assert run("backup", "--backup-dir", "b").exit_code == 0
    db["odd"].delete_many({})
    result = run("restore", "--backup-dir", "b")
    assert result.exit_code == 2
    assert "--confirm" in result.stderr
    assert db["odd"].count_documents({}) == 0


def test_restore_dry_run_shows_the_plan_and_changes_nothing(run, sample, db, tmp_path):
    assert run("backup", "--backup-dir", "b").exit_code == 0
    db["odd"].delete_many({})
    result = run("restore", "--backup-dir", "b", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.stdout
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if len(cells := [cell.strip() for cell in line.split("│")[1:-1]]) == 6 and cells[0]
    }
    assert set(rows) == set(sample)
    file, documents, existing, _indexes, _action = rows["odd"]
    assert (file, documents, existing) == ("odd.json", str(sample["odd"]), "0")
    assert db["odd"].count_documents({}) == 0


def _restore_on_a_terminal(tmp_path: Path, database: str, answer: bytes) -> tuple[int, str]:
    """Run ``hermes restore`` with a pseudo-terminal as stdin and answer its question."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hermes", "--database", database, "restore", "--backup-dir", "b"],
        cwd=tmp_path,
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    os.close(child)
    os.write(main, answer)
    _, err = proc.communicate(timeout=60)
    os.close(main)
    return proc.returncode, err.decode()


@pytest.mark.parametrize(("answer", "restored"), [(b"y\n", True), (b"n\n", False)])
def test_restore_asks_on_a_terminal(run, sample, db, database_name, tmp_path, answer, restored):
    assert run("backup", "--backup-dir", "b").exit_code == 0
    db["odd"].delete_many({})
    code, err = _restore_on_a_terminal(tmp_path, database_name, answer)
    assert "Go ahead?" in err
    assert database_name in err
    assert code == (0 if restored else 2), err
    assert db["odd"].count_documents({}) == (2 if restored else 0)


def test_migrate_json_to_parquet_to_jsonl_keeps_every_document(run, sample, db_manager, tmp_path):
    assert run("export", "--format", "json").exit_code == 0
    to_parquet = run(
        "migrate", "--source-dir", "exports", "--target-dir", "pq",
        "--source-format", "json", "--target-format", "parquet",
    )  # fmt: skip
    assert to_parquet.exit_code == 0, to_parquet.output
    to_jsonl = run(
        "migrate", "--source-dir", "pq", "--target-dir", "jl", "--target-format", "jsonl"
    )
    assert to_jsonl.exit_code == 0, to_jsonl.output
    assert sorted(p.name for p in (tmp_path / "jl").iterdir()) == sorted(
        f"{name}.jsonl" for name in sample
    )

    from hermes.formats import iter_documents

    for name in sample:
        migrated = sorted(iter_documents(tmp_path / "jl" / f"{name}.jsonl"), key=_id_key)
        assert same_bson(migrated, documents(db_manager, name)), name


def _id_key(document: dict) -> tuple[str, str]:
    value = document["_id"]
    return (type(value).__name__ == "ObjectId", str(value))  # strings sort before ObjectIds
