"""Hermes benchmark: one command, one process tree, one table of ratios measured side by side.

    ./run bench            # 200,000 sample documents
    ./run bench --full     # 1,000,000 (and a 200k run beside it, to show memory stays flat)

It starts an embedded warehouse in a temporary folder, loads the sample corpus, then runs every
task in a fresh child process (so each peak-RSS figure is that task's own) and prints, for each
comparison, Hermes' throughput against its baseline and the target. Raw figures go to
``benchmarks/results/<timestamp>.json`` and a chart beside it when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


@dataclass(frozen=True)
class Comparison:
    label: str
    task: str
    baseline: str | None
    target: float | None  # minimum ratio (or absolute figure, see kind)
    kind: str = "ratio"  # ratio: docs/s over baseline's; cpu: docs per CPU-second; rss: MB; wall: s


COMPARISONS = [
    Comparison(
        "JSONL write vs bson.json_util",
        "file.jsonl.write.hermes",
        "file.jsonl.write.json_util",
        5.0,
    ),
    Comparison(
        "JSONL read vs bson.json_util", "file.jsonl.read.hermes", "file.jsonl.read.json_util", 5.0
    ),
    Comparison(
        "Parquet write vs plain pyarrow",
        "file.parquet.write.hermes",
        "file.parquet.write.pyarrow",
        None,
    ),
    Comparison(
        "Parquet read vs plain pyarrow",
        "file.parquet.read.hermes",
        "file.parquet.read.pyarrow",
        None,
    ),
    Comparison(
        "JSONL->Parquet vs DuckDB (1 thread)",
        "file.jsonl_to_parquet.hermes",
        "file.jsonl_to_parquet.duckdb",
        0.5,
    ),
    Comparison(
        "JSONL->Parquet vs pandas",
        "file.jsonl_to_parquet.hermes",
        "file.jsonl_to_parquet.pandas",
        2.0,
    ),
    Comparison("Export JSONL vs cursor drain", "wh.export.hermes.jsonl", "wh.drain", 0.85),
    Comparison("Export Parquet vs cursor drain", "wh.export.hermes.parquet", "wh.drain", 0.85),
    Comparison("Export CSV vs cursor drain", "wh.export.hermes.csv", "wh.drain", 0.85),
    Comparison(
        "Export JSONL vs Handbook (list + json.dump)",
        "wh.export.hermes.jsonl",
        "wh.export.handbook",
        1.0,
    ),
    Comparison(
        "Export JSONL vs json_util per document",
        "wh.export.hermes.jsonl",
        "wh.export.json_util",
        1.0,
    ),
    Comparison(
        "Import JSONL vs insert_many ceiling", "wh.import.hermes.jsonl", "wh.insert_ceiling", 0.85
    ),
    Comparison(
        "Import Parquet vs insert_many ceiling",
        "wh.import.hermes.parquet",
        "wh.insert_ceiling",
        0.85,
    ),
    Comparison("Backup (JSONL) vs cursor drain", "wh.backup.hermes", "wh.drain", 0.85),
    Comparison("Restore vs insert_many ceiling", "wh.restore.hermes", "wh.insert_ceiling", 0.85),
    Comparison(
        "Export JSONL docs per client CPU-s", "wh.export.hermes.jsonl", None, 100_000, "cpu"
    ),
    Comparison(
        "Export Parquet docs per client CPU-s", "wh.export.hermes.parquet", None, 100_000, "cpu"
    ),
    Comparison("Cursor drain docs per client CPU-s", "wh.drain", None, None, "cpu"),
    Comparison("Import JSONL docs per client CPU-s", "wh.import.hermes.jsonl", None, 50_000, "cpu"),
    Comparison(
        "Import Parquet docs per client CPU-s", "wh.import.hermes.parquet", None, 50_000, "cpu"
    ),
    Comparison("hermes --help start-up (s)", "cli.help", None, 0.5, "wall"),
]
#: Tasks whose peak RSS is a Hermes operation (target: under 300 MB).
HERMES_TASKS = sorted({c.task for c in COMPARISONS if c.task != "cli.help"})
ORDER = [
    "file.jsonl.write.hermes",
    "file.jsonl.write.json_util",
    "file.jsonl.read.hermes",
    "file.jsonl.read.json_util",
    "file.parquet.write.hermes",
    "file.parquet.write.pyarrow",
    "file.parquet.read.hermes",
    "file.parquet.read.pyarrow",
    "file.jsonl_to_parquet.hermes",
    "file.jsonl_to_parquet.duckdb",
    "file.jsonl_to_parquet.pandas",
    "wh.drain",
    "wh.export.hermes.jsonl",
    "wh.export.hermes.parquet",
    "wh.export.hermes.csv",
    "wh.export.handbook",
    "wh.export.json_util",
    "wh.insert_ceiling",
    "wh.import.hermes.jsonl",
    "wh.import.hermes.parquet",
    "wh.backup.hermes",
    "wh.restore.hermes",
    "cli.help",
]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(workdir: Path, size: int, uri: str, database: str) -> None:
    """Load the sample corpus into the warehouse and write the input files of the file tasks."""
    import orjson
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    from pymongo import MongoClient

    from hermes.formats import write_documents
    from hermes.sample import iter_collection

    client = MongoClient(uri)
    collection = client[database]["raw_documents"]
    collection.drop()
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for doc in iter_collection("raw_documents", size):
        batch.append(doc)
        if len(batch) == 5000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)
    _log(f"loaded {size:,} documents in {time.perf_counter() - started:.1f} s")
    write_documents(workdir / "corpus.bson.jsonl", collection.find(batch_size=10_000))
    raw = collection.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))
    with open(workdir / "corpus.bson", "wb") as out:
        for doc in raw.find(batch_size=10_000):
            out.write(doc.raw)
    with open(workdir / "corpus.plain.jsonl", "wb") as out:
        for doc in iter_collection("raw_documents", size):
            out.write(orjson.dumps(doc, default=str))
            out.write(b"\n")
    client.close()


def run_task(name: str, workdir: Path, uri: str, database: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE / "tasks.py"),
        name,
        "--workdir",
        str(workdir),
        "--uri",
        uri,
        "--database",
        database,
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": reason[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rate(figures: dict[str, Any]) -> float | None:
    if "error" in figures or not figures.get("seconds"):
        return None
    return figures["docs"] / figures["seconds"]


def table(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for comp in COMPARISONS:
        mine = results.get(comp.task, {"error": "not run"})
        value: float | None
        if comp.kind == "ratio":
            base = results.get(comp.baseline or "", {"error": "not run"})
            mine_rate, base_rate = _rate(mine), _rate(base)
            value = mine_rate / base_rate if mine_rate and base_rate else None
            shown = f"{value:.2f}x" if value is not None else "n/a"
            detail = (
                f"{mine_rate:,.0f} vs {base_rate:,.0f} docs/s"
                if value is not None
                else mine.get("error") or base.get("error", "")
            )
        elif comp.kind == "cpu":
            value = mine["docs"] / mine["cpu"] if "error" not in mine and mine.get("cpu") else None
            shown = f"{value:,.0f}" if value is not None else "n/a"
            detail = mine.get(
                "error", f"{mine.get('cpu', 0):.1f} CPU-s for {mine.get('docs', 0):,} docs"
            )
        else:
            value = mine.get("seconds") if "error" not in mine else None
            shown = f"{value:.3f}" if value is not None else "n/a"
            detail = mine.get("error", "best of 5")
        if comp.target is None or value is None:
            verdict = "-" if value is not None else "?"
        elif comp.kind == "wall":
            verdict = "ok" if value <= comp.target else "MISS"
        else:
            verdict = "ok" if value >= comp.target else "MISS"
        target = (
            ""
            if comp.target is None
            else (f"<= {comp.target}" if comp.kind == "wall" else f">= {comp.target:,}")
        )
        rows.append([comp.label, shown, target, verdict, detail])
    for name in HERMES_TASKS:
        figures = results.get(name, {})
        if "max_rss_mb" in figures:
            rss = figures["max_rss_mb"]
            rows.append(
                [f"Peak RSS {name}", f"{rss:.0f} MB", "<= 300", "ok" if rss <= 300 else "MISS", ""]
            )
    return rows


def print_table(rows: list[list[str]], title: str) -> None:
    headers = ["comparison", "measured", "target", "", "detail"]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def chart(results: dict[str, dict[str, dict[str, Any]]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = list(results)
    names = [n for n in ORDER if any(_rate(results[s].get(n, {"error": 1})) for s in sizes)]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(names) * len(sizes) + 1.5))
    height = 0.8 / len(sizes)
    for i, size in enumerate(sizes):
        rates = [_rate(results[size].get(n, {"error": 1})) or 0 for n in names]
        ax.barh([j + i * height for j in range(len(names))], rates, height, label=f"{size} docs")
    ax.set_yticks([j + height * (len(sizes) - 1) / 2 for j in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel("documents per second")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def run_size(size: int, only: str | None, keep: bool) -> dict[str, dict[str, Any]]:
    from hermes.storage.embedded import EmbeddedWarehouse

    workdir = Path(tempfile.mkdtemp(prefix=f"hermes-bench-{size}-"))
    warehouse = EmbeddedWarehouse(workdir / "home")
    info = warehouse.ensure_running()
    results: dict[str, dict[str, Any]] = {}
    try:
        prepare(workdir, size, info.uri, "bench")
        for name in ORDER:
            if only and not name.startswith(only):
                continue
            _log(f"[{size:,}] {name} ...")
            results[name] = run_task(name, workdir, info.uri, "bench")
            _log(f"    {results[name]}")
    finally:
        warehouse.stop()
        if not keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=200_000, help="documents (default 200,000)")
    parser.add_argument("--full", action="store_true", help="also run 1,000,000 documents")
    parser.add_argument("--only", help="run only the tasks whose name starts with this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args()
    sizes = [args.size] + ([1_000_000] if args.full and args.size != 1_000_000 else [])
    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    for size in sizes:
        all_results[str(size)] = run_size(size, args.only, args.keep)
        print_table(
            table(all_results[str(size)]), f"Hermes benchmark, {size:,} sample raw documents"
        )
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}.json").write_text(json.dumps(all_results, indent=2))
    drawn = chart(all_results, out_dir / f"{stamp}.png")
    print(
        f"\nraw figures: {out_dir / f'{stamp}.json'}"
        + (f", chart: {out_dir / f'{stamp}.png'}" if drawn else "")
    )


if __name__ == "__main__":
    main()
