"""JSON Lines: one Extended JSON document per line.

The fastest lossless text format, and the one that survives bad records best: a broken line is
reported with its number (and the column, for JSON that does not parse: ``line 7, column 12``)
and the lines around it are still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from hermes.formats import extjson
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    BsonChunks,
    ErrorHandler,
    RecordError,
    batch_records,
    batched,
    reject,
)

_BOM = b"\xef\xbb\xbf"
#: The longest line read as a record: room for a 16 MB document in Extended JSON, even with
#: escapes. A longer line (a file without line breaks, a decompression bomb) is rejected as a
#: record without ever being held whole in memory.
MAX_LINE = 128 * 1024 * 1024
_BLOCK = 1 << 20


def describe_json_error(exc: Exception) -> str:
    """A short reason for a JSON or Extended JSON error, without Python internals or positions
    (the location says where: see :func:`error_column`)."""
    if isinstance(exc, orjson.JSONDecodeError):
        if "str is not valid UTF-8" in exc.msg or "surrogates" in exc.msg:
            return "invalid UTF-8"
        return f"malformed JSON: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8"
    if isinstance(exc, RecursionError):
        return "nesting too deep"
    return f"invalid Extended JSON: {exc}"


def error_column(exc: Exception, line: bytes) -> int | None:
    """The column (from 1, in characters) of ``line`` where parsing it failed, if known.

    orjson counts characters from the start of the record; an error after the last character
    (a record cut short) is placed just after it, not on the line below.
    """
    if isinstance(exc, orjson.JSONDecodeError):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        return min(exc.pos, len(text)) + 1
    if isinstance(exc, UnicodeDecodeError):
        return len(line[: exc.start].decode("utf-8", "replace")) + 1
    return None


class JsonLinesFormat:
    name = "jsonl"
    extensions = EXTENSIONS["jsonl"]
    #: ``read_batches(..., raw_bson=True)`` reads lines straight to BSON (see there).
    reads_bson = True

    def read_batches(
        self,
        stream: IO[bytes],
        path: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_error: ErrorHandler | None = None,
        raw_bson: bool = False,
        **_: Any,
    ) -> Iterator[Batch]:
        """``raw_bson``: hand over each document the C decoder takes as a
        :class:`~bson.raw_bson.RawBSONDocument` (what an insert sends, built without Python
        objects per field); the others, and every error, as without it."""
        lines = content_lines(stream)
        if raw_bson:
            return batch_records(_raw_records(lines, path, on_error, batch_size), batch_size)
        return batch_records(_parsed(lines, path, on_error), batch_size)

    def write_stream(
        self,
        stream: IO[bytes],
        documents: Iterable[Mapping[str, Any]],
        *,
        json_format: str = "relaxed",
        **_: Any,
    ) -> int:
        canonical = _is_canonical(json_format)
        write = stream.write
        encode_chunk = bson_lines_encoder(documents)
        if encode_chunk is not None:
            count = 0
            for chunk in documents.chunks:  # type: ignore[attr-defined]
                write(encode_chunk(chunk, canonical))
                count += len(chunk)
            return count
        dumps = extjson.dumps
        count = 0
        for document in documents:
            write(dumps(document, canonical))
            write(b"\n")
            count += 1
        return count


def content_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines that hold something (a BOM dropped); None for an overlong line, which
    :func:`_record` rejects in its turn."""
    for number, line in enumerate(_lines(stream), start=1):
        if line is None:
            yield number, None
            continue
        if number == 1 and line.startswith(_BOM):
            line = line[3:]
        if line.strip():
            yield number, line


def _record(
    number: int, line: bytes | None, path: str, on_error: ErrorHandler | None
) -> tuple[str, dict[str, Any]] | None:
    """The line's document with its location, or None once it is rejected."""
    if line is None:
        reason = f"line longer than {MAX_LINE:,} bytes (is the file JSON Lines?)"
        reject(RecordError(path, f"line {number}", reason), on_error)
        return None
    try:
        return f"line {number}", extjson.loads_document(line)
    except (ValueError, RecursionError) as exc:
        column = error_column(exc, line)
        location = f"line {number}, column {column}" if column else f"line {number}"
        reject(RecordError(path, location, describe_json_error(exc), _preview(line)), on_error)
        return None


def _parsed(
    lines: Iterable[tuple[int, bytes | None]], path: str, on_error: ErrorHandler | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in lines:
        if record := _record(number, line, path, on_error):
            yield record


def _raw_records(
    lines: Iterable[tuple[int, bytes | None]], path: str, on_error: ErrorHandler | None, size: int
) -> Iterator[tuple[str, Any]]:
    """Records as raw BSON where the C decoder writes them (one call per group of lines), the
    Python reader's documents and errors for the lines it declines."""
    from bson.raw_bson import RawBSONDocument

    from hermes.formats import jsonbson
    from hermes.storage.database import CODEC_OPTIONS
    from hermes.storage.streams import raw_codec

    if not jsonbson.AVAILABLE:
        yield from _parsed(lines, path, on_error)
        return
    options = raw_codec(CODEC_OPTIONS)
    for group in batched(lines, size):
        encoded = jsonbson.lines_to_bson([line or b"" for _, line in group])
        for (number, line), raw in zip(group, encoded, strict=True):
            if raw is not None:
                yield f"line {number}", RawBSONDocument(raw, options)
            elif record := _record(number, line, path, on_error):
                yield record


def bson_lines_encoder(documents: Any) -> Callable[[list[bytes], bool], bytes] | None:
    """For documents still in BSON (:class:`BsonChunks` decoded as the warehouse decodes), the
    function that writes a chunk of them straight to Extended JSON lines; None otherwise.

    Its output is byte for byte what decoding and :func:`extjson.dumps` would write.
    """
    if not isinstance(documents, BsonChunks):
        return None
    from hermes.formats import rawjson

    if documents.codec_options != rawjson.CODEC_OPTIONS:
        return None
    return rawjson.dumps_raw_lines


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The lines of ``stream`` (without their ``\n``); None for a line over :data:`MAX_LINE`,
    whose rest is skipped as it comes, so that memory stays bounded whatever the file holds.

    Read a block at a time and split in C: a ``readline`` call per line costs more than
    decoding the line does.
    """
    limit = MAX_LINE
    pending: list[bytes] = []  # the start of the line the next block continues
    pending_size = 0
    overlong = False
    while block := stream.read(_BLOCK):
        pieces = block.split(b"\n")
        last = pieces.pop()
        for piece in pieces:
            if overlong or pending_size + len(piece) > limit:
                yield None
            elif pending:
                yield b"".join([*pending, piece])
            else:
                yield piece
            if pending_size or overlong:
                pending, pending_size, overlong = [], 0, False
        if last and not overlong:
            pending_size += len(last)
            if pending_size > limit:
                pending, overlong = [], True
            else:
                pending.append(last)
    if overlong or pending:
        yield None if overlong else b"".join(pending)


def _is_canonical(json_format: str) -> bool:
    mode = (json_format or "relaxed").lower()
    if mode not in ("relaxed", "canonical"):
        raise ValueError(f"Unknown JSON format {json_format!r}; choose relaxed or canonical")
    return mode == "canonical"


def _preview(line: bytes, limit: int = 200) -> str:
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
