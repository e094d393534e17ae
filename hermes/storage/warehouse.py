"""The warehouse and files: export, import, backup, verify, restore, migrate, status.

    DataWarehouseExporter   collections -> files (streamed from the cursor into the writer)
    DataWarehouseImporter   files -> collections (batched unordered bulk writes, rejects file)
    DataWarehouseManager    backup folders (manifest written last), verify, restore, migrate

Every long operation takes a ``progress`` (see :mod:`hermes.progress`) and returns a dataclass
of plain fields. Documents keep their exact BSON types from end to end.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bson
import orjson
from bson import ObjectId
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from hermes import __version__
from hermes.errors import (
    ConfirmationRequiredError,
    FormatError,
    HermesError,
    IntegrityError,
    InvalidNameError,
    MissingFileError,
    UnsupportedFormatError,
    ValidationFailedError,
    WarehouseUnavailableError,
)
from hermes.formats import (
    convert_file,
    detect_format,
    extjson,
    get_format,
    rawjson,
    read_documents,
    write_documents,
)
from hermes.formats.base import BsonChunks, RecordError, split_compression
from hermes.progress import NO_PROGRESS, Progress, SharedProgress, shows_total
from hermes.storage._backup import (
    MANIFEST,
    REJECTS_SUFFIX,
    RESTORE_PREFIX,
    CollectionCheck,
    Manifest,
    ManifestEntry,
    atomic_folder,
    check_entry,
    collection_of,
    compression_suffix,
    database_lock,
    default_backup_dir,
    file_name,
    is_data_file,
    is_internal,
    load_manifest,
    name_problem,
    newest_backup,
    utc_now_iso,
    validate_collection_name,
    write_manifest,
)
from hermes.storage.database import MongoDBManager
from hermes.storage.parallel import import_parts, in_part_set, part_set_manifest, part_set_name
from hermes.storage.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    already_stored,
    call_with_retry,
    driver_errors_as,
    driver_reason,
    resumable_find,
)
from hermes.storage.streams import prefetched_chunks, raw_codec

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from hermes.domain.documents import DocumentType

__all__ = [
    "BackupResult",
    "CollectionCheck",
    "CollectionRestore",
    "CollectionStatus",
    "DataWarehouseExporter",
    "DataWarehouseImporter",
    "DataWarehouseManager",
    "ExportResult",
    "ImportReport",
    "MigrateResult",
    "RestoreReport",
    "VerifyReport",
    "WarehouseStatus",
    "default_backup_dir",
    "parse_fields",
    "parse_query",
    "parse_sort",
    "validate_collection_name",
]

IMPORT_MODES = ("insert", "upsert", "merge")
RESTORE_MODES = ("replace", "merge")
_KEPT_ERRORS = 10
_RERUN_ADVICE = (
    "the documents written so far stay; re-run with mode upsert (or merge) to complete the "
    "import without duplicates"
)
_DEFAULT_MAX_BSON = 16 * 1024 * 1024
#: Levels of sub-documents and arrays a document may have, itself included (MongoDB refuses
#: more; checked here too, so that every server gets the same documents).
MAX_NESTING = 100
_CONTAINERS = frozenset({dict, list})
#: Encoding only: a ``uuid.UUID`` from a model becomes a standard UUID binary (subtype 4).
_ENCODE_OPTIONS: CodecOptions = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """One file written from a collection (export, backup or migration)."""

    collection: str
    path: Path
    format: str
    count: int
    bytes: int
    sha256: str
    seconds: float


@dataclass
class ImportReport:
    """What became of every record of one file: ``read = inserted + updated + unchanged +
    rejected``. ``errors`` holds the first few reasons, ``rejects_file`` all of them."""

    collection: str
    path: Path
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects_file: Path | None = None
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class BackupResult:
    """A backup folder: its manifest and one written file per collection (``results``)."""

    path: Path
    database: str
    format: str
    manifest: Path
    results: list[ExportResult]
    count: int
    bytes: int
    seconds: float


@dataclass
class VerifyReport:
    """Whether a backup matches its manifest; ``problems`` name the file and what is wrong."""

    backup_dir: Path
    ok: bool
    problems: list[str]
    collections: list[CollectionCheck]


@dataclass
class CollectionRestore:
    """What a restore does (or, in a dry run, would do) to one collection."""

    collection: str
    file: str
    action: str
    documents: int
    existing: int | None
    indexes: int


@dataclass
class RestoreReport:
    """A restore: the plan per collection, and (unless a dry run) an import report for each."""

    backup_dir: Path
    database: str
    mode: str
    dry_run: bool
    collections: list[CollectionRestore]
    reports: list[ImportReport]
    seconds: float


@dataclass
class MigrateResult:
    """Files converted from one format to another (``manifest`` set for a backup folder)."""

    source_dir: Path
    target_dir: Path
    source_format: str | None
    target_format: str
    results: list[ExportResult]
    manifest: Path | None
    seconds: float


@dataclass
class CollectionStatus:
    name: str
    count: int
    size: int | None
    storage_size: int | None


@dataclass
class WarehouseStatus:
    """Where the warehouse is, what it holds, and the newest backup under the backups folder."""

    location: str
    database: str
    collections: list[CollectionStatus]
    newest_backup: Path | None
    newest_backup_created: str | None


# ------------------------------------------------------------------------------------------
# Query, fields and sort, as users write them
# ------------------------------------------------------------------------------------------


def parse_query(query: str | bytes | Mapping[str, Any] | None) -> dict[str, Any]:
    """A filter from a dict or a JSON text; Extended JSON wrappers become BSON values.

    ``{"_id": {"$oid": "..."}}`` and ``{"created_at": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}``
    work as text or as dicts. The text is parsed, never evaluated, and operators that would run
    JavaScript on the server (``$where``, ``$function``, ``$accumulator``) are refused.
    """
    if query is None or query == "" or query == b"":
        return {}
    if isinstance(query, str | bytes):
        try:
            parsed = extjson.loads(query)
        except (ValueError, RecursionError) as exc:
            raise FormatError("query", f"not valid (Extended) JSON: {exc}") from None
    elif isinstance(query, Mapping):
        parsed = extjson.from_extended(copy.deepcopy(dict(query)))
    else:
        raise FormatError("query", f"expected a JSON object, got {type(query).__name__}")
    if not isinstance(parsed, dict):
        raise FormatError("query", f"expected a JSON object, got {_json_kind(parsed)}")
    _refuse_javascript(parsed)
    return parsed


#: Query operators that run code on the server: a query is data, so Hermes never sends them.
SERVER_JAVASCRIPT = frozenset({"$where", "$function", "$accumulator"})


def _refuse_javascript(query: dict[str, Any]) -> None:
    pending: list[Any] = [query]
    while pending:
        value = pending.pop()
        if isinstance(value, Mapping):
            found = SERVER_JAVASCRIPT.intersection(value)
            if found:
                raise FormatError(
                    "query",
                    f"{min(found)} runs JavaScript on the server; Hermes does not send code in a "
                    "query (use query operators such as $eq, $in, $regex or $expr)",
                )
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def parse_fields(fields: str | Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A projection from ``"a,b"``, ``["a", "b"]`` or a projection dict (``_id`` stays in)."""
    if fields is None:
        return None
    if isinstance(fields, Mapping):
        return dict(fields) or None
    names = fields.split(",") if isinstance(fields, str) else [str(f) for f in fields]
    projection = {name.strip(): 1 for name in names if name.strip()}
    return projection or None


_DIRECTIONS = {"1": 1, "-1": -1, "asc": 1, "ascending": 1, "desc": -1, "descending": -1}


def _direction(value: Any, key: str) -> int:
    direction = _DIRECTIONS.get(str(value).strip().lower())
    if direction is None or isinstance(value, bool):
        raise FormatError("sort", f"direction of {key!r} must be 1, -1, asc or desc, not {value!r}")
    return direction


def _sort_spec(spec: str) -> tuple[str, int]:
    text = spec.strip()
    if text.startswith(("-", "+")):
        return text[1:].strip(), -1 if text[0] == "-" else 1
    key, _, direction = text.partition(":")
    return key.strip(), _direction(direction, key) if direction else 1


def parse_sort(
    sort: str | Mapping[str, Any] | Sequence[str | tuple[str, Any]] | None,
) -> list[tuple[str, int]] | None:
    """Sort keys from any of the forms users write; None means natural order.

    Accepted: ``"created_at:-1,_id"``, ``"-created_at,_id"`` (``asc``/``desc`` too), a JSON object
    text ``'{"created_at": -1}'``, a dict ``{"created_at": -1}``, a list of ``(field, direction)``
    pairs or of the string forms.
    """
    if sort is None or sort == "":
        return None
    if isinstance(sort, str) and sort.lstrip().startswith("{"):
        try:
            sort = orjson.loads(sort)
        except orjson.JSONDecodeError as exc:
            raise FormatError("sort", f"not valid JSON: {exc}") from None
    if isinstance(sort, Mapping):
        keys = [(str(k), _direction(v, str(k))) for k, v in sort.items()]
    elif isinstance(sort, str):
        keys = [_sort_spec(part) for part in sort.split(",") if part.strip()]
    else:
        keys = [
            _sort_spec(item)
            if isinstance(item, str)
            else (str(item[0]), _direction(item[1], item[0]))
            for item in sort
        ]
    if any(not key for key, _ in keys):
        raise FormatError("sort", f"empty field name in {sort!r}")
    return keys or None


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _reported_chunks(chunks: Iterable[list[Any]], progress: Progress) -> Iterator[list[Any]]:
    """Pass chunks of documents through, telling ``progress`` as each is handed on."""
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk))


def _user_collections(database: Database) -> dict[str, dict[str, Any]]:
    """Collections (not views) that hold user data, by name, with their ``listCollections`` info."""
    infos = {}
    for info in database.list_collections():
        name = info["name"]
        if info.get("type", "collection") == "collection" and not is_internal(name):
            infos[name] = info
    return dict(sorted(infos.items()))


def _require_collections(
    available: Mapping[str, Any], wanted: Iterable[str] | None, where: str
) -> list[str]:
    if wanted is None:
        return list(available)
    names = [validate_collection_name(name) for name in wanted]
    missing = [name for name in names if name not in available]
    if missing:
        have = ", ".join(available) or "none"
        raise InvalidNameError(
            f"No collection {', '.join(map(repr, missing))} in {where} (it has: {have})"
        )
    return names


def _where(database: Database) -> str:
    return f"database {database.name!r}"


def _refuse_existing(paths: Iterable[Path]) -> None:
    """Check every output of a job before writing any: one that exists stops the whole job."""
    existing = [str(path) for path in paths if path.exists()]
    if existing:
        many = len(existing) > 1
        raise FileExistsError(
            f"{', '.join(existing)} already exist{'' if many else 's'}; choose another folder, "
            f"or pass overwrite=True to replace {'them' if many else 'it'}"
        )


def _final_output(path: Path, parallel: int) -> Path:
    """The file that stands for an export to ``path``: itself, or the parts manifest of a
    parallel export (written last)."""
    if parallel > 1:
        from hermes.storage.parallel import parts_manifest_path

        return parts_manifest_path(path)
    return path


def _format_name(file_format: str | None, path: str | Path) -> str:
    """The registry name of the format (``ndjson`` -> ``jsonl``), or the one the name implies."""
    return get_format(file_format).name if file_format else detect_format(path)[0].name


# ------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------


class DataWarehouseExporter:
    """Collections to files: the cursor is consumed lazily by the format's writer."""

    def __init__(self, db_manager: MongoDBManager | None = None) -> None:
        self.db_manager = db_manager or MongoDBManager()

    @driver_errors_as("exporting")
    def export_collection(
        self,
        collection_name: str,
        output_file: str | Path,
        file_format: str | None = None,
        query: str | Mapping[str, Any] | None = None,
        limit: int | None = None,
        *,
        fields: str | Sequence[str] | Mapping[str, Any] | None = None,
        sort: Any = None,
        batch_size: int = 10_000,
        json_format: str = "relaxed",
        overwrite: bool = True,
        parallel: int = 1,
        progress: Progress = NO_PROGRESS,
        **format_options: Any,
    ) -> ExportResult:
        """Write one collection to ``output_file`` (compressed when its name ends in .gz/.zst).

        ``file_format`` None means: from the file name. ``limit`` 0 or None means no limit.
        Without a query or a sort, documents come in ``_id`` order. A connection lost part way
        is retried (``db_manager.retry``) and the read resumes after the last document written.
        The next batch is fetched while this one is written.

        ``parallel`` above 1 writes a part set instead: ``parallel`` ranges of ``_id`` exported
        at once, one file each (``<name>.part-0000.<ext>``...), and the parts manifest
        ``<name>.parts.json`` (see :mod:`hermes.storage.parallel`), whose path the result holds.
        """
        started = time.perf_counter()
        path = Path(output_file)
        fmt = _format_name(file_format, path)
        if limit is not None and limit < 0:
            raise FormatError("limit", f"must be zero or more, not {limit}")
        database = self.db_manager.get_database()
        name = validate_collection_name(collection_name)
        _require_collections(_user_collections(database), [name], _where(database))
        collection = database[name]
        filter_ = parse_query(query)
        if parallel > 1:
            options = {"fields": fields, "batch_size": batch_size, "json_format": json_format}
            return self._export_parts(
                name,
                path,
                fmt,
                filter_,
                limit,
                sort,
                parallel,
                progress,
                overwrite=overwrite,
                **options,
                **format_options,
            )
        total = (
            None if filter_ or not shows_total(progress) else collection.estimated_document_count()
        )
        if total is not None and limit:
            total = min(total, limit)
        cursor = resumable_find(
            collection.with_options(codec_options=raw_codec(collection.codec_options)),
            filter_,
            projection=parse_fields(fields),
            sort=parse_sort(sort),
            limit=limit or 0,
            batch_size=batch_size,
            policy=self.db_manager.retry,
        )
        chunks = prefetched_chunks(cursor, ahead=batch_size)
        documents = BsonChunks(_reported_chunks(chunks, progress), collection.codec_options)
        progress.start(f"export {name}", total, "docs")
        try:
            written = write_documents(
                path,
                documents,
                fmt,
                overwrite=overwrite,
                json_format=json_format,
                **format_options,
            )
        finally:
            chunks.close()
            cursor.close()
            progress.finish()
        return ExportResult(
            name,
            written.path,
            written.format,
            written.count,
            written.bytes,
            written.sha256,
            time.perf_counter() - started,
        )

    def _export_parts(
        self,
        name: str,
        path: Path,
        fmt: str,
        filter_: dict[str, Any],
        limit: int | None,
        sort: Any,
        parallel: int,
        progress: Progress,
        **options: Any,
    ) -> ExportResult:
        from hermes.storage.parallel import export_parts

        if limit or parse_sort(sort):
            raise FormatError("parallel", "a parallel export takes no limit and no sort")
        return export_parts(self, name, path, fmt, parallel, filter_, progress=progress, **options)

    def export_all_collections(
        self,
        output_dir: str | Path,
        file_format: str = "json",
        collections: Sequence[str] | None = None,
        *,
        compression: str | None = None,
        **options: Any,
    ) -> list[ExportResult]:
        """One file per collection, ``<collection>.<ext>[.gz|.zst]``; system collections skipped.
        With ``overwrite=False`` every target is checked before any is written."""
        database = self.db_manager.get_database()
        names = _require_collections(_user_collections(database), collections, _where(database))
        folder = Path(output_dir)
        paths = {name: folder / file_name(name, file_format, compression) for name in names}
        if not options.get("overwrite", True):
            parallel = options.get("parallel", 1)
            _refuse_existing(_final_output(path, parallel) for path in paths.values())
        return [
            self.export_collection(name, path, file_format, **options)
            for name, path in paths.items()
        ]

    def export_documents_by_type(
        self,
        document_type: DocumentType | str,
        output_file: str | Path,
        file_format: str | None = None,
        **options: Any,
    ) -> ExportResult:
        """Export the collection of a document type (``raw``, ``cleaned``, ``chunks``, ...);
        ``file_format`` None means: from the file name."""
        from hermes.domain.documents import DocumentType  # pydantic models: loaded when used

        kind = DocumentType.parse(document_type)
        return self.export_collection(kind.collection_name, output_file, file_format, **options)


# ------------------------------------------------------------------------------------------
# Import
# ------------------------------------------------------------------------------------------


class _Rejects:
    """Rejected records: counted, the first reasons kept, all written as JSON Lines.

    The file is created with the first reject only, so an import without rejects leaves none
    (and removes a stale one from an earlier run). ``target`` None keeps them in memory only.
    """

    def __init__(self, source: Path, target: Path | None) -> None:
        self.source = str(source)
        self.target = target
        self.count = 0
        self.reasons: list[str] = []
        self.last: tuple[str, str] | None = None
        self._temp: Path | None = None
        self._out: Any = None

    def add(self, location: str, reason: str, record: Any, source: str | None = None) -> None:
        self.count += 1
        self.last = (location, reason)
        if len(self.reasons) < _KEPT_ERRORS:
            self.reasons.append(f"{location}: {reason}")
        if self.target is None:
            return
        if self._out is None:
            self._open()
        entry = {"source": source or self.source, "location": location, "reason": reason}
        try:
            line = orjson.dumps({**entry, "record": _record_json(record)})
        except (orjson.JSONEncodeError, ValueError, TypeError, RecursionError):
            line = orjson.dumps({**entry, "record": repr(record)})
        self._out.write(line + b"\n")

    def _open(self) -> None:
        assert self.target is not None
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent
        )
        self._temp = Path(name)
        self._out = os.fdopen(fd, "wb")

    def close(self) -> Path | None:
        """Put the rejects file in place; the path, or None when nothing was rejected."""
        if self.target is None:
            return None
        if self._out is None:
            with contextlib.suppress(FileNotFoundError):
                self.target.unlink()
            return None
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        os.replace(self._temp, self.target)  # type: ignore[arg-type]
        return self.target


def _record_json(record: Any) -> Any:
    """A rejected record for the rejects file: raw text as is, a document as Extended JSON."""
    if record is None or isinstance(record, str):
        return record
    return extjson.to_extended(record)


def default_rejects_file(input_file: Path) -> Path:
    """``data/raw.jsonl`` -> ``data/raw.jsonl.rejects.jsonl``."""
    return input_file.with_name(input_file.name + REJECTS_SUFFIX)


def _validator(document_class: type | None) -> Callable[[dict], None] | None:
    """Validation through a Pydantic model (``from_mongo`` when it has one), raising when the
    document does not fit. It only decides: the document stored is the file's, unchanged (the
    model's dump would add defaults, convert values and reorder fields)."""
    if document_class is None:
        return None
    build = getattr(document_class, "from_mongo", None) or document_class.model_validate  # type: ignore[attr-defined]

    def validate(document: dict) -> None:
        build(document)

    return validate


def _validation_reason(exc: Exception, document_class: type) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [
            f"{'.'.join(str(p) for p in error.get('loc', ())) or 'document'}: {error.get('msg')}"
            for error in errors()
        ]
        return f"invalid {document_class.__name__}: " + "; ".join(parts)
    return f"invalid {document_class.__name__}: {exc}"


_MISSING = object()


def _lookup(document: Mapping[str, Any], key: str) -> Any:
    """``document[key]``, following dots into sub-documents when the key is not a field."""
    if key in document:
        return document[key]
    value: Any = document
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _write_error_reason(error: Mapping[str, Any]) -> str:
    code = error.get("code")
    message = str(error.get("errmsg", "write error"))
    if code in (11000, 11001, 12582):
        key = error.get("keyValue")
        if key:
            return f"duplicate key {orjson.dumps(extjson.to_extended(dict(key))).decode()}"
        return f"duplicate key ({message})"
    if code == 10334:
        return f"document too large ({message})"
    return f"{message} (code {code})"


def _too_deep(document: Mapping[str, Any], encoded: bytes) -> bool:
    """Whether ``document`` nests more than :data:`MAX_NESTING` levels: read off its BSON when
    the C encoder is built, else walked breadth first (lists of plain values, such as
    embeddings, are skipped at C speed)."""
    exceeds = rawjson.nesting_exceeds(encoded, MAX_NESTING)
    if exceeds is not None:
        return exceeds
    level: list[Any] = [document]
    depth = 1
    while level:
        if depth > MAX_NESTING:
            return True
        below: list[Any] = []
        for value in level:
            children = value.values() if isinstance(value, dict) else value
            if not _CONTAINERS.isdisjoint(map(type, children)):
                below.extend(c for c in children if type(c) in _CONTAINERS)
        level, depth = below, depth + 1
    return False


def _too_large(size: int, limit: int) -> str:
    return f"document too large: {size:,} bytes of BSON, over the server's limit of {limit:,} bytes"


def _upsert_keys(upsert_fields: str | Sequence[str] | None) -> list[str]:
    if upsert_fields is None:
        return ["_id"]
    names = upsert_fields.split(",") if isinstance(upsert_fields, str) else list(upsert_fields)
    keys = [name.strip() for name in names if name.strip()]
    if not keys:
        raise FormatError("upsert_fields", "no field names given")
    return keys


class _HeldRejects:
    """Rejects recorded now and added to the real :class:`_Rejects` later, in the same order."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((args, kwargs))

    def replay(self, rejects: _Rejects) -> None:
        for args, kwargs in self.calls:
            rejects.add(*args, **kwargs)
        self.calls.clear()


class _Import:
    """One file into one collection: prepare each document, write batches, account for all."""

    def __init__(
        self,
        collection: Collection,
        report: ImportReport,
        rejects: _Rejects,
        *,
        mode: str,
        keys: list[str],
        validate: Callable[[dict], None] | None,
        document_class: type | None,
        stop_on_error: bool,
        max_size: int,
        bypass_validation: bool = False,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.collection = collection
        self.report = report
        self.rejects = rejects
        self.mode = mode
        self.keys = keys
        self.validate = validate
        self.document_class = document_class
        self.stop = stop_on_error
        self.max_size = max_size
        self.bypass = bypass_validation
        self.retry = retry

    # -- records that never reach the server -----------------------------------------------
    def on_read_error(self, error: RecordError) -> None:
        self.report.read += 1
        self.rejects.add(error.location, error.reason, error.raw, error.path)

    @property
    def takes_raw_bson(self) -> bool:
        """Whether documents may arrive as raw BSON (a reader that decodes straight to BSON
        hands them over so): plain inserts only, since validation and upsert keys need fields."""
        return self.mode == "insert" and self.validate is None

    def _prepare_raw(self, location: str, document: RawBSONDocument) -> Any:
        """:meth:`_prepare` for a document already in BSON (with its ``_id``): the checks that
        need no field."""
        problem = self._unstorable(document, document.raw)
        if problem:
            self.rejects.add(location, problem, document)
            return None
        return document

    def _unstorable(self, document: Mapping[str, Any], encoded: bytes | None) -> str | None:
        """Why the server would refuse the encoded document (None when it would not): nesting
        past MongoDB's limit (``encoded`` None: too deep even to encode) or size."""
        if encoded is None or _too_deep(document, encoded):
            return f"nesting deeper than {MAX_NESTING} levels, MongoDB's limit for a document"
        if len(encoded) > self.max_size:
            return _too_large(len(encoded), self.max_size)
        return None

    def _prepare(self, location: str, document: dict) -> Any:
        """The write operation for one document, or None when it is rejected here."""
        if type(document) is RawBSONDocument:
            return self._prepare_raw(location, document)
        if self.validate is not None:
            try:
                self.validate(document)
            except (ValueError, TypeError) as exc:  # pydantic.ValidationError is a ValueError
                reason = _validation_reason(exc, self.document_class)  # type: ignore[arg-type]
                self.rejects.add(location, reason, document)
                return None
        if "_id" not in document and self.mode == "insert":
            document = {"_id": ObjectId(), **document}
        try:
            encoded = bson.encode(document, codec_options=_ENCODE_OPTIONS)
        except RecursionError:
            encoded = None
        except (bson.errors.InvalidDocument, OverflowError, TypeError, ValueError) as exc:
            self.rejects.add(location, f"not storable as BSON: {exc}", document)
            return None
        problem = self._unstorable(document, encoded)
        if problem:
            self.rejects.add(location, problem, document)
            return None
        return self._operation(document, RawBSONDocument(encoded))  # type: ignore[arg-type]

    def _operation(self, document: dict, raw: RawBSONDocument) -> Any:
        from pymongo import InsertOne, ReplaceOne, UpdateOne

        if self.mode == "insert":
            return raw
        values = {key: _lookup(document, key) for key in self.keys}
        if any(value is _MISSING for value in values.values()):
            if "_id" not in document:
                raw = RawBSONDocument(
                    bson.encode({"_id": ObjectId(), **document}, codec_options=_ENCODE_OPTIONS)
                )
            return InsertOne(raw)
        filter_ = {key: {"$eq": value} for key, value in values.items()}
        if self.mode == "upsert":
            return ReplaceOne(filter_, raw, upsert=True)
        fields = {k: v for k, v in document.items() if k != "_id"}
        first = [{"$literal": {"_id": document["_id"]}}] if "_id" in document else []
        merged = {"$mergeObjects": [*first, "$$ROOT", {"$literal": fields}]}
        return UpdateOne(filter_, [{"$replaceWith": merged}], upsert=True)

    # -- the batch loop --------------------------------------------------------------------
    def run(self, batches: Iterable[Any], progress: Progress) -> None:
        """Import every batch; with ``stop``, batch by batch and in order, so that the first bad
        record (a reader's error arrives after the batch of the records before it) stops the
        import with everything before it written."""
        if not self.stop:
            self._run_pipelined(batches, progress)
            return
        for batch in batches:
            operations: list[Any] = []
            sources: list[tuple[str, dict]] = []
            self.report.read += len(batch)
            for location, document in batch:
                operation = self._prepare(location, document)
                if operation is None:
                    if self.stop:
                        self._write(operations, sources)
                        raise self._failure()
                    continue
                operations.append(operation)
                sources.append((location, document))
            self._write(operations, sources)
            progress.advance(len(batch))
            if self.stop and self.rejects.count:
                raise self._failure()

    def _run_pipelined(self, batches: Iterable[Any], progress: Progress) -> None:
        """Read and encode the next batch while the server writes this one.

        The rejects of a batch (unreadable, invalid or unstorable records) are held back until
        the write of the batch before it is accounted, so the rejects file keeps file order.
        """
        rejects = self.rejects
        pending: tuple[Future[Any], int] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hermes-write") as writer:
            try:
                self.rejects = held = _HeldRejects()  # type: ignore[assignment]
                for batch in batches:
                    self.report.read += len(batch)
                    operations, sources = self._prepare_batch(batch)
                    self.rejects = rejects
                    if pending is not None:
                        self._account(*pending[0].result())
                        progress.advance(pending[1])
                    held.replay(rejects)
                    pending = (writer.submit(self._send_batch, operations, sources), len(batch))
                    self.rejects = held = _HeldRejects()  # type: ignore[assignment]
                self.rejects = rejects
                if pending is not None:
                    self._account(*pending[0].result())
                    progress.advance(pending[1])
                held.replay(rejects)
            finally:
                self.rejects = rejects

    def _prepare_batch(self, batch: Any) -> tuple[list[Any], list[tuple[str, dict]]]:
        operations: list[Any] = []
        sources: list[tuple[str, dict]] = []
        for location, document in batch:
            operation = self._prepare(location, document)
            if operation is not None:
                operations.append(operation)
                sources.append((location, document))
        return operations, sources

    def _write(self, operations: list[Any], sources: list[tuple[str, dict]]) -> None:
        self._account(*self._send_batch(operations, sources))

    def _send_batch(
        self, operations: list[Any], sources: list[tuple[str, dict]]
    ) -> tuple[Mapping[str, Any], list[tuple[str, dict]]]:
        """One bulk write, tried again after a lost connection (every mode is idempotent: an
        insert first sets aside what the lost attempt already stored). The server's answer and
        the sources of the operations it answers for."""
        if not operations:
            return {}, sources
        stored = 0

        def attempt(number: int) -> Mapping[str, Any]:
            nonlocal operations, sources, stored
            if number > 1 and self.mode == "insert":
                done = already_stored(self.collection, operations)
                stored += len(done)
                operations = [op for i, op in enumerate(operations) if i not in done]
                sources = [source for i, source in enumerate(sources) if i not in done]
            return self._send(operations)

        result = call_with_retry(
            attempt, f"writing to {self.collection.name}", self.retry, _RERUN_ADVICE
        )
        return {**result, "nInserted": result.get("nInserted", 0) + stored}, sources

    def _send(self, operations: list[Any]) -> Mapping[str, Any]:
        from pymongo.errors import BulkWriteError

        if not operations:
            return {}
        try:
            if self.mode == "insert":
                self.collection.insert_many(
                    operations, ordered=self.stop, bypass_document_validation=self.bypass
                )
                return {"nInserted": len(operations)}
            return self.collection.bulk_write(
                operations, ordered=self.stop, bypass_document_validation=self.bypass
            ).bulk_api_result
        except BulkWriteError as exc:
            return exc.details

    def _account(self, result: Mapping[str, Any], sources: list[tuple[str, dict]]) -> None:
        report = self.report
        report.inserted += result.get("nInserted", 0) + result.get("nUpserted", 0)
        report.updated += result.get("nModified", 0)
        report.unchanged += result.get("nMatched", 0) - result.get("nModified", 0)
        for error in result.get("writeErrors", []):
            location, document = sources[error["index"]]
            self.rejects.add(location, _write_error_reason(error), document)
        if result.get("writeConcernErrors"):
            raise WarehouseUnavailableError(
                f"The warehouse did not confirm the writes to {self.collection.name}: "
                f"{result['writeConcernErrors'][0].get('errmsg')}"
            )

    def _failure(self) -> HermesError:
        location, reason = self.rejects.last or ("?", "rejected")
        error = ValidationFailedError(f"{self.report.path}, {location}: {reason}")
        error.path, error.location, error.reason = str(self.report.path), location, reason  # type: ignore[attr-defined]
        return error


class DataWarehouseImporter:
    """Files to collections, in unordered, journaled bulk writes; no record lost silently."""

    def __init__(self, db_manager: MongoDBManager | None = None) -> None:
        self.db_manager = db_manager or MongoDBManager()

    def import_collection(
        self,
        collection_name: str,
        input_file: str | Path,
        file_format: str | None = None,
        document_class: type | None = None,
        batch_size: int = 1000,
        *,
        mode: str = "insert",
        upsert_fields: str | Sequence[str] | None = None,
        drop: bool = False,
        stop_on_error: bool = False,
        rejects_file: str | Path | None = None,
        parallel: int = 1,
        progress: Progress = NO_PROGRESS,
    ) -> ImportReport:
        """Import one file. Modes: ``insert`` (duplicates rejected), ``upsert`` (replace the
        document matched by ``upsert_fields``, default ``_id``), ``merge`` (set the file's fields
        on the matched document). A document lacking the match fields is inserted.

        Rejected records (unreadable, invalid for ``document_class``, refused by the server) go to
        ``rejects_file`` (default ``<input_file>.rejects.jsonl``) with their location and reason;
        ``stop_on_error`` raises at the first one in file order instead, naming it: every record
        before it is written, none after it (readers hand over what they read before a record
        they stop at, and writes are ordered).

        A part set (its ``<name>.parts.json``, or its first part) is checked against its
        manifest, then imported ``parallel`` parts at once; see :mod:`hermes.storage.parallel`.
        """
        manifest = part_set_manifest(input_file)
        options = {
            "document_class": document_class,
            "batch_size": batch_size,
            "mode": mode,
            "upsert_fields": upsert_fields,
            "drop": drop,
            "stop_on_error": stop_on_error,
            "rejects_file": rejects_file,
            "progress": progress,
        }
        if manifest is not None:
            return import_parts(self, collection_name, manifest, parallel, **options)
        return self.import_file(collection_name, input_file, file_format, **options)

    def import_file(
        self,
        collection_name: str,
        input_file: str | Path,
        file_format: str | None = None,
        document_class: type | None = None,
        batch_size: int = 1000,
        *,
        mode: str = "insert",
        upsert_fields: str | Sequence[str] | None = None,
        drop: bool = False,
        stop_on_error: bool = False,
        rejects_file: str | Path | None = None,
        progress: Progress = NO_PROGRESS,
    ) -> ImportReport:
        """:meth:`import_collection` of exactly this file (a part file as itself, say)."""
        path = Path(input_file)
        target = Path(rejects_file) if rejects_file else default_rejects_file(path)
        return self._import(
            collection_name,
            path,
            file_format,
            document_class,
            batch_size,
            mode=mode,
            upsert_fields=upsert_fields,
            drop=drop,
            stop_on_error=stop_on_error,
            rejects=_Rejects(path, target),
            progress=progress,
        )

    @driver_errors_as("importing")
    def _import(
        self,
        collection_name: str,
        path: Path,
        file_format: str | None,
        document_class: type | None,
        batch_size: int,
        *,
        mode: str,
        upsert_fields: str | Sequence[str] | None,
        drop: bool,
        stop_on_error: bool,
        rejects: _Rejects,
        progress: Progress,
        bypass_validation: bool = False,
    ) -> ImportReport:
        started = time.perf_counter()
        name = validate_collection_name(collection_name)
        if mode not in IMPORT_MODES:
            raise FormatError("mode", f"unknown import mode {mode!r}; choose {IMPORT_MODES}")
        fmt = _format_name(file_format, path)
        if not path.is_file():
            raise MissingFileError(path)
        database = self.db_manager.get_database()
        collection = database.get_collection(name, write_concern=_journaled())
        run = _Import(
            collection,
            ImportReport(name, path),
            rejects,
            mode=mode,
            keys=_upsert_keys(upsert_fields),
            validate=_validator(document_class),
            document_class=document_class,
            stop_on_error=stop_on_error,
            max_size=_max_bson_size(database),
            bypass_validation=bypass_validation,
            retry=self.db_manager.retry,
        )
        if drop:
            collection.drop()
        progress.start(f"import {name}", None, "docs")
        try:
            batches = read_documents(
                path,
                fmt,
                batch_size=batch_size,
                on_error=None if stop_on_error else run.on_read_error,
                raw_bson=run.takes_raw_bson,
            )
            run.run(batches, progress)
        finally:
            progress.finish()
            run.report.rejects_file = rejects.close()
        report = run.report
        report.rejected = rejects.count
        report.errors = rejects.reasons
        report.seconds = time.perf_counter() - started
        return report

    def import_all_collections(
        self,
        input_dir: str | Path,
        file_format: str | None = "json",
        *,
        rejects_file: str | Path | None = None,
        **options: Any,
    ) -> list[ImportReport]:
        """Import every file of the format in a folder, each into the collection it is named
        after (``raw_documents.jsonl.gz`` -> ``raw_documents``); ``file_format`` None takes every
        known format. ``manifest.json``, rejects files and hidden files are skipped; names are
        all checked before anything is written. ``rejects_file`` here is a folder for the
        per-file rejects files (default: beside each input)."""
        folder = Path(input_dir)
        if not folder.is_dir():
            raise MissingFileError(folder)
        pairs = [
            (name, path)
            for path in sorted(folder.iterdir())
            if is_data_file(path)
            and not in_part_set(path)
            and (name := part_set_name(path) or collection_of(path, file_format)) is not None
        ]
        for name, path in pairs:
            problem = name_problem(name)
            if problem:
                raise InvalidNameError(f"{path}: {problem}")
        reports = []
        for name, path in pairs:
            rejects = Path(rejects_file) / default_rejects_file(path).name if rejects_file else None
            reports.append(
                self.import_collection(name, path, file_format, rejects_file=rejects, **options)
            )
        return reports

    def import_documents_by_type(
        self, document_type: DocumentType | str, input_file: str | Path, **options: Any
    ) -> ImportReport:
        """Import into the type's collection, validating each document with the type's model."""
        from hermes.domain.documents import DocumentType  # pydantic models: loaded when used

        kind = DocumentType.parse(document_type)
        options.setdefault("document_class", kind.model)
        return self.import_collection(kind.collection_name, input_file, **options)


def _journaled() -> Any:
    from pymongo import WriteConcern

    return WriteConcern(j=True)


def _max_bson_size(database: Database) -> int:
    from pymongo.errors import PyMongoError

    try:
        return int(database.client.admin.command("hello").get("maxBsonObjectSize", 0)) or (
            _DEFAULT_MAX_BSON
        )
    except PyMongoError:
        return _DEFAULT_MAX_BSON


# ------------------------------------------------------------------------------------------
# Backups, restore, migration, status
# ------------------------------------------------------------------------------------------


class DataWarehouseManager:
    """Whole-warehouse operations: backup folders, verify, restore, migrate, status."""

    default_backup_dir = staticmethod(default_backup_dir)

    def __init__(self, db_manager: MongoDBManager | None = None) -> None:
        self.db_manager = db_manager or MongoDBManager()
        self.exporter = DataWarehouseExporter(self.db_manager)
        self.importer = DataWarehouseImporter(self.db_manager)

    # -- backup ----------------------------------------------------------------------------
    @driver_errors_as("backing up")
    def backup(
        self,
        backup_dir: str | Path,
        file_format: str = "json",
        collections: Sequence[str] | None = None,
        *,
        compression: str | None = None,
        overwrite: bool = False,
        parallel: int = 4,
        progress: Progress = NO_PROGRESS,
        **format_options: Any,
    ) -> BackupResult:
        """Copy collections into a new folder: one file each, and ``manifest.json`` last.

        The folder is built under a temporary sibling name and renamed when complete, so a
        folder with the final name is always a whole backup. ``parallel`` collections at once.
        """
        started = time.perf_counter()
        target = Path(backup_dir)
        fmt = get_format(file_format).name
        compression_suffix(compression)
        database = self.db_manager.get_database()
        infos = _user_collections(database)
        names = _require_collections(infos, collections, _where(database))
        indexes = {name: [dict(i) for i in database[name].list_indexes()] for name in names}
        counts = (database[name].estimated_document_count() for name in names)
        total = sum(counts) if shows_total(progress) else None
        shared = SharedProgress(progress)
        progress.start(f"backup {database.name}", total, "docs")
        try:
            with atomic_folder(target, overwrite=overwrite) as temp:
                results = self._export_parallel(
                    names, temp, fmt, compression, parallel, shared, format_options
                )
                entries = {
                    r.collection: ManifestEntry(
                        r.path.name,
                        r.format,
                        r.count,
                        r.bytes,
                        r.sha256,
                        indexes[r.collection],
                        dict(infos[r.collection].get("options", {})),
                    )
                    for r in results
                }
                manifest = Manifest(
                    __version__, utc_now_iso(), self._source(), database.name, entries
                )
                write_manifest(temp, manifest)
        finally:
            progress.finish()
        results = [replace(r, path=target / r.path.name) for r in results]
        return BackupResult(
            target,
            database.name,
            fmt,
            target / MANIFEST,
            results,
            sum(r.count for r in results),
            sum(r.bytes for r in results),
            time.perf_counter() - started,
        )

    def _export_parallel(
        self,
        names: list[str],
        folder: Path,
        fmt: str,
        compression: str | None,
        parallel: int,
        progress: Progress,
        format_options: dict[str, Any],
    ) -> list[ExportResult]:
        def export(name: str) -> ExportResult:
            path = folder / file_name(name, fmt, compression)
            return self.exporter.export_collection(
                name, path, fmt, progress=progress, **format_options
            )

        if not names:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(names)))) as pool:
            futures = [pool.submit(export, name) for name in names]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _source(self) -> str:
        return "embedded" if self.db_manager.is_embedded else self.db_manager.masked_uri

    # -- verify ----------------------------------------------------------------------------
    def verify(self, backup_dir: str | Path) -> VerifyReport:
        """Check a backup against its manifest: safe file names, sizes, SHA-256, counts."""
        return self._verify(Path(backup_dir))[1]

    def _verify(self, folder: Path) -> tuple[Manifest | None, VerifyReport]:
        if not folder.is_dir():
            return None, VerifyReport(folder, False, [f"{folder}: not a folder"], [])
        manifest, problems = load_manifest(folder)
        checks = []
        if manifest is not None:
            for name, entry in manifest.collections.items():
                check = check_entry(folder, name, entry)
                checks.append(check)
                problems.extend(check.problems)
        return manifest, VerifyReport(folder, not problems, problems, checks)

    def _verified(self, folder: Path) -> Manifest:
        manifest, report = self._verify(folder)
        if not report.ok or manifest is None:
            raise IntegrityError(
                f"Backup {folder} does not match its manifest, nothing was written: "
                + "; ".join(report.problems)
            )
        return manifest

    # -- restore ---------------------------------------------------------------------------
    @driver_errors_as("restoring")
    def restore(
        self,
        backup_dir: str | Path,
        file_format: str | None = None,
        collections: Sequence[str] | None = None,
        mode: str = "replace",
        confirm: bool = False,
        dry_run: bool = False,
        *,
        progress: Progress = NO_PROGRESS,
    ) -> RestoreReport:
        """Load a verified backup into the database; nothing is written before it verifies.

        ``replace``: each restored collection that exists is loaded into a temporary collection
        (with its options and indexes) that then replaces it in one rename; one that does not
        is created and loaded under its own name (a rename copies the data on some servers, the
        embedded one included) and dropped again if that fails. ``merge``: documents are
        upserted by ``_id`` into the existing collection. Other collections are never touched.
        Needs ``confirm=True`` unless ``dry_run``; one restore per database at a time.
        """
        from pymongo.errors import PyMongoError

        started = time.perf_counter()
        if mode not in RESTORE_MODES:
            raise FormatError("mode", f"unknown restore mode {mode!r}; choose {RESTORE_MODES}")
        folder = Path(backup_dir)
        manifest = self._verified(folder)
        names = _require_collections(manifest.collections, collections, f"backup {folder}")
        if file_format:
            _check_format(file_format, manifest, names)
        if not (confirm or dry_run):
            raise ConfirmationRequiredError(
                f"Restoring {folder} {'replaces' if mode == 'replace' else 'merges into'} "
                f"collections of database {self.db_manager.database_name!r}; pass confirm=True"
            )
        database = self.db_manager.get_database()
        plan = self._plan(database, manifest, names, mode)
        reports: list[ImportReport] = []
        if not dry_run:
            with database_lock(database, "restore"):
                _drop_leftovers(database)
                present = set(database.list_collection_names())
                for name in names:
                    entry = manifest.collections[name]
                    try:
                        if mode == "merge":
                            report = self._merge(database, name, folder, entry, progress)
                        elif name in present:
                            report = self._replace(database, name, folder, entry, progress)
                        else:
                            report = self._create(database, name, folder, entry, progress)
                        reports.append(report)
                    except (WarehouseUnavailableError, PyMongoError) as exc:
                        state = _state_after_failure(name, mode, existed=name in present)
                        raise _restore_stopped(name, folder, database.name, state, exc) from exc
        return RestoreReport(
            folder, database.name, mode, dry_run, plan, reports, time.perf_counter() - started
        )

    @staticmethod
    def _plan(
        database: Database, manifest: Manifest, names: list[str], mode: str
    ) -> list[CollectionRestore]:
        present = set(database.list_collection_names())
        action = (
            "drop and recreate with options and indexes" if mode == "replace" else "upsert by _id"
        )
        return [
            CollectionRestore(
                name,
                manifest.collections[name].file,
                action,
                manifest.collections[name].count,
                database[name].estimated_document_count() if name in present else None,
                len(_secondary_indexes(manifest.collections[name].indexes)),
            )
            for name in names
        ]

    def _replace(
        self, database: Database, name: str, folder: Path, entry: ManifestEntry, progress: Progress
    ) -> ImportReport:
        """Load into a temporary collection, then rename it over ``name`` in one step, so a
        failure leaves ``name`` as it was."""
        temp = f"{RESTORE_PREFIX}{secrets.token_hex(6)}"
        try:
            report = self._fill(database, temp, folder / entry.file, entry, progress, name)
            options = _collection_options(database, temp)
            database.client.admin.command(
                "renameCollection",
                f"{database.name}.{temp}",
                to=f"{database.name}.{name}",
                dropTarget=True,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                database.drop_collection(temp)
            raise
        if _collection_options(database, name) != options:
            # Some servers (the embedded one) lose collection options such as ``capped`` in a
            # rename: load the collection in place instead.
            database.drop_collection(name)
            report = self._fill(database, name, folder / entry.file, entry, progress, name)
        report.collection = name
        return report

    def _create(
        self, database: Database, name: str, folder: Path, entry: ManifestEntry, progress: Progress
    ) -> ImportReport:
        """Load a collection that does not exist under its own name; dropped on any failure, so
        a failure leaves it absent, as it was (unless the server is gone, see
        :func:`_state_after_failure`)."""
        try:
            return self._fill(database, name, folder / entry.file, entry, progress, name)
        except BaseException:
            with contextlib.suppress(Exception):  # keep the error that stopped the load
                database.drop_collection(name)
            raise

    def _fill(
        self,
        database: Database,
        name: str,
        path: Path,
        entry: ManifestEntry,
        progress: Progress,
        label: str,
    ) -> ImportReport:
        """Create ``name`` with the backup's options, load every document, build the indexes."""
        database.create_collection(name, **entry.options)
        report = self._load(name, path, entry.format, "insert", progress)
        if report.rejected:
            raise IntegrityError(
                f"{path}: {report.rejected} document(s) could not be restored "
                f"({'; '.join(report.errors)})"
            )
        _create_indexes(database, name, entry.indexes, label)
        return report

    def _merge(
        self, database: Database, name: str, folder: Path, entry: ManifestEntry, progress: Progress
    ) -> ImportReport:
        if name not in database.list_collection_names():
            database.create_collection(name, **entry.options)
        existing = {index["name"] for index in database[name].list_indexes()}
        _create_indexes(database, name, [i for i in entry.indexes if i.get("name") not in existing])
        return self._load(name, folder / entry.file, entry.format, "upsert", progress)

    def _load(
        self, collection: str, path: Path, fmt: str, mode: str, progress: Progress
    ) -> ImportReport:
        return self.importer._import(
            collection,
            path,
            fmt,
            None,
            1000,
            mode=mode,
            upsert_fields=None,
            drop=False,
            stop_on_error=False,
            rejects=_Rejects(path, None),
            progress=progress,
            bypass_validation=True,
        )

    # -- migrate ---------------------------------------------------------------------------
    def migrate(
        self,
        source_dir: str | Path,
        target_dir: str | Path,
        source_format: str | None,
        target_format: str,
        *,
        overwrite: bool = False,
        progress: Progress = NO_PROGRESS,
    ) -> MigrateResult:
        """Convert every ``source_format`` file of a folder into ``target_format``, streaming.

        A backup folder (one with ``manifest.json``) is verified first and converted as a whole
        into a new backup folder whose manifest has recomputed counts, sizes and checksums (and
        the same indexes and options). Compression follows each source file's.
        """
        started = time.perf_counter()
        source, target = Path(source_dir), Path(target_dir)
        target_fmt = get_format(target_format).name
        source_fmt = get_format(source_format).name if source_format else None
        manifest_path = None
        if (source / MANIFEST).is_file():
            results, manifest_path = self._migrate_backup(
                source, target, source_fmt, target_fmt, overwrite, progress
            )
        else:
            results = self._migrate_files(
                source, target, source_fmt, target_fmt, overwrite, progress
            )
        return MigrateResult(
            source,
            target,
            source_fmt,
            target_fmt,
            results,
            manifest_path,
            time.perf_counter() - started,
        )

    def _migrate_backup(
        self,
        source: Path,
        target: Path,
        source_fmt: str | None,
        target_fmt: str,
        overwrite: bool,
        progress: Progress,
    ) -> tuple[list[ExportResult], Path]:
        manifest = self._verified(source)
        names = list(manifest.collections)
        if source_fmt:
            _check_format(source_fmt, manifest, names)
        entries: dict[str, ManifestEntry] = {}
        results = []
        with atomic_folder(target, overwrite=overwrite) as temp:
            for name, entry in manifest.collections.items():
                compression = split_compression(entry.file)[1]
                output = temp / file_name(name, target_fmt, compression)
                result = _convert(
                    name, source / entry.file, entry.format, output, target_fmt, progress
                )
                if result.count != entry.count:
                    raise IntegrityError(
                        f"{entry.file}: read {result.count:,} documents, manifest says {entry.count:,}"
                    )
                results.append(replace(result, path=target / output.name))
                entries[name] = replace(
                    entry,
                    file=output.name,
                    format=result.format,
                    bytes=result.bytes,
                    sha256=result.sha256,
                )
            # A new backup, dated now (``status`` finds the newest by that date); the source's
            # date and folder are kept beside it.
            extra = {
                **manifest.extra,
                "migrated_from": str(source),
                "source_created_at": manifest.created_at,
            }
            write_manifest(
                temp,
                Manifest(
                    __version__,
                    utc_now_iso(),
                    manifest.source,
                    manifest.database,
                    entries,
                    extra,
                ),
            )
        return results, target / MANIFEST

    @staticmethod
    def _migrate_files(
        source: Path,
        target: Path,
        source_fmt: str | None,
        target_fmt: str,
        overwrite: bool,
        progress: Progress,
    ) -> list[ExportResult]:
        if not source.is_dir():
            raise MissingFileError(source)
        jobs = []
        for path in sorted(source.iterdir()):
            stem = collection_of(path, source_fmt) if is_data_file(path) else None
            if stem is None:
                continue
            compression = split_compression(path)[1]
            extension = get_format(target_fmt).extensions[0] + compression_suffix(compression)
            fmt = source_fmt or detect_format(path)[0].name
            jobs.append((stem, path, fmt, target / f"{stem}{extension}"))
        if not overwrite:
            _refuse_existing(output for *_, output in jobs)
        return [
            _convert(stem, path, fmt, output, target_fmt, progress, overwrite)
            for stem, path, fmt, output in jobs
        ]

    # -- status ----------------------------------------------------------------------------
    def status(self, backups_root: str | Path = "backups") -> WarehouseStatus:
        """Where the warehouse is, each collection's document count and size, newest backup."""
        database = self.db_manager.get_database()
        collections = [
            CollectionStatus(
                name, database[name].estimated_document_count(), *_sizes(database, name)
            )
            for name in _user_collections(database)
        ]
        newest = newest_backup(Path(backups_root))
        return WarehouseStatus(
            self.db_manager.location,
            database.name,
            collections,
            newest[0] if newest else None,
            newest[1] if newest else None,
        )


def _sizes(database: Database, name: str) -> tuple[int | None, int | None]:
    """``collStats`` data and storage sizes, or None where the server does not tell."""
    from pymongo.errors import PyMongoError

    try:
        stats = database.command("collStats", name)
    except PyMongoError:
        return None, None
    size, storage = stats.get("size"), stats.get("storageSize")
    return (
        int(size) if isinstance(size, int | float) else None,
        int(storage) if isinstance(storage, int | float) else None,
    )


def _state_after_failure(name: str, mode: str, existed: bool) -> str:
    """What a collection holds after the warehouse failed while it was being restored."""
    if mode == "merge":
        return f"{name!r} holds part of the backup"
    if existed:
        return f"{name!r} is as it was before"
    return f"{name!r} did not exist before and may now hold part of the backup"


def _restore_stopped(
    name: str, folder: Path, database: str, state: str, exc: BaseException
) -> WarehouseUnavailableError:
    """A restore the warehouse cut short: which collection, why, in what state, what to do."""
    return WarehouseUnavailableError(
        f"Restoring {name!r} from {folder} into database {database!r} stopped: the warehouse "
        f"failed ({getattr(exc, 'reason', None) or driver_reason(exc)}). {state}; once the "
        "warehouse is back, run the restore again to finish it."
    )


def _drop_leftovers(database: Database) -> None:
    """Drop the temporary collections of restores that died (a crash, a lost server): under the
    restore lock, no other restore can be loading one."""
    for name in database.list_collection_names():
        if name.startswith(RESTORE_PREFIX):
            database.drop_collection(name)


def _collection_options(database: Database, name: str) -> dict[str, Any] | None:
    infos = list(database.list_collections(filter={"name": name}))
    return dict(infos[0].get("options", {})) if infos else None


def _check_format(file_format: str, manifest: Manifest, names: list[str]) -> None:
    """A format named by the caller must be the one the manifest records."""
    wanted = get_format(file_format).name
    for name in names:
        if manifest.collections[name].format != wanted:
            raise UnsupportedFormatError(
                f"{manifest.collections[name].file} is {manifest.collections[name].format}, "
                f"not {wanted} (the manifest says so); leave the format out to use the manifest's"
            )


def _secondary_indexes(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index specifications to recreate: all but ``_id_``, without server-set fields."""
    return [
        {k: v for k, v in index.items() if k not in ("v", "ns")}
        for index in indexes
        if index.get("name") != "_id_"
    ]


def _create_indexes(
    database: Database, collection: str, indexes: list[dict[str, Any]], label: str | None = None
) -> None:
    """Build the indexes of a backup (one command); a refusal names the collection's indexes."""
    from pymongo.errors import OperationFailure

    specs = _secondary_indexes(indexes)
    if not specs:
        return
    try:
        database.command({"createIndexes": collection, "indexes": specs})
    except OperationFailure as exc:
        names = ", ".join(str(spec.get("name")) for spec in specs)
        raise IntegrityError(
            f"Cannot build the indexes of {label or collection!r} ({names}) from the backup: "
            f"{exc.details.get('errmsg', exc) if exc.details else exc}"
        ) from None


def _convert(
    name: str,
    source: Path,
    source_fmt: str,
    output: Path,
    target_fmt: str,
    progress: Progress,
    overwrite: bool = True,
) -> ExportResult:
    """Stream one file into another format; a record that cannot be read stops it."""
    started = time.perf_counter()
    progress.start(f"migrate {source.name}", None, "docs")
    try:
        written = convert_file(
            source,
            output,
            source_fmt,
            target_fmt,
            overwrite=overwrite,
            batch_size=10_000,
            on_progress=progress.advance,
        )
    finally:
        progress.finish()
    return ExportResult(
        name,
        written.path,
        written.format,
        written.count,
        written.bytes,
        written.sha256,
        time.perf_counter() - started,
    )
