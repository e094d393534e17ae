"""Benchmark tasks, each run in its own child process by ``run.py``.

A task does one job and prints one JSON line: documents handled, wall seconds, CPU seconds of
this process (user + system), peak RSS. Running each in a fresh process keeps peak-memory figures
honest (nothing left over from an earlier task) while the whole benchmark stays one process tree.

    python benchmarks/tasks.py TASK --workdir DIR --uri URI --database DB --collection NAME --count N
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {}


def task(name: str) -> Callable:
    def register(func: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable:
        TASKS[name] = func
        return func

    return register


def _client(args: argparse.Namespace):
    from pymongo import MongoClient

    return MongoClient(args.uri)


def _raw_collection(args: argparse.Namespace):
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    return _client(args)[args.database].get_collection(
        args.collection, codec_options=CodecOptions(document_class=RawBSONDocument)
    )


def _manager(args: argparse.Namespace):
    from hermes.storage.database import MongoDBManager

    return MongoDBManager(uri=args.uri, database=args.database)


def _file(args: argparse.Namespace, name: str) -> Path:
    return Path(args.workdir) / name


# -- files: the sample corpus written once by run.py (corpus.bson: raw BSON, as mongodump) ----


def _source_documents(args: argparse.Namespace):
    """The corpus decoded from raw BSON (C speed), the same input for every writer."""
    import bson

    from hermes.storage.database import CODEC_OPTIONS

    with open(_file(args, "corpus.bson"), "rb") as handle:
        yield from bson.decode_file_iter(handle, codec_options=CODEC_OPTIONS)


@task("file.jsonl.write.hermes")
def _jsonl_write_hermes(args):
    from hermes.formats import write_documents

    # Decoded from BSON (in C), as for every writer: the same Python documents for each.
    result = write_documents(_file(args, "out.jsonl"), _source_documents(args))
    return {"docs": result.count, "bytes": result.bytes}


@task("file.jsonl.read.hermes")
def _jsonl_read_hermes(args):
    from hermes.formats import read_documents

    count = sum(len(b) for b in read_documents(_file(args, "corpus.bson.jsonl"), batch_size=1000))
    return {"docs": count}


@task("file.jsonl.write.json_util")
def _jsonl_write_json_util(args):
    from bson import json_util

    count = 0
    with open(_file(args, "out.json_util.jsonl"), "w", encoding="utf-8") as out:
        for doc in _source_documents(args):
            out.write(json_util.dumps(doc))
            out.write("\n")
            count += 1
    return {"docs": count}


@task("file.jsonl.read.json_util")
def _jsonl_read_json_util(args):
    from bson import json_util

    count = 0
    with open(_file(args, "corpus.bson.jsonl"), encoding="utf-8") as source:
        for line in source:
            json_util.loads(line)
            count += 1
    return {"docs": count}


@task("file.parquet.write.hermes")
def _parquet_write_hermes(args):
    from hermes.formats import write_documents

    result = write_documents(_file(args, "out.parquet"), _source_documents(args))
    return {"docs": result.count, "bytes": result.bytes}


@task("file.parquet.read.hermes")
def _parquet_read_hermes(args):
    from hermes.formats import read_documents

    return {"docs": sum(len(b) for b in read_documents(_file(args, "out.parquet")))}


@task("file.parquet.write.pyarrow")
def _parquet_write_pyarrow(args):
    """Plain pyarrow: lossy (no BSON types) and whole-table in memory, but the speed reference."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hermes.formats.base import batched

    writer = None
    count = 0
    for rows in batched(_source_documents(args), 10_000):
        table = pa.Table.from_pylist(rows)
        if writer is None:
            writer = pq.ParquetWriter(_file(args, "out.pyarrow.parquet"), table.schema)
        writer.write_table(table.cast(writer.schema))
        count += len(rows)
    if writer is not None:
        writer.close()
    return {"docs": count}


@task("file.parquet.read.pyarrow")
def _parquet_read_pyarrow(args):
    import pyarrow.parquet as pq

    count = 0
    for batch in pq.ParquetFile(_file(args, "out.parquet")).iter_batches(batch_size=10_000):
        count += len(batch.to_pylist())
    return {"docs": count}


@task("file.jsonl_to_parquet.hermes")
def _convert_hermes(args):
    from hermes.formats import convert_file

    result = convert_file(_file(args, "corpus.bson.jsonl"), _file(args, "conv.parquet"))
    return {"docs": result.count}


@task("file.jsonl_to_parquet.duckdb")
def _convert_duckdb(args):
    import duckdb

    source = _file(args, "corpus.plain.jsonl")
    target = _file(args, "conv.duckdb.parquet")
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    con.execute(f"COPY (SELECT * FROM read_json_auto('{source}')) TO '{target}' (FORMAT PARQUET)")
    count = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0]
    return {"docs": count}


@task("file.jsonl_to_parquet.pandas")
def _convert_pandas(args):
    import pandas as pd

    frame = pd.read_json(_file(args, "corpus.plain.jsonl"), lines=True)
    frame.to_parquet(_file(args, "conv.pandas.parquet"))
    return {"docs": len(frame)}


# -- warehouse ----------------------------------------------------------------------------


@task("wh.drain")
def _drain(args):
    """The export ceiling: draining the cursor as raw BSON, bytes counted."""
    count = size = 0
    for doc in _raw_collection(args).find(batch_size=10_000):
        count += 1
        size += len(doc.raw)
    return {"docs": count, "bytes": size}


@task("wh.insert_ceiling")
def _insert_ceiling(args):
    """The import ceiling: insert_many of pre-encoded (raw BSON) batches."""
    from bson.raw_bson import RawBSONDocument

    source = _raw_collection(args)
    target = _client(args)[args.database + "_ceiling"][args.collection]
    target.drop()
    batches: list[list[RawBSONDocument]] = []
    batch: list[RawBSONDocument] = []
    for doc in source.find(batch_size=10_000):
        batch.append(doc)
        if len(batch) == 1000:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    started = time.perf_counter()
    cpu = _cpu()
    count = 0
    for chunk in batches:
        target.insert_many(chunk, ordered=False)
        count += len(chunk)
    return {"docs": count, "seconds": time.perf_counter() - started, "cpu": _cpu() - cpu}


@task("wh.export.handbook")
def _export_handbook(args):
    """The LLM Engineer's Handbook's way: find all, a list of dicts, json.dump the list."""
    coll = _client(args)[args.database][args.collection]
    documents = list(coll.find())
    for doc in documents:
        doc["_id"] = str(doc["_id"])
    with open(_file(args, "handbook.json"), "w", encoding="utf-8") as out:
        json.dump(documents, out, default=str)
    return {"docs": len(documents)}


@task("wh.export.json_util")
def _export_json_util(args):
    from bson import json_util

    coll = _client(args)[args.database][args.collection]
    count = 0
    with open(_file(args, "json_util.jsonl"), "w", encoding="utf-8") as out:
        for doc in coll.find(batch_size=10_000):
            out.write(json_util.dumps(doc))
            out.write("\n")
            count += 1
    return {"docs": count}


@task("wh.export.pymongoarrow")
def _export_pymongoarrow(args):
    """PyMongoArrow's way (run by its own venv's python: it pins an older pyarrow)."""
    import pyarrow.parquet as pq
    from pymongoarrow.api import find_arrow_all

    table = find_arrow_all(_client(args)[args.database][args.collection], {})
    pq.write_table(table, _file(args, "pymongoarrow.parquet"))
    return {"docs": table.num_rows}


@task("wh.export.pymongoarrow.chunks")
def _export_pymongoarrow_chunks(args):
    """PyMongoArrow on the ``chunks`` collection, whose fields it can hold (it fails on the raw
    documents' nested content)."""
    import pyarrow.parquet as pq
    from pymongoarrow.api import find_arrow_all

    table = find_arrow_all(_client(args)[args.database + "_multi"]["chunks"], {})
    pq.write_table(table, _file(args, "pymongoarrow.chunks.parquet"))
    return {"docs": table.num_rows}


@task("wh.export.hermes.parquet.chunks")
def _export_hermes_chunks(args):
    from hermes.storage.database import MongoDBManager
    from hermes.storage.warehouse import DataWarehouseExporter

    with MongoDBManager(uri=args.uri, database=args.database + "_multi") as manager:
        result = DataWarehouseExporter(manager).export_collection(
            "chunks", _file(args, "export.chunks.parquet"), file_format="parquet"
        )
    return {"docs": result.count, "bytes": result.bytes}


def _hermes_export(args, fmt: str) -> dict[str, Any]:
    from hermes.storage.warehouse import DataWarehouseExporter

    with _manager(args) as manager:
        result = DataWarehouseExporter(manager).export_collection(
            args.collection, _file(args, f"export.{fmt}"), file_format=fmt
        )
    return {"docs": result.count, "bytes": result.bytes}


for _fmt in ("jsonl", "parquet", "csv", "json"):
    task(f"wh.export.hermes.{_fmt}")(lambda args, fmt=_fmt: _hermes_export(args, fmt))


def _emptied(args, database: str, collection: str) -> tuple[float, float]:
    """Drop what an earlier run left in the target, untimed (as the ceiling task does: dropping
    200,000 documents takes seconds on this server); the clock and CPU start after it."""
    _client(args)[database].drop_collection(collection)
    return time.perf_counter(), _cpu()


def _since(started: tuple[float, float], docs: int) -> dict[str, Any]:
    return {"docs": docs, "seconds": time.perf_counter() - started[0], "cpu": _cpu() - started[1]}


def _hermes_import(args, fmt: str) -> dict[str, Any]:
    from hermes.storage.warehouse import DataWarehouseImporter

    target = args.collection + "_imported_" + fmt
    started = _emptied(args, args.database, target)
    with _manager(args) as manager:
        report = DataWarehouseImporter(manager).import_collection(
            target, _file(args, f"export.{fmt}")
        )
    return _since(started, report.inserted)


for _fmt in ("jsonl", "parquet", "json"):
    task(f"wh.import.hermes.{_fmt}")(lambda args, fmt=_fmt: _hermes_import(args, fmt))


def _parallel_export(args, parallel: int) -> dict[str, Any]:
    from hermes.storage.warehouse import DataWarehouseExporter

    with _manager(args) as manager:
        result = DataWarehouseExporter(manager).export_collection(
            args.collection,
            _file(args, f"parallel{parallel}/raw_documents.jsonl"),
            file_format="jsonl",
            parallel=parallel,
        )
    return {"docs": result.count, "bytes": result.bytes}


def _parallel_import(args, parallel: int) -> dict[str, Any]:
    from hermes.storage.warehouse import DataWarehouseImporter

    target = f"{args.collection}_parallel{parallel}"
    started = _emptied(args, args.database, target)
    with _manager(args) as manager:
        source = "raw_documents.parts.json" if parallel > 1 else "raw_documents.jsonl"
        report = DataWarehouseImporter(manager).import_collection(
            target, _file(args, f"parallel{parallel}/{source}"), parallel=parallel
        )
    return _since(started, report.inserted)


for _n in (1, 2, 4):
    task(f"wh.parallel.export.{_n}")(lambda args, n=_n: _parallel_export(args, n))
    task(f"wh.parallel.import.{_n}")(lambda args, n=_n: _parallel_import(args, n))


def _backup_workers(args, workers: int) -> dict[str, Any]:
    """Backup of the four-collection database ``<database>_multi``, ``workers`` at once."""
    from hermes.storage.database import MongoDBManager
    from hermes.storage.warehouse import DataWarehouseManager

    with MongoDBManager(uri=args.uri, database=args.database + "_multi") as manager:
        result = DataWarehouseManager(manager).backup(
            _file(args, f"backup_multi_{workers}"),
            file_format="jsonl",
            parallel=workers,
            overwrite=True,
        )
    return {"docs": result.count}


for _n in (1, 4):
    task(f"wh.backup.workers.{_n}")(lambda args, n=_n: _backup_workers(args, n))


@task("wh.backup.hermes")
def _backup(args):
    from hermes.storage.warehouse import DataWarehouseManager

    with _manager(args) as manager:
        result = DataWarehouseManager(manager).backup(
            _file(args, "backup"),
            file_format="jsonl",
            collections=[args.collection],
            overwrite=True,
        )
    return {"docs": result.count}


@task("wh.restore.hermes")
def _restore(args):
    """Restore into a database without the collection (a new warehouse): loaded in place."""
    started = _emptied(args, args.database + "_restored", args.collection)
    return _since(started, _restored(args))


@task("wh.restore.hermes.replace")
def _restore_replace(args):
    """Restore over the collection the previous task restored: loaded beside it, then renamed
    over it (a copy of every document on the embedded server)."""
    _client(args)[args.database + "_restored"][args.collection].insert_one({"_id": "replaced"})
    return _since((time.perf_counter(), _cpu()), _restored(args))


def _restored(args) -> int:
    from hermes.storage.database import MongoDBManager
    from hermes.storage.warehouse import DataWarehouseManager

    with MongoDBManager(uri=args.uri, database=args.database + "_restored") as manager:
        report = DataWarehouseManager(manager).restore(_file(args, "backup"), confirm=True)
    return sum(r.inserted for r in report.reports)


@task("cli.help")
def _cli_help(args):
    import subprocess

    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hermes", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return {"docs": 1, "seconds": min(times)}


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries it across ``exec``, so a
    child would report at least its parent's peak; ``VmHWM`` starts afresh with the program."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--uri", default="")
    parser.add_argument("--database", default="bench")
    parser.add_argument("--collection", default="raw_documents")
    args = parser.parse_args()
    os.environ.setdefault("HERMES_HOME", str(Path(args.workdir) / "home"))
    started = time.perf_counter()
    cpu = _cpu()
    result = TASKS[args.task](args)
    result.setdefault("seconds", time.perf_counter() - started)
    result.setdefault("cpu", _cpu() - cpu)
    result["max_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
