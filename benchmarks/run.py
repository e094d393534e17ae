"""Hermes benchmark: one command, one process tree, one table of ratios measured side by side.

    ./run bench            # 200,000 sample documents
    ./run bench --full     # 1,000,000 (and a 200k run beside it, to show memory stays flat)

It starts an embedded warehouse in a temporary folder, loads the sample corpus, then runs every
task in a fresh child process (so each peak-RSS figure is that task's own) and prints, for each
comparison, Hermes' throughput against its baseline and the target. Raw figures go to
``benchmarks/results/<timestamp>.json`` and a PNG chart beside it (drawn with numpy alone).
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
sys.path.insert(0, str(HERE))


@dataclass(frozen=True)
class Comparison:
    label: str
    task: str
    baseline: str | None
    target: float | None  # minimum ratio (or absolute figure, see kind)
    #: ratio: docs/s over the baseline's; cpu: docs per client CPU-second; rss: peak RSS over the
    #: baseline's (below the target is better); wall: seconds (below the target is better)
    kind: str = "ratio"


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
    Comparison("Export JSON (array) vs cursor drain", "wh.export.hermes.json", "wh.drain", 0.85),
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
        "Export Parquet vs PyMongoArrow (find_arrow_all + write_table)",
        "wh.export.hermes.parquet",
        "wh.export.pymongoarrow",
        1.0,
    ),
    Comparison(
        "Export Parquet vs PyMongoArrow, chunks collection",
        "wh.export.hermes.parquet.chunks",
        "wh.export.pymongoarrow.chunks",
        1.0,
    ),
    Comparison(
        "Peak RSS export JSONL vs Handbook",
        "wh.export.hermes.jsonl",
        "wh.export.handbook",
        1.0,
        "rss",
    ),
    Comparison(
        "Peak RSS export Parquet vs PyMongoArrow",
        "wh.export.hermes.parquet",
        "wh.export.pymongoarrow",
        1.0,
        "rss",
    ),
    Comparison(
        "Peak RSS export Parquet vs PyMongoArrow, chunks",
        "wh.export.hermes.parquet.chunks",
        "wh.export.pymongoarrow.chunks",
        1.0,
        "rss",
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
    Comparison(
        "Import JSON (array) vs insert_many ceiling",
        "wh.import.hermes.json",
        "wh.insert_ceiling",
        0.85,
    ),
    Comparison("Backup (JSONL) vs cursor drain", "wh.backup.hermes", "wh.drain", 0.85),
    Comparison("Restore vs insert_many ceiling", "wh.restore.hermes", "wh.insert_ceiling", 0.85),
    Comparison(
        "Restore over an existing collection vs ceiling",
        "wh.restore.hermes.replace",
        "wh.insert_ceiling",
        None,
    ),
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
    Comparison("Import JSON docs per client CPU-s", "wh.import.hermes.json", None, 50_000, "cpu"),
    Comparison(
        "Parallel export x2 vs x1 (JSONL)", "wh.parallel.export.2", "wh.parallel.export.1", None
    ),
    Comparison(
        "Parallel export x4 vs x1 (JSONL)", "wh.parallel.export.4", "wh.parallel.export.1", None
    ),
    Comparison(
        "Parallel import x2 vs x1 (JSONL)", "wh.parallel.import.2", "wh.parallel.import.1", None
    ),
    Comparison(
        "Parallel import x4 vs x1 (JSONL)", "wh.parallel.import.4", "wh.parallel.import.1", None
    ),
    Comparison(
        "Backup 4 collections, 4 workers vs 1", "wh.backup.workers.4", "wh.backup.workers.1", None
    ),
    Comparison("hermes --help start-up (s)", "cli.help", None, 0.5, "wall"),
]
#: Tasks whose peak RSS is a Hermes operation (target: under 300 MB).
HERMES_TASKS = sorted(
    {
        c.task
        for c in COMPARISONS
        if c.task not in ("cli.help", "wh.drain") and not c.task.startswith("wh.parallel")
    }
)
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
    "wh.export.hermes.json",
    "wh.backup.hermes",
    "wh.drain",
    "wh.export.handbook",
    "wh.export.json_util",
    "wh.export.pymongoarrow",
    "wh.export.hermes.parquet.chunks",
    "wh.export.pymongoarrow.chunks",
    "wh.export.hermes.parquet.chunks",
    "wh.export.pymongoarrow.chunks",
    "wh.insert_ceiling",
    "wh.import.hermes.jsonl",
    "wh.import.hermes.parquet",
    "wh.import.hermes.json",
    "wh.restore.hermes",
    "wh.restore.hermes.replace",
    "wh.parallel.export.1",
    "wh.parallel.export.2",
    "wh.parallel.export.4",
    "wh.parallel.import.1",
    "wh.parallel.import.2",
    "wh.parallel.import.4",
    "wh.backup.workers.1",
    "wh.backup.workers.4",
    "cli.help",
]
#: Tasks run by the python of a separate venv (``pip install pymongoarrow``: it pins pyarrow 25).
VENV_TASKS = {"wh.export.pymongoarrow", "wh.export.pymongoarrow.chunks"}
#: Collections of the ``<database>_multi`` database that the backup-workers tasks copy.
MULTI_COLLECTIONS = ("raw_a", "raw_b", "raw_c", "raw_d")


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
    started = time.perf_counter()
    _load(collection, iter_collection("raw_documents", size))
    _log(f"loaded {size:,} documents in {time.perf_counter() - started:.1f} s")
    for name in MULTI_COLLECTIONS:
        _load(client[database + "_multi"][name], iter_collection("raw_documents", size // 8))
    # Chunks: flat enough for PyMongoArrow, which fails on the raw documents' nested content.
    _load(client[database + "_multi"]["chunks"], iter_collection("chunks", size // 4))
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


def _load(collection: Any, documents: Any) -> None:
    collection.drop()
    batch: list[dict[str, Any]] = []
    for doc in documents:
        batch.append(doc)
        if len(batch) == 5000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)


def venv_python(workdir: Path) -> tuple[str | None, str]:
    """A venv under the work folder with PyMongoArrow installed: its python, or None and why."""
    venv = workdir / "pymongoarrow-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import pymongoarrow.api, pyarrow.parquet"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python), ""
    _log("creating a venv with pymongoarrow (it pins pyarrow 25, the project has 26) ...")
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "pymongoarrow"],
        check,
    ]  # fmt: skip
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["failed"]
            return None, f"pymongoarrow did not install: {lines[-1][:150]}"
    return str(python), ""


def _best(earlier: dict[str, Any] | None, figures: dict[str, Any]) -> dict[str, Any]:
    """The faster of two runs of one task (ORDER runs a few twice: the drain before and after
    the exports it is the ceiling of, and the PyMongoArrow pair interleaved, so that neither
    side of a comparison gets the server's warm cache alone)."""
    if not earlier or "seconds" not in earlier:
        return figures
    if "seconds" not in figures or earlier["seconds"] <= figures["seconds"]:
        return earlier
    return figures


def run_task(
    name: str, workdir: Path, uri: str, database: str, python: str | None = None
) -> dict[str, Any]:
    command = [
        python or sys.executable,
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
                f"{mine_rate:,.0f} vs {base_rate:,.0f} docs/s; "
                f"RSS {mine.get('max_rss_mb', 0):.0f} vs {base.get('max_rss_mb', 0):.0f} MB"
                if value is not None
                else mine.get("error") or base.get("error", "")
            )
        elif comp.kind == "rss":
            base = results.get(comp.baseline or "", {"error": "not run"})
            both = "error" not in mine and "error" not in base
            value = mine["max_rss_mb"] / base["max_rss_mb"] if both else None
            shown = f"{value:.2f}x" if value is not None else "n/a"
            detail = (
                f"{mine['max_rss_mb']:.0f} vs {base['max_rss_mb']:.0f} MB"
                if both
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
        elif comp.kind == "rss":
            verdict = "ok" if value < comp.target else "MISS"
        else:
            verdict = "ok" if value >= comp.target else "MISS"
        below = {"wall": "<=", "rss": "<"}.get(comp.kind)
        target = (
            ""
            if comp.target is None
            else (f"{below} {comp.target}" if below else f">= {comp.target:,}")
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


def rss_table(results: dict[str, dict[str, dict[str, Any]]]) -> list[list[str]]:
    """Peak RSS of each Hermes operation at every size run: flat means streaming."""
    sizes = list(results)
    rows = []
    for name in HERMES_TASKS:
        values = [results[size].get(name, {}).get("max_rss_mb") for size in sizes]
        if all(v is not None for v in values):
            growth = values[-1] / values[0]
            rows.append(
                [
                    f"Peak RSS {name}",
                    " / ".join(f"{v:.0f}" for v in values) + " MB",
                    "<= 300, flat",
                    "ok" if max(values) <= 300 and growth < 1.25 else "MISS",
                    f"{' vs '.join(f'{int(s):,}' for s in sizes)} docs: x{growth:.2f}",
                ]
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
    from chart import draw

    return draw(results, list(dict.fromkeys(ORDER)), path)


def _prepared(workdir: Path, size: int, uri: str, database: str) -> bool:
    """Whether a kept work folder already holds this corpus (loading 1M documents takes minutes)."""
    from pymongo import MongoClient

    files = ("corpus.bson", "corpus.bson.jsonl", "corpus.plain.jsonl")
    if not all((workdir / name).is_file() for name in files):
        return False
    client = MongoClient(uri)
    try:
        multi = client[database + "_multi"]
        return (
            client[database]["raw_documents"].estimated_document_count() == size
            and all(
                multi[name].estimated_document_count() == size // 8 for name in MULTI_COLLECTIONS
            )
            and multi["chunks"].estimated_document_count() == size // 4
        )
    finally:
        client.close()


def run_size(
    size: int, only: str | None, keep: bool, base: Path | None = None
) -> dict[str, dict[str, Any]]:
    from hermes.storage.embedded import EmbeddedWarehouse

    if base is None:
        workdir = Path(tempfile.mkdtemp(prefix=f"hermes-bench-{size}-"))
    else:
        workdir = base / str(size)
        workdir.mkdir(parents=True, exist_ok=True)
        keep = True
    warehouse = EmbeddedWarehouse(workdir / "home")
    info = warehouse.ensure_running()
    results: dict[str, dict[str, Any]] = {}
    try:
        if _prepared(workdir, size, info.uri, "bench"):
            _log(f"reusing the {size:,} documents loaded in {workdir}")
        else:
            prepare(workdir, size, info.uri, "bench")
        for name in ORDER:
            if only and not name.startswith(tuple(only.split(","))):
                continue
            _log(f"[{size:,}] {name} ...")
            if name in VENV_TASKS:
                python, why = venv_python(workdir)
                if python is None:
                    results[name] = {"error": why}
                    continue
                figures = run_task(name, workdir, info.uri, "bench", python)
            else:
                figures = run_task(name, workdir, info.uri, "bench")
            _log(f"    {figures}")
            results[name] = _best(results.get(name), figures)
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
    parser.add_argument(
        "--only", help="run only the tasks whose name starts with one of these (comma-separated)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument(
        "--merge",
        type=Path,
        help="start from the figures of an earlier results JSON (tasks run now replace theirs)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="work in this folder and keep it; a corpus already loaded there is reused",
    )
    args = parser.parse_args()
    sizes = [args.size] + ([1_000_000] if args.full and args.size != 1_000_000 else [])
    all_results: dict[str, dict[str, dict[str, Any]]] = {}
    earlier = json.loads(args.merge.read_text()) if args.merge else {}
    for size in sizes:
        fresh = run_size(size, args.only, args.keep, args.workdir)
        all_results[str(size)] = {**earlier.get(str(size), {}), **fresh}
        print_table(
            table(all_results[str(size)]), f"Hermes benchmark, {size:,} sample raw documents"
        )
    if len(all_results) > 1:
        print_table(rss_table(all_results), "Peak memory as the corpus grows")
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
