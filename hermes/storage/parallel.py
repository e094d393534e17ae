"""One collection as several files written (and read back) at once: part sets.

    raw_documents.part-0000.parquet ... raw_documents.part-0003.parquet
    raw_documents.parts.json        the parts manifest, written last: each part's file, count,
                                    byte size and SHA-256

An export with ``parallel=N`` splits the collection into N ranges of ``_id`` (quantiles of a
``$sample``; ``$bucketAuto`` would sort the whole collection) and exports them concurrently, one
part file each. An import given the parts manifest, or the first part, checks every part against
the manifest before writing anything, then loads the parts concurrently.

Ranges rely on the ``_id`` index, so they pay off on a server that scans index ranges in parallel
(MongoDB); a server that scans the whole collection for each range query gains nothing.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from bson import Int64, ObjectId

from hermes.errors import FormatError, IntegrityError
from hermes.formats.base import atomic_output, sha256_file, split_compression
from hermes.progress import NO_PROGRESS, Progress, SharedProgress

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from hermes.storage.warehouse import (
        DataWarehouseExporter,
        DataWarehouseImporter,
        ExportResult,
        ImportReport,
    )

PARTS_SUFFIX = ".parts.json"
PARTS_KIND = "hermes-parts"
PARTS_VERSION = 1
#: Sampled ``_id`` values per part: enough for even parts, cheap on any server.
SAMPLES_PER_PART = 32
_PART = re.compile(r"^(?P<stem>.+)\.part-(?P<index>\d{4,})(?P<tail>\.[^/\\]+)$")
#: ``$type`` alias of the ``_id`` values that ranges can split (one comparison order each).
_TYPE_ALIASES: dict[type, str] = {
    ObjectId: "objectId",
    str: "string",
    int: "number",
    Int64: "number",
    float: "number",
    datetime: "date",
}


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------


def _stem_and_tail(output: Path) -> tuple[str, str]:
    """``raw_documents.jsonl.gz`` -> (``raw_documents``, ``.jsonl.gz``)."""
    base, _ = split_compression(output)
    suffix = Path(base).suffix
    stem = base[: len(base) - len(suffix)] if suffix else base
    return stem, output.name[len(stem) :]


def part_path(output: str | Path, index: int) -> Path:
    """``out/raw_documents.parquet``, 3 -> ``out/raw_documents.part-0003.parquet``."""
    target = Path(output)
    stem, tail = _stem_and_tail(target)
    return target.with_name(f"{stem}.part-{index:04d}{tail}")


def parts_manifest_path(output: str | Path) -> Path:
    """``out/raw_documents.parquet`` -> ``out/raw_documents.parts.json``."""
    target = Path(output)
    return target.with_name(_stem_and_tail(target)[0] + PARTS_SUFFIX)


def part_set_manifest(path: str | Path) -> Path | None:
    """The parts manifest that ``path`` stands for: itself, or the one of a first part file
    (``raw_documents.part-0000.jsonl``) when it exists beside it; None for any other file."""
    source = Path(path)
    if source.name.endswith(PARTS_SUFFIX):
        return source
    match = _PART.match(source.name)
    if match and int(match["index"]) == 0:
        manifest = source.with_name(match["stem"] + PARTS_SUFFIX)
        if manifest.is_file():
            return manifest
    return None


def in_part_set(path: str | Path) -> bool:
    """Whether ``path`` is a part file whose set has a manifest (read through the manifest)."""
    source = Path(path)
    match = _PART.match(source.name)
    return bool(match) and source.with_name(match["stem"] + PARTS_SUFFIX).is_file()


def part_set_name(path: str | Path) -> str | None:
    """The collection a part set is named after (``raw_documents.parts.json`` ->
    ``raw_documents``), or None when ``path`` is not a part set."""
    manifest = part_set_manifest(path)
    return manifest.name[: -len(PARTS_SUFFIX)] if manifest is not None else None


# ------------------------------------------------------------------------------------------
# The parts manifest
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    file: str
    count: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class PartSet:
    """A parts manifest: the collection, the format and the parts, in order."""

    collection: str
    format: str
    parts: list[Part]

    @property
    def count(self) -> int:
        return sum(part.count for part in self.parts)


def write_parts_manifest(path: Path, part_set: PartSet) -> tuple[int, str]:
    """Write the manifest atomically; its byte size and SHA-256."""
    content = {
        "kind": PARTS_KIND,
        "version": PARTS_VERSION,
        "collection": part_set.collection,
        "format": part_set.format,
        "count": part_set.count,
        "parts": [part.__dict__ for part in part_set.parts],
    }
    with atomic_output(path, None) as out:
        out.stream.write(orjson.dumps(content, option=orjson.OPT_INDENT_2) + b"\n")
    return out.bytes, out.sha256


def load_parts_manifest(path: Path) -> PartSet:
    """Read a parts manifest and check every part against it (names, sizes, SHA-256)."""
    from hermes.storage._backup import member_problem

    try:
        content = orjson.loads(path.read_bytes())
        part_set = PartSet(
            str(content["collection"]),
            str(content["format"]),
            [
                Part(str(p["file"]), int(p["count"]), int(p["bytes"]), str(p["sha256"]))
                for p in content["parts"]
            ],
        )
        if content.get("kind") != PARTS_KIND:
            raise ValueError(f"not a {PARTS_KIND} manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(path, f"not a valid parts manifest ({exc})") from None
    problems = []
    for part in part_set.parts:
        problem = member_problem(path.parent, part.file)
        if problem is None:
            size = (path.parent / part.file).stat().st_size
            if size != part.bytes:
                problem = f"{part.file}: {size:,} bytes, the manifest says {part.bytes:,}"
            elif sha256_file(path.parent / part.file) != part.sha256:
                problem = f"{part.file}: SHA-256 differs from the manifest"
        if problem:
            problems.append(problem)
    if problems:
        raise IntegrityError(
            f"Part set {path} does not match its manifest, nothing was written: "
            + "; ".join(problems)
        )
    return part_set


# ------------------------------------------------------------------------------------------
# Ranges of _id
# ------------------------------------------------------------------------------------------


def id_ranges(collection: Collection, parts: int) -> list[dict[str, Any]]:
    """Filters that split a collection into at most ``parts`` ranges of ``_id``, each document
    in exactly one. The boundaries are quantiles of a ``$sample``.

    A range query only matches ``_id`` values of its bounds' type, so the first range also takes
    every ``_id`` of another type; when the sample itself mixes types, or holds a type without a
    single order here, the whole collection is one range.
    """
    if parts <= 1:
        return [{}]
    pipeline = [{"$sample": {"size": parts * SAMPLES_PER_PART}}, {"$project": {"_id": 1}}]
    sample = [document["_id"] for document in collection.aggregate(pipeline)]
    aliases = {_TYPE_ALIASES.get(type(value)) for value in sample}
    if len(aliases) != 1 or None in aliases:
        return [{}]
    if any(isinstance(value, float) and value != value for value in sample):  # NaN
        return [{}]
    ordered = sorted(sample)
    bounds: list[Any] = []
    for index in range(1, parts):
        value = ordered[len(ordered) * index // parts]
        if not bounds or value > bounds[-1]:
            bounds.append(value)
    if not bounds:
        return [{}]
    alias = aliases.pop()
    filters: list[dict[str, Any]] = [
        {"$or": [{"_id": {"$lt": bounds[0]}}, {"_id": {"$not": {"$type": alias}}}]}
    ]
    filters += [{"_id": {"$gte": lo, "$lt": hi}} for lo, hi in pairwise(bounds)]
    filters.append({"_id": {"$gte": bounds[-1]}})
    return filters


# ------------------------------------------------------------------------------------------
# Export and import of part sets
# ------------------------------------------------------------------------------------------


def _run_all(tasks: Sequence[Callable[[], Any]], workers: int) -> list[Any]:
    """Run the tasks on ``workers`` threads; results in order, the first error raised."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks)))) as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def export_parts(
    exporter: DataWarehouseExporter,
    collection_name: str,
    output_file: Path,
    file_format: str,
    parallel: int,
    query: dict[str, Any],
    *,
    progress: Progress = NO_PROGRESS,
    **options: Any,
) -> ExportResult:
    """Export one collection as a part set, ``parallel`` ranges at once; the result's path is
    the parts manifest, its count and bytes those of all the parts."""
    from hermes.storage.warehouse import ExportResult

    started = time.perf_counter()
    collection = exporter.db_manager.get_database()[collection_name]
    ranges = id_ranges(collection, parallel)
    shared = SharedProgress(progress)

    def export(index: int) -> ExportResult:
        part_query = {"$and": [query, ranges[index]]} if query else ranges[index]
        return exporter.export_collection(
            collection_name,
            part_path(output_file, index),
            file_format,
            query=part_query,
            progress=shared,
            **options,
        )

    manifest = parts_manifest_path(output_file)
    if not options.get("overwrite", True) and manifest.exists():
        raise FileExistsError(f"{manifest} already exists; pass overwrite=True to replace it")
    progress.start(f"export {collection_name}", None, "docs")
    try:
        results = _run_all([lambda i=i: export(i) for i in range(len(ranges))], parallel)
    except BaseException:
        for index in range(len(ranges)):
            with contextlib.suppress(OSError):
                part_path(output_file, index).unlink()
        raise
    finally:
        progress.finish()
    part_set = PartSet(
        collection_name,
        results[0].format,
        [Part(r.path.name, r.count, r.bytes, r.sha256) for r in results],
    )
    _, digest = write_parts_manifest(manifest, part_set)
    return ExportResult(
        collection_name,
        manifest,
        part_set.format,
        part_set.count,
        sum(part.bytes for part in part_set.parts),
        digest,
        time.perf_counter() - started,
    )


def import_parts(
    importer: DataWarehouseImporter,
    collection_name: str,
    manifest: Path,
    parallel: int,
    *,
    drop: bool = False,
    rejects_file: str | Path | None = None,
    progress: Progress = NO_PROGRESS,
    **options: Any,
) -> ImportReport:
    """Import every part of a checked part set, ``parallel`` parts at once, into one collection.

    Each part keeps its own rejects file (beside it, or ``rejects_file`` with the part's number);
    the report adds the parts up and names the first rejects file written.
    """
    from hermes.storage._backup import validate_collection_name
    from hermes.storage.retry import driver_errors_as
    from hermes.storage.warehouse import ImportReport

    started = time.perf_counter()
    validate_collection_name(collection_name)
    part_set = load_parts_manifest(manifest)
    if drop:
        driver_errors_as("importing")(importer.db_manager.get_database().drop_collection)(
            collection_name
        )
    shared = SharedProgress(progress)

    def load(index: int, part: Part) -> ImportReport:
        rejects = part_path(rejects_file, index) if rejects_file else None
        return importer.import_file(
            collection_name,
            manifest.parent / part.file,
            part_set.format,
            rejects_file=rejects,
            progress=shared,
            **options,
        )

    progress.start(f"import {collection_name}", part_set.count, "docs")
    try:
        reports = _run_all(
            [lambda i=i, p=p: load(i, p) for i, p in enumerate(part_set.parts)], parallel
        )
    finally:
        progress.finish()
    total = ImportReport(collection_name, manifest)
    for report in reports:
        total.read += report.read
        total.inserted += report.inserted
        total.updated += report.updated
        total.unchanged += report.unchanged
        total.rejected += report.rejected
        total.rejects_file = total.rejects_file or report.rejects_file
        total.errors.extend(f"{report.path.name}, {error}" for error in report.errors)
    total.errors = total.errors[:10]
    total.seconds = time.perf_counter() - started
    return total
