"""What every file format shares: batches with source positions, the write result, atomic and
compressed output, and the protocol a format implements.

A format module only turns documents into bytes and back; where the bytes go (a temporary file
renamed into place, through gzip or zstd) and how the result is described is decided here once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from hermes.errors import FormatError, MissingFileError

Document = dict[str, Any]

#: Compression suffixes and the name of their codec.
COMPRESSIONS: dict[str, str] = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
DEFAULT_BATCH_SIZE = 1000
#: Each format's file extensions, the first being the one written: read by the registry without
#: loading the format's module, and by the format classes themselves.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "json": (".json",),
    "jsonl": (".jsonl", ".ndjson"),
    "csv": (".csv",),
    "tsv": (".tsv",),
    "parquet": (".parquet",),
}
_CHUNK = 1 << 20
#: A temporary file or folder whose writer died is removed by the next write of the same name
#: once no process holds its lock and it is this old (a live writer locks it as it creates it).
STALE_AFTER = 10.0


@dataclass(frozen=True)
class RecordError:
    """A record that could not be read: where it was and why (``location`` like ``"line 12"``)."""

    path: str
    location: str
    reason: str
    raw: str | None = None

    def as_format_error(self) -> FormatError:
        return FormatError(self.path, self.reason, self.location)


#: Called for each unreadable record when the caller wants to go on past it.
ErrorHandler = Callable[[RecordError], None]


def reject(error: RecordError, on_error: ErrorHandler | None) -> None:
    """Hand a bad record to the caller's handler, or stop with a FormatError when there is none."""
    if on_error is None:
        raise error.as_format_error()
    on_error(error)


@dataclass
class Batch:
    """Documents read together, with the position of each in its file (``"line 3"``, ``"row 2"``)."""

    documents: list[Document]
    locations: list[str]

    def __len__(self) -> int:
        return len(self.documents)

    def __iter__(self) -> Iterator[tuple[str, Document]]:
        return iter(zip(self.locations, self.documents, strict=True))


class BsonChunks:
    """Documents still in BSON, in chunks (lists of each document's bytes), read once.

    Iterating yields decoded documents, one C call per chunk, so any writer takes them. A writer
    that can turn BSON into its output directly (JSON Lines, JSON) reads :attr:`chunks` instead
    and never builds Python objects per field: that is most of an export's client CPU.
    """

    __slots__ = ("chunks", "codec_options")

    def __init__(self, chunks: Iterable[list[bytes]], codec_options: Any) -> None:
        self.chunks = chunks
        self.codec_options = codec_options

    def __iter__(self) -> Iterator[Document]:
        import bson

        decode_all, options = bson.decode_all, self.codec_options
        for chunk in self.chunks:
            yield from decode_all(b"".join(chunk), options)


@dataclass
class WriteResult:
    """What a write produced: the final path, documents written, bytes on disk and their SHA-256."""

    path: Path
    format: str
    count: int
    bytes: int
    sha256: str
    compression: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FileFormat(Protocol):
    """One file format. ``read_batches`` streams; ``write_stream`` consumes any iterable.

    A reader reports a bad record to ``on_error`` and goes on; without ``on_error`` (or at an
    error that breaks the file itself) it raises a :class:`FormatError`, after yielding the
    documents read before it, so that a caller can keep everything up to the error.
    """

    name: str
    extensions: tuple[str, ...]

    def read_batches(
        self,
        stream: IO[bytes],
        path: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: ErrorHandler | None = None,
        **options: Any,
    ) -> Iterator[Batch]: ...

    def write_stream(
        self, stream: IO[bytes], documents: Iterable[Mapping[str, Any]], **options: Any
    ) -> int:
        """Write every document to ``stream``; return how many were written."""
        ...


# ------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------


def split_compression(path: str | Path) -> tuple[str, str | None]:
    """``data.jsonl.gz`` -> (``data.jsonl``, ``"gzip"``)."""
    name = Path(path).name
    lower = name.lower()
    for suffix, codec in COMPRESSIONS.items():
        if lower.endswith(suffix):
            return name[: -len(suffix)], codec
    return name, None


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_input(path: str | Path, compression: str | None = None) -> Iterator[IO[bytes]]:
    """A binary stream of the file's content, decompressed as its name (or ``compression``) says."""
    source = Path(path)
    if compression is None:
        compression = split_compression(source)[1]
    try:
        raw = open(source, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise MissingFileError(source) from None
    except IsADirectoryError:
        raise FormatError(source, "is a folder, not a file") from None
    except PermissionError:
        raise FormatError(source, "permission denied") from None
    try:
        if compression == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield io.BufferedReader(_GuardedReader(stream, source, "gzip"), _CHUNK)
        elif compression == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as stream:
                yield io.BufferedReader(_GuardedReader(stream, source, "zstd"), _CHUNK)
        else:
            yield raw
    finally:
        raw.close()


class _GuardedReader(io.RawIOBase):
    """Turns a decompressor's low-level error into a :class:`FormatError` naming the file."""

    def __init__(self, inner: IO[bytes], path: Path, codec: str) -> None:
        self._inner = inner
        self._path = path
        self._codec = codec

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, FormatError):
                raise
            raise FormatError(
                self._path, f"corrupt or truncated {self._codec} data ({exc})"
            ) from None
        except Exception as exc:  # zstandard.ZstdError does not derive from OSError
            raise FormatError(
                self._path, f"corrupt or truncated {self._codec} data ({exc})"
            ) from None
        count = len(data)
        buffer[:count] = data
        return count

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(_CHUNK):
                chunks.append(chunk)
            return b"".join(chunks)
        buffer = bytearray(size)
        count = self.readinto(buffer)
        return bytes(buffer[:count])


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


class _HashingFile(io.RawIOBase):
    """Counts and hashes the bytes that reach the disk."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha256.update(view)
        self.raw.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return self.raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Where the writing is, or back to the start to write the file again from scratch
        (what is there is cut, the count and the hash start over); no other seek."""
        if offset == 0 and whence in (io.SEEK_CUR, io.SEEK_END):
            return self.size
        if (offset, whence) != (0, io.SEEK_SET):
            raise io.UnsupportedOperation("only the start of a file being written can be sought")
        self.raw.seek(0)
        self.raw.truncate()
        self.sha256, self.size = hashlib.sha256(), 0
        return 0

    def truncate(self, size: int | None = None) -> int:
        if size not in (None, self.size):
            raise io.UnsupportedOperation("a file being written can only be cut at its end")
        return self.size

    def flush(self) -> None:
        self.raw.flush()


@dataclass
class AtomicOutput:
    """Handed to the writer inside :func:`atomic_output`; filled in when the file is in place."""

    path: Path
    stream: IO[bytes]
    compression: str | None
    bytes: int = 0
    sha256: str = ""


@contextlib.contextmanager
def atomic_output(
    path: str | Path, compression: str | None = None, *, overwrite: bool = True
) -> Iterator[AtomicOutput]:
    """Write to a temporary file beside ``path``; on success fsync and rename it into place.

    On any error (or KeyboardInterrupt) the temporary file is removed and ``path`` is untouched,
    so nothing that looks complete is ever left behind. Files are created 0600: they hold data.
    A temporary file left by a process that died (a kill, a power cut) is removed by the next
    write of the same ``path``: :func:`remove_stale`.
    """
    target = Path(path)
    if compression is None:
        compression = split_compression(target)[1]
    if not overwrite and target.exists():
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_stale(target.parent, re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is closed, or the process dies
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingFile(raw)
            out = AtomicOutput(target, hashing, compression)  # type: ignore[arg-type]
            if compression == "gzip":
                with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
                    out.stream = gz  # type: ignore[assignment]
                    yield out
            elif compression == "zstd":
                import zstandard

                compressor = zstandard.ZstdCompressor(level=3, threads=-1)
                with compressor.stream_writer(hashing, closefd=False) as zst:
                    out.stream = zst  # type: ignore[assignment]
                    yield out
            else:
                buffered = io.BufferedWriter(hashing, _CHUNK)  # type: ignore[arg-type]
                out.stream = buffered
                yield out
                buffered.flush()
                buffered.detach()
            raw.flush()
            os.fsync(raw.fileno())
        out.bytes = hashing.size
        out.sha256 = hashing.sha256.hexdigest()
        os.replace(temp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            # A full disk or a file size limit: say which file could not be written.
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise


def remove_stale(folder: Path, pattern: str) -> list[Path]:
    """Remove the entries of ``folder`` named by ``pattern`` (a regular expression) that a dead
    writer left: unlocked and older than :data:`STALE_AFTER`. Symbolic links are left alone."""
    name = re.compile(pattern)
    removed = []
    for entry in os.scandir(folder):
        if not name.fullmatch(entry.name) or entry.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
            finally:
                os.close(fd)
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def batch_records(records: Iterable[tuple[str, Document]], batch_size: int) -> Iterator[Batch]:
    """Group a reader's ``(location, document)`` pairs into batches.

    When reading ends in a FormatError, the documents read before it are handed over first, so
    a caller that stops at the first error still gets every record that preceded it.
    """
    documents: list[Document] = []
    locations: list[str] = []
    try:
        for location, document in records:
            documents.append(document)
            locations.append(location)
            if len(documents) >= batch_size:
                yield Batch(documents, locations)
                documents, locations = [], []
    except FormatError:
        if documents:
            yield Batch(documents, locations)
        raise
    if documents:
        yield Batch(documents, locations)


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` items, in order."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
