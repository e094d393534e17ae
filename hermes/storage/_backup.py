"""The pieces of a backup that need no warehouse: names, the manifest, folder checks, the lock.

A backup folder holds one file per collection and ``manifest.json``, written last. Everything
read from a manifest is untrusted: names are validated and files must stay inside the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hermes.errors import (
    ConfirmationRequiredError,
    InvalidNameError,
    UnsupportedFormatError,
    WarehouseUnavailableError,
)
from hermes.formats import EXTENSIONS, extjson, format_name, read_documents
from hermes.formats.base import atomic_output, remove_stale, sha256_file, split_compression

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
REJECTS_SUFFIX = ".rejects.jsonl"
#: Where restores take their lock: a database of Hermes' own, else this collection of the locked
#: database (Hermes' bookkeeping, never exported or backed up).
LOCK_DATABASE = "hermes_locks"
LOCK_COLLECTION = "hermes_locks"
_UNAUTHORIZED = 13
#: Prefix of the collection a replacing restore loads before renaming it into place.
RESTORE_PREFIX = "hermes_restore_tmp_"
COMPRESSION_SUFFIXES = {"gzip": ".gz", "gz": ".gz", "zstd": ".zst", "zst": ".zst"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a collection (or a file named after one), or None when it can."""
    if not isinstance(name, str) or not name:
        return "a collection name must be a non-empty string"
    for bad, what in (("\x00", "a NUL character"), ("$", "'$'"), ("/", "'/'"), ("\\", "'\\'")):
        if bad in name:
            return f"collection name {name!r} contains {what}"
    if name.startswith("."):
        return f"collection name {name!r} starts with a dot"
    if name.startswith("system."):
        return f"collection name {name!r} is a system collection"
    return None


def validate_collection_name(name: object) -> str:
    """``name`` itself, or :class:`InvalidNameError` saying why it is unsafe."""
    problem = name_problem(name)
    if problem:
        raise InvalidNameError(problem)
    return name  # type: ignore[return-value]


def is_internal(name: str) -> bool:
    """System collections and Hermes' own bookkeeping: never exported, backed up or restored."""
    return name.startswith("system.") or name == LOCK_COLLECTION or name.startswith(RESTORE_PREFIX)


def compression_suffix(compression: str | None) -> str:
    """``"gzip"`` -> ``".gz"``; ``None``/``"none"`` -> ``""``."""
    if compression in (None, "", "none"):
        return ""
    try:
        return COMPRESSION_SUFFIXES[compression.lower()]  # type: ignore[union-attr]
    except KeyError:
        raise UnsupportedFormatError(
            f"Unknown compression {compression!r}; choose gzip, zstd or none"
        ) from None


def file_name(collection: str, file_format: str, compression: str | None = None) -> str:
    """``raw_documents`` -> ``raw_documents.jsonl.gz``: the file a collection is written to."""
    extension = EXTENSIONS[format_name(file_format)][0]
    return f"{validate_collection_name(collection)}{extension}{compression_suffix(compression)}"


def collection_of(path: str | Path, file_format: str | None = None) -> str | None:
    """The collection a file is named after (``raw_documents.json.gz`` -> ``raw_documents``).

    None when the name carries no extension of ``file_format`` (or of any format when None).
    """
    base, _ = split_compression(path)
    names = [format_name(file_format)] if file_format else list(EXTENSIONS)
    lower = base.lower()
    for name in names:
        for extension in EXTENSIONS[name]:
            if lower.endswith(extension):
                return base[: -len(extension)]
    return None


def is_data_file(path: Path) -> bool:
    """Files a folder import or migration considers: not a manifest, not a rejects file, not a
    hidden file (the temporary file of an interrupted write is one; so is an editor's)."""
    name = path.name
    return (
        path.is_file()
        and not name.startswith(".")
        and name != MANIFEST
        and not split_compression(name)[0].endswith(REJECTS_SUFFIX)
    )


# ------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------


@dataclass
class ManifestEntry:
    """One collection of a backup, as its manifest describes it."""

    file: str
    format: str
    count: int
    bytes: int
    sha256: str
    indexes: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "count": self.count,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "indexes": [extjson.to_extended(index) for index in self.indexes],
            "options": extjson.to_extended(self.options),
        }


@dataclass
class Manifest:
    """What ``manifest.json`` records; ``collections`` maps names to their entries."""

    hermes_version: str
    created_at: str
    source: str
    database: str
    collections: dict[str, ManifestEntry]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "hermes_version": self.hermes_version,
            "created_at": self.created_at,
            "source": self.source,
            "database": self.database,
            **self.extra,
            "collections": {name: entry.to_json() for name, entry in self.collections.items()},
        }


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (the last file of a backup)."""
    path = folder / MANIFEST
    with atomic_output(path, compression=None) as out:
        out.stream.write(orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2))
        out.stream.write(b"\n")
    return path


_TOP_FIELDS = {
    "hermes_version": str,
    "created_at": str,
    "source": str,
    "database": str,
    "collections": dict,
}
#: How a manifest problem names the JSON type a field must have.
_JSON_KINDS = {str: "a string", int: "an integer", dict: "an object", list: "an array"}
_ENTRY_FIELDS = {
    "file": str,
    "format": str,
    "count": int,
    "bytes": int,
    "sha256": str,
    "indexes": list,
    "options": dict,
}


def load_manifest(folder: Path) -> tuple[Manifest | None, list[str]]:
    """The manifest of a backup folder and the problems found in it (None when unusable)."""
    path = folder / MANIFEST
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None, [f"{MANIFEST}: missing (not a Hermes backup folder, or an incomplete one)"]
    except (OSError, orjson.JSONDecodeError) as exc:
        return None, [f"{MANIFEST}: not valid JSON ({exc})"]
    if not isinstance(data, dict):
        return None, [f"{MANIFEST}: expected a JSON object"]
    problems = [
        f"{MANIFEST}: field {key!r} missing or not {_JSON_KINDS[kind]}"
        for key, kind in _TOP_FIELDS.items()
        if not isinstance(data.get(key), kind)
    ]
    if problems:
        return None, problems
    try:
        datetime.fromisoformat(data["created_at"])
    except ValueError:
        problems.append(f"{MANIFEST}: created_at {data['created_at']!r} is not an ISO date")
    entries: dict[str, ManifestEntry] = {}
    for name, raw in data["collections"].items():
        entry, entry_problems = _parse_entry(name, raw)
        problems.extend(entry_problems)
        if entry is not None:
            entries[name] = entry
    extra = {k: v for k, v in data.items() if k not in _TOP_FIELDS and k != "manifest_version"}
    manifest = Manifest(
        data["hermes_version"], data["created_at"], data["source"], data["database"], entries, extra
    )
    return manifest, problems


def _parse_entry(name: str, raw: Any) -> tuple[ManifestEntry | None, list[str]]:
    where = f"{MANIFEST}: collection {name!r}"
    problem = name_problem(name)
    if problem:
        return None, [f"{where}: {problem}"]
    if not isinstance(raw, dict):
        return None, [f"{where}: expected an object"]
    problems = [
        f"{where}: field {key!r} missing or not {_JSON_KINDS[kind]}"
        for key, kind in _ENTRY_FIELDS.items()
        if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool)
    ]
    if problems:
        return None, problems
    if raw["count"] < 0 or raw["bytes"] < 0:
        problems.append(f"{where}: negative count or byte size")
    if not _SHA256.fullmatch(raw["sha256"]):
        problems.append(f"{where}: sha256 {raw['sha256']!r} is not a SHA-256 hex digest")
    try:
        format_name(raw["format"])
    except UnsupportedFormatError as exc:
        problems.append(f"{where}: {exc}")
    try:
        indexes = [extjson.from_extended(index) for index in raw["indexes"]]
        options = extjson.from_extended(raw["options"])
    except ValueError as exc:
        problems.append(f"{where}: unreadable indexes or options ({exc})")
        indexes, options = [], {}
    if problems:
        return None, problems
    entry = ManifestEntry(
        raw["file"], raw["format"], raw["count"], raw["bytes"], raw["sha256"], indexes, options
    )
    return entry, []


def member_problem(folder: Path, file: str) -> str | None:
    """Why ``file`` (named by a manifest) is not a file safely inside ``folder``, or None."""
    if not file or file in (".", ".."):
        return f"{file!r}: not a file name"
    if os.path.isabs(file) or file.startswith(("/", "\\")):
        return f"{file}: absolute path, refused (files must be inside the backup folder)"
    if "/" in file or "\\" in file or "\x00" in file:
        return f"{file}: not a plain file name, refused (files must be inside the backup folder)"
    path = folder / file
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(folder.resolve()):
            return f"{file}: symbolic link pointing outside the backup folder, refused"
    if not path.exists():
        return f"{file}: missing"
    if not path.is_file():
        return f"{file}: not a regular file"
    return None


@dataclass
class CollectionCheck:
    """What verifying one collection file found."""

    collection: str
    file: str
    expected_count: int
    actual_count: int | None
    checksum_ok: bool
    problems: list[str]


def check_entry(folder: Path, name: str, entry: ManifestEntry) -> CollectionCheck:
    """Size, SHA-256 and document count of one file against its manifest entry."""
    check = CollectionCheck(name, entry.file, entry.count, None, False, [])
    problem = member_problem(folder, entry.file)
    if problem:
        check.problems.append(problem)
        return check
    path = folder / entry.file
    size = path.stat().st_size
    if size != entry.bytes:
        check.problems.append(f"{entry.file}: {size:,} bytes, manifest says {entry.bytes:,}")
    digest = sha256_file(path)
    check.checksum_ok = digest == entry.sha256
    if not check.checksum_ok:
        check.problems.append(
            f"{entry.file}: SHA-256 mismatch (file {digest[:12]}…, manifest {entry.sha256[:12]}…)"
        )
    try:
        check.actual_count = count_documents(path, entry.format)
    except (ValueError, OSError) as exc:  # FormatError, ExtJsonError, decompression errors
        check.problems.append(f"{entry.file}: unreadable ({exc})")
        return check
    if check.actual_count != entry.count:
        check.problems.append(
            f"{entry.file}: {check.actual_count:,} documents, manifest says {entry.count:,}"
        )
    return check


def count_documents(path: Path, file_format: str) -> int:
    """Documents in a file, by reading it through (bad records raise); JSON Lines straight to
    BSON where the C decoder takes the lines, since no field is looked at."""
    batches = read_documents(path, file_format, batch_size=10_000, raw_bson=True)
    return sum(len(batch) for batch in batches)


# ------------------------------------------------------------------------------------------
# Folders
# ------------------------------------------------------------------------------------------


def default_backup_dir(root: str | Path = "backups") -> Path:
    """``backups/20261126T210501Z``: a new backup folder named by the UTC time."""
    return Path(root) / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_folder(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary sibling name; rename it to ``target`` once complete.

    An existing non-empty ``target`` is refused unless ``overwrite``; it is then swapped out and
    removed only after the new folder is in place. On error the temporary folder disappears;
    one left by a process that died is removed by the next build of the same ``target``.
    """
    target = Path(target)
    if target.exists() and not _is_empty_dir(target) and not overwrite:
        what = "folder" if target.is_dir() else "file"
        raise ConfirmationRequiredError(
            f"{target} already exists and is a non-empty {what}; choose another folder, "
            "or pass overwrite=True to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, re.escape(f".{target.name}.tmp-") + "[0-9a-f]{8}")
    temp = target.parent / f".{target.name}.tmp-{secrets.token_hex(4)}"
    temp.mkdir(mode=0o700)
    held = os.open(temp, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # tells a later backup that this folder is still in use
    try:
        yield temp
        old = None
        if target.exists() and not _is_empty_dir(target):
            old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
            os.replace(target, old)
        elif target.is_dir():
            target.rmdir()
        os.replace(temp, target)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    finally:
        os.close(held)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def newest_backup(root: Path) -> tuple[Path, str] | None:
    """The newest backup folder under ``root`` (by manifest creation time, then by name)."""
    if not root.is_dir():
        return None
    found: list[tuple[str, str, Path]] = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        try:
            created = orjson.loads((folder / MANIFEST).read_bytes()).get("created_at", "")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            created = ""
        found.append((str(created), folder.name, folder))
    if not found:
        return None
    created, _, folder = max(found)
    return folder, created


# ------------------------------------------------------------------------------------------
# The restore lock
# ------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Tokens of the locks this process holds right now. A lock document of this process with
#: another token was left by an earlier operation that could not release it (the server died).
_HELD: set[str] = set()


def _stale(holder: Mapping[str, Any]) -> bool:
    """A lock left by a process of this host that no longer runs, or by this process earlier."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return holder.get("token") not in _HELD
    return not _alive(pid)


def _lock_collections(database: Database) -> Iterator[Collection]:
    """Where lock documents live: Hermes' own database, so the locked one stays untouched; a
    collection of the locked database itself when the user may not write elsewhere."""
    from pymongo import WriteConcern

    concern = WriteConcern(j=True)
    yield database.client[LOCK_DATABASE].get_collection("locks", write_concern=concern)
    yield database.get_collection(LOCK_COLLECTION, write_concern=concern)


def _acquire(locks: Collection, mine: dict[str, Any]) -> None:
    from pymongo.errors import DuplicateKeyError

    for _ in range(2):
        try:
            locks.insert_one(mine)
            return
        except DuplicateKeyError:
            holder = locks.find_one({"_id": mine["_id"]}) or {}
            if not _stale(holder):
                raise WarehouseUnavailableError(
                    _locked_message(locks, mine["_id"], holder)
                ) from None
            locks.delete_one({"_id": mine["_id"], "token": holder.get("token")})
    raise WarehouseUnavailableError(_locked_message(locks, mine["_id"], {}))


@contextlib.contextmanager
def database_lock(database: Database, purpose: str = "restore") -> Iterator[None]:
    """Hold the lock of ``database`` (a document with ``_id`` = its name) for the block.

    The server enforces the unique ``_id``, so the lock works across processes and machines. A
    lock left behind by a dead process of this host is taken over; any other refuses. When the
    server is gone at the end, the lock stays behind and the next restore takes it over.
    """
    from pymongo.errors import OperationFailure, PyMongoError

    mine = {
        "_id": database.name,
        "token": secrets.token_hex(8),
        "purpose": purpose,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(timezone.utc),
    }
    for locks in _lock_collections(database):
        try:
            _acquire(locks, mine)
            break
        except OperationFailure as exc:
            if exc.code != _UNAUTHORIZED:
                raise
    else:
        raise WarehouseUnavailableError(
            f"Cannot take the {purpose} lock of database {database.name!r}: not authorized to "
            f"write to {LOCK_DATABASE}.locks nor to {database.name}.{LOCK_COLLECTION}"
        )
    _HELD.add(mine["token"])
    try:
        yield
    finally:
        _HELD.discard(mine["token"])
        with contextlib.suppress(PyMongoError):  # keep the error that ended the block
            locks.delete_one({"_id": database.name, "token": mine["token"]})


def _locked_message(locks: Collection, name: str, holder: Mapping[str, Any]) -> str:
    who = (
        f"{holder.get('purpose', 'an operation')} by process {holder.get('pid')} on "
        f"{holder.get('host')} since {holder.get('since')}"
        if holder
        else "another operation"
    )
    return (
        f"Database {name!r} is locked ({who}); wait for it to finish. If that process is gone, "
        f"remove the lock document {{_id: {name!r}}} from {locks.full_name}"
    )
