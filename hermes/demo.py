"""The end-to-end demo (``./run demo``): the main job on the embedded warehouse, through the CLI.

It loads the sample corpus into a ``hermes_demo`` database, exports it to every format, imports
an export into a second database, backs the warehouse up, verifies and restores the backup into a
third database, migrates the backup to Parquet, and checks that every copy is byte-identical to
the source (raw BSON compared). Files land in ``./demo-output``. Exit status 0 means it all held.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

DATABASE = "hermes_demo"
OUTPUT = Path("demo-output")
SIZE = "2000"


def hermes(*args: str, database: str = DATABASE) -> None:
    """Run one ``hermes`` command as a user would, failing the demo if it fails."""
    command = ["hermes", "--database", database, *args]
    print(f"\n$ {' '.join(command)}", flush=True)
    completed = subprocess.run([sys.executable, "-m", "hermes", "--database", database, *args])
    if completed.returncode != 0:
        raise SystemExit(
            f"demo step failed with exit code {completed.returncode}: {' '.join(command)}"
        )


def snapshot(database: str) -> dict[str, list[bytes]]:
    """Every collection of a database as raw BSON documents sorted by _id."""
    from hermes.storage.database import MongoDBManager

    raw = CodecOptions(document_class=RawBSONDocument)
    with MongoDBManager(database=database) as manager:
        db = manager.get_database()
        return {
            name: [doc.raw for doc in db.get_collection(name, codec_options=raw).find().sort("_id")]
            for name in manager.list_collections()
            if not name.startswith("hermes_")
        }


def main() -> None:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    backup_dir = OUTPUT / "backups" / "demo"

    hermes("load-sample", "--size", SIZE, "--force")
    hermes("status", "--backups-root", str(OUTPUT / "backups"))
    for fmt in ("jsonl", "parquet", "csv", "json"):
        hermes("export", "--format", fmt, "--output-dir", str(OUTPUT / "exports" / fmt))
    hermes(
        "export",
        "--format",
        "jsonl",
        "--compression",
        "zstd",
        "--collection",
        "raw_documents",
        "--query",
        '{"platform": "medium"}',
        "--output-dir",
        str(OUTPUT / "exports" / "medium"),
    )
    hermes(
        "import-data",
        "--input-dir",
        str(OUTPUT / "exports" / "parquet"),
        "--drop",
        database=f"{DATABASE}_copy",
    )
    hermes("backup", "--backup-dir", str(backup_dir))
    hermes("verify", "--backup-dir", str(backup_dir))
    hermes("restore", "--backup-dir", str(backup_dir), "--confirm", database=f"{DATABASE}_restored")
    hermes(
        "migrate",
        "--source-dir",
        str(backup_dir),
        "--target-dir",
        str(OUTPUT / "backups" / "parquet"),
        "--source-format",
        "json",
        "--target-format",
        "parquet",
    )
    hermes("verify", "--backup-dir", str(OUTPUT / "backups" / "parquet"))
    hermes("status", "--backups-root", str(OUTPUT / "backups"))

    source = snapshot(DATABASE)
    print("\nByte-identical copies (raw BSON, sorted by _id):")
    ok = True
    for copy in (f"{DATABASE}_copy", f"{DATABASE}_restored"):
        same = snapshot(copy) == source
        ok &= same
        total = sum(len(docs) for docs in source.values())
        print(
            f"  {copy:<24} {'identical' if same else 'DIFFERENT'} ({total:,} documents in {len(source)} collections)"
        )
    print(
        f"\nFiles are in {OUTPUT.resolve()}; the embedded warehouse keeps running "
        "(stop it with: hermes warehouse stop)."
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
