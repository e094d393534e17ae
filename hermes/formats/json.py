"""JSON: a top-level array of Extended JSON documents, streamed in both directions.

Writing produces ``[``, one element per line (or indented elements with ``indent``) and ``]``,
without ever holding the whole list. Reading accepts an array of any size, a single top-level
object, or objects one after another (what ``mongoexport`` writes without ``--jsonArray``), with a
UTF-8 BOM and any layout, and holds no more than a chunk of text plus one element.

The reader decodes the file chunk by chunk and lets the standard library's C scanner
(``JSONDecoder.scan_once``) parse one element at a time: it returns the value *and* where it
ended, so elements are found and parsed in a single C pass whatever the layout (measured as fast
as ``ijson``'s yajl2_c backend on one-line, one-per-line and indented arrays; ijson cannot say
where an element starts). It also accepts the ``NaN``/``Infinity`` that Python's ``json.dump``
writes. A parse error near the end of the text read so far may only mean that the element goes
on in the next chunk: the reader reads on and tries again; only an error that stays put is one.

Each element's location is ``"item 57 (line 1)"``: its number in the file (from 1) and the line
it starts on, so the elements of a one-line array (``json.dump``, ``mongoexport --jsonArray``) are
told apart. A bad element that is still well-formed JSON (a bad ``$oid``, a number where a document
belongs, invalid UTF-8 inside a string) is reported through ``on_error`` with its location and
reading goes on.
A syntax error or a truncated file breaks the structure itself: no later position can be trusted,
so it raises a :class:`FormatError` with line and column, after the elements before it were read.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from hermes.errors import FormatError
from hermes.formats import extjson
from hermes.formats.base import (
    DEFAULT_BATCH_SIZE,
    EXTENSIONS,
    Batch,
    ErrorHandler,
    RecordError,
    batch_records,
    reject,
)
from hermes.formats.jsonl import _is_canonical, bson_lines_encoder, describe_json_error

_CHUNK = 1 << 20
#: No element may grow past this many characters (a 16 MB BSON document needs far less).
_MAX_ELEMENT = 128 << 20
#: A parse error this close to the end of the text read so far may be the chunk boundary.
_BOUNDARY_SLACK = 32
_SPACE = " \t\r\n"
_SPACE_BYTES = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_NOT_SPACE = re.compile(r"[^ \t\r\n]")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of invalid UTF-8
_SCAN = json.JSONDecoder().scan_once


def _complete_utf8(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            break
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


def _preview(text: str, limit: int = 200) -> str:
    """The start of an element's text, printable (invalid UTF-8 shown as U+FFFD)."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


#: One top-level element: (location, value, reason, raw); ``reason`` is None when it was read.
Element = tuple[str, Any, str | None, str | None]


def _document(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise extjson.ExtJsonError(f"expected a JSON object, got {type(value).__name__}")
    return extjson.from_extended(value)


def _any_value(value: Any) -> Any:
    """Any JSON value; an object is a document (a top-level ``$ref``/``$id`` stays a dict)."""
    return extjson.from_extended(value)


class _Scanner:
    """The top-level elements of a JSON file, each converted with ``convert``."""

    def __init__(self, stream: IO[bytes], path: str, convert: Callable[[Any], Any]) -> None:
        self.stream = stream
        self.path = path
        self.convert = convert
        self.text = ""
        self.pos = 0
        self.pending = b""  # the start of a UTF-8 sequence the next chunk completes
        self.eof = False
        self.invalid_utf8 = False
        self.line = 1  # the line number at text[counted]
        self.counted = 0
        self.carry = 0  # characters of the current line already dropped from ``text``
        self.items = 0  # top-level elements met so far
        #: True for a top-level array; False for top-level objects (one, or one after another).
        self.array = True

    # -- the text -----------------------------------------------------------------------------

    def _line_at(self, index: int) -> int:
        self.line += self.text.count("\n", self.counted, index)
        self.counted = index
        return self.line

    def _column_at(self, index: int) -> int:
        start = self.text.rfind("\n", 0, index) + 1
        return (self.carry if start == 0 else 0) + index - start + 1

    def _fill(self) -> bool:
        """Drop the text before ``pos`` and decode at least as much as is pending (or a chunk)."""
        if self.eof:
            return False
        self._line_at(self.pos)
        newline = self.text.rfind("\n", 0, self.pos)
        self.carry = self.pos - newline - 1 if newline >= 0 else self.carry + self.pos
        kept = self.text[self.pos :]
        data = self.pending + self._read(max(_CHUNK, len(kept)))
        cut = len(data) if self.eof else _complete_utf8(data)
        self.pending = data[cut:]
        try:
            decoded = data[:cut].decode("utf-8")
        except UnicodeDecodeError:
            decoded = data[:cut].decode("utf-8", "surrogateescape")
            self.invalid_utf8 = True
        self.text = kept + decoded
        self.pos = self.counted = 0
        return bool(decoded)

    def _read(self, size: int) -> bytes:
        parts, got = [], 0
        while got < size:
            data = self.stream.read(size - got)
            if not data:
                self.eof = True
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _skip_space(self) -> bool:
        """Move ``pos`` to the next non-whitespace character; False at the end of the file."""
        if self.pos < len(self.text) and self.text[self.pos] not in _SPACE:
            return True
        while True:
            found = _NOT_SPACE.search(self.text, self.pos)
            if found:
                self.pos = found.start()
                return True
            self.pos = len(self.text)
            if not self._fill():
                return False

    def _fatal(self, message: str, index: int | None = None) -> FormatError:
        index = self.pos if index is None else index
        where = f"line {self._line_at(index)}, column {self._column_at(index)}"
        return FormatError(self.path, message, where)

    def _unexpected(self, expected: str) -> FormatError:
        char = self.text[self.pos]
        if self.invalid_utf8 and _ESCAPED_BYTES.match(char):
            return self._fatal(f"invalid UTF-8 where {expected} was expected")
        return self._fatal(f"expected {expected}, found {char!r}")

    # -- the structure ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Element]:
        self._fill()
        if self.text.startswith("\ufeff"):
            self.text = self.text[1:]  # a BOM is not a character of the first line
        if not self._skip_space():
            raise self._fatal("the file is empty: expected a JSON array or object")
        first = self.text[self.pos]
        if first == "[":
            self.pos += 1
            return self._array()
        if first == "{":
            self.array = False
            return self._objects()
        raise self._unexpected("a JSON array '[' or object '{'")

    def _array(self) -> Iterator[Element]:
        if not self._skip_space():
            raise self._fatal("unexpected end of file: the array is not closed (truncated file?)")
        if self.text[self.pos] == "]":
            self.pos += 1
            self._expect_end()
            return
        while True:
            yield self._element()  # complete in itself, whatever follows it
            text, pos = self.text, self.pos
            if pos < len(text) and text[pos] == ",":  # the usual case, checked first
                char = ","
            else:
                if not self._skip_space():
                    raise self._fatal(
                        "unexpected end of file: the array is not closed (truncated file?)"
                    )
                char = self.text[self.pos]
                if char != "," and char != "]":
                    raise self._unexpected("',' or ']' after an element")
            self.pos += 1
            if char == "]":
                self._expect_end()
                return
            if not self._skip_space():
                raise self._fatal(
                    "unexpected end of file: the array is not closed (truncated file?)"
                )
            if self.text[self.pos] == "]":
                raise self._fatal("expected a value after ',' (trailing comma?)")

    def _objects(self) -> Iterator[Element]:
        while True:
            char = self.text[self.pos]
            if char != "{":
                raise self._unexpected("'{' to start another document")
            element = self._element()
            more = self._skip_space()
            yield element
            if not more:
                return

    def _expect_end(self) -> None:
        if self._skip_space():
            raise self._fatal("unexpected content after the end of the JSON array")

    # -- one element --------------------------------------------------------------------------

    def _element(self) -> Element:
        """Parse the value at ``pos`` and move past it (the common case, kept short)."""
        text, start = self.text, self.pos
        try:
            value, end = _SCAN(text, start)
        except (StopIteration, ValueError, RecursionError):
            return self._element_across_chunks()
        if end == len(text) and not self.eof:  # a number may go on in the next chunk
            return self._element_across_chunks()
        newline = text.find("\n", self.counted, start)  # find is faster than count
        if newline >= 0:
            self.line += 1 + text.count("\n", newline + 1, start)
        self.counted = start
        self.pos = end
        self.items += 1
        location = f"item {self.items} (line {self.line})"
        if type(value) is dict and not self.invalid_utf8 and text.find("$", start, end) < 0:
            return location, value, None, None  # plain JSON: nothing to convert
        return self._converted(location, start, end, value)

    def _element_across_chunks(self) -> Element:
        """Parse the value at ``pos``, reading on while the error may be the chunk's end."""
        while True:
            start = self.pos
            try:
                value, end = _SCAN(self.text, start)
            except StopIteration as stop:
                error_at, message = stop.value, "Expecting value"
            except json.JSONDecodeError as exc:
                error_at, message = exc.pos, exc.msg
            except RecursionError:
                raise self._fatal("nesting too deep", start) from None
            except ValueError as exc:  # e.g. an integer with more digits than Python allows
                raise self._fatal(f"malformed JSON: {exc}", start) from None
            else:
                if end < len(self.text) or self.eof:
                    self.items += 1
                    location = f"item {self.items} (line {self._line_at(start)})"
                    self.pos = end
                    return self._converted(location, start, end, value)
                error_at, message = end, "a number may go on in the next chunk"
            if self.eof or not self._may_continue(error_at, message):
                raise self._syntax_error(start, error_at, message)
            if len(self.text) - start > _MAX_ELEMENT:
                raise self._fatal(
                    f"an element larger than {_MAX_ELEMENT >> 20} Mi characters", start
                )
            self._fill()

    def _may_continue(self, error_at: int, message: str) -> bool:
        return message.startswith("Unterminated string") or (
            error_at >= len(self.text) - _BOUNDARY_SLACK
        )

    def _syntax_error(self, start: int, error_at: int, message: str) -> FormatError:
        if message.startswith("Unterminated string") or error_at >= len(self.text):
            line = self._line_at(start)
            message = f"the element that starts on line {line} is not complete"
            return self._fatal(
                f"unexpected end of file: {message} (truncated file?)", len(self.text)
            )
        if self.invalid_utf8 and _ESCAPED_BYTES.match(self.text, error_at):
            return self._fatal("invalid UTF-8", error_at)
        return self._fatal(f"malformed JSON: {message}", error_at)

    def _converted(self, location: str, start: int, end: int, value: Any) -> Element:
        """The element decoded from Extended JSON, or why it cannot be."""
        if self.invalid_utf8 and _ESCAPED_BYTES.search(self.text, start, end):
            return location, None, "invalid UTF-8", _preview(self.text[start:end])
        try:
            return location, self.convert(value), None, None
        except (ValueError, RecursionError) as exc:
            return location, None, describe_json_error(exc), _preview(self.text[start:end])


def iter_elements(
    stream: IO[bytes], path: str, convert: Callable[[Any], Any] = _document
) -> Iterator[Element]:
    """Every top-level element of a JSON file (array items, or the top-level objects)."""
    return iter(_Scanner(stream, path, convert))


def load(stream: IO[bytes], path: str, **_: Any) -> Any:
    """What a JSON file holds: a list for an array (or several top-level objects), a dict for one
    object. Array elements may be any JSON value; objects are decoded from Extended JSON as
    documents. Raises :class:`FormatError` for the first element that cannot be read."""
    scanner = _Scanner(stream, path, _any_value)
    values = []
    for location, value, reason, _raw in scanner:
        if reason is not None:
            raise FormatError(path, reason, location)
        values.append(value)
    if not scanner.array and len(values) == 1:
        return values[0]
    return values


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------

_INDENT_UNITS = re.compile(rb"\n((?:  )*)")


def encode_value(
    value: Any, canonical: bool = False, indent: int | str | None = None, level: int = 0
) -> bytes:
    """One value as Extended JSON; a mapping is a document (top-level ``$`` keys allowed).

    With ``indent`` the text is laid out like ``json.dumps(..., indent=indent)``, shifted right
    by ``level`` indentation levels (1 for an element inside the array).
    """
    if isinstance(value, Mapping):
        text = extjson.dumps(value, canonical)
    else:
        text = orjson.dumps(extjson.to_extended(value, canonical))
    if indent is None:
        return text
    # orjson only indents by two spaces: re-indent its output (strings hold no raw newline).
    pretty = orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2)
    unit = indent.encode() if isinstance(indent, str) else b" " * max(indent, 0)
    if unit == b"  " and level == 0:
        return pretty
    return unit * level + _INDENT_UNITS.sub(
        lambda found: b"\n" + unit * (len(found.group(1)) // 2 + level), pretty
    )


class JsonFormat:
    name = "json"
    extensions = EXTENSIONS["json"]
    #: ``read_batches(..., raw_bson=True)`` reads arrays laid out one element per line (as
    #: Hermes writes them) straight to BSON (see :func:`_raw_records`).
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
        """``raw_bson``: hand over the documents the C decoder reads as
        :class:`~bson.raw_bson.RawBSONDocument` (see :func:`_raw_records`); the others, and
        every error, as without it."""
        if raw_bson:
            records = _raw_records(stream, path, on_error, batch_size)
            return batch_records(records, batch_size)
        return batch_records(self._records(stream, path, on_error), batch_size)

    @staticmethod
    def _records(
        stream: IO[bytes], path: str, on_error: ErrorHandler | None, skip: int = 0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The documents, each bad element rejected; the first ``skip`` elements left out."""
        elements = itertools.islice(iter_elements(stream, path), skip, None)
        for location, document, reason, raw in elements:
            if reason is not None:
                reject(RecordError(path, location, reason, raw), on_error)
                continue
            yield location, document

    def load(self, stream: IO[bytes], path: str, **options: Any) -> Any:
        """The whole file as Python data (see :func:`load`)."""
        return load(stream, path, **options)

    def write_stream(
        self,
        stream: IO[bytes],
        documents: Iterable[Any] | Mapping[str, Any],
        *,
        json_format: str = "relaxed",
        indent: int | str | None = None,
        **_: Any,
    ) -> int:
        """Write a JSON array of the documents, one per line or indented; a single mapping is
        written as a top-level object (which the reader takes as one document)."""
        canonical = _is_canonical(json_format)
        write = stream.write
        if isinstance(documents, Mapping):
            write(encode_value(documents, canonical, indent))
            write(b"\n")
            return 1
        encode_chunk = bson_lines_encoder(documents) if indent is None else None
        if encode_chunk is not None:
            return _write_bson_array(write, documents.chunks, encode_chunk, canonical)  # type: ignore[attr-defined]
        encode = functools.partial(encode_value, canonical=canonical, indent=indent, level=1)
        separator = b"[\n"
        count = 0
        for document in documents:
            write(separator)
            write(encode(document))
            separator = b",\n"
            count += 1
        write(b"\n]\n" if count else b"[]\n")
        return count


def _write_bson_array(
    write: Callable[[bytes], Any],
    chunks: Iterable[list[bytes]],
    encode_chunk: Callable[[list[bytes], bool], bytes],
    canonical: bool,
) -> int:
    """The compact array of documents still in BSON, as :meth:`JsonFormat.write_stream` lays
    it out: compact Extended JSON holds no raw newline, so each line break of the encoded chunk
    is exactly one document boundary."""
    separator = b"[\n"
    count = 0
    for chunk in chunks:
        if not chunk:
            continue
        write(separator)
        write(encode_chunk(chunk, canonical)[:-1].replace(b"\n", b",\n"))
        separator = b",\n"
        count += len(chunk)
    write(b"\n]\n" if count else b"[]\n")
    return count


def _raw_records(
    stream: IO[bytes], path: str, on_error: ErrorHandler | None, group: int
) -> Iterator[tuple[str, Any]]:
    """The records of a JSON file, as raw BSON while it is laid out as Hermes writes arrays.

    ``[`` on its own line, then one element per line (with its comma), then ``]``: then each
    line is one document, which the C decoder (:mod:`hermes.formats.jsonbson`) writes as BSON
    straight from the text, ``group`` lines per call, exactly as the scanner's document would
    encode; a line it declines is parsed in Python, as a JSON Lines line would be. At the first
    line that is not so (another layout, a trailing comma, anything malformed or not a
    document), the file is read again from its start by the scanner, which skips the elements
    already handed over and reads the rest, errors included.
    A stream that cannot be read again (a decompressor) goes to the scanner at once.
    """
    from hermes.formats import jsonbson

    taken: int | None = 0
    if jsonbson.AVAILABLE and _seekable(stream):
        start = stream.tell()
        taken = yield from _line_elements(stream, group)
        if taken is None:
            return
        stream.seek(start)
    yield from JsonFormat._records(stream, path, on_error, skip=taken)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False


def _line_elements(stream: IO[bytes], group: int) -> Generator[tuple[str, Any], None, int | None]:
    """The elements of an array laid out one per line, as raw BSON, while the layout holds and
    the decoder takes them; returns None when it read the whole file so, else how many
    elements it handed over."""
    from bson.raw_bson import RawBSONDocument

    from hermes.formats import jsonbson
    from hermes.formats.jsonl import content_lines
    from hermes.storage.streams import raw_codec

    options = raw_codec(jsonbson.CODEC_OPTIONS)
    items = 0

    def decoded(pending: list[tuple[int, bytes]]) -> Generator[tuple[str, Any], None, bool]:
        """The pending element lines as records (a line the decoder declines parsed in Python),
        up to the first that cannot be read so."""
        nonlocal items
        encoded = jsonbson.lines_to_bson([element for _, element in pending])
        for (number, element), raw in zip(pending, encoded, strict=True):
            if raw is not None:
                document: Any = RawBSONDocument(raw, options)
            else:
                try:
                    document = extjson.loads_document(element)
                except (ValueError, RecursionError):
                    return False  # the scanner says what is wrong
            items += 1
            yield f"item {items} (line {number})", document
        return True

    state: object = _BEFORE
    pending: list[tuple[int, bytes]] = []
    for number, line in content_lines(stream):
        state, element = _next_state(state, line)
        if state is _STOP:
            break
        if element is not None:
            pending.append((number, element))
            if len(pending) >= group:
                if not (yield from decoded(pending)):
                    return items
                pending = []
    complete = yield from decoded(pending)
    return None if complete and state is _CLOSED else items


#: Where a file laid out as Hermes writes arrays is, line by line (see :func:`_next_state`).
_BEFORE, _OPEN, _AFTER_COMMA, _AFTER_ELEMENT, _CLOSED, _STOP = (object() for _ in range(6))


def _next_state(state: object, line: bytes | None) -> tuple[object, bytes | None]:
    """The state after a non-blank line, and the element the line holds (without its comma)."""
    text = None if line is None else line.strip(_SPACE_BYTES)
    if text is None or state is _CLOSED:
        return _STOP, None
    if state is _BEFORE:
        return (_OPEN, None) if text == b"[" else (_STOP, None)
    if text == b"]":
        return (_STOP, None) if state is _AFTER_COMMA else (_CLOSED, None)
    if state is _AFTER_ELEMENT or not text.startswith(b"{"):
        return _STOP, None
    if text.endswith(b","):
        return _AFTER_COMMA, text[:-1].rstrip(_SPACE_BYTES)
    return _AFTER_ELEMENT, text


def append_element(source: IO[bytes], sink: IO[bytes], element: bytes, path: str) -> None:
    """Copy the JSON array in ``source`` to ``sink`` with ``element`` (encoded) added last.

    Streams in chunks, holding back only the closing ``]`` and the whitespace around it. An
    empty source becomes a one-element array; anything but an array is a :class:`FormatError`.
    """
    held = b""  # the last non-space byte seen and the whitespace around it, not copied yet
    last = b""  # the last non-space byte copied: b"[" while the array is empty
    while chunk := source.read(_CHUNK):
        data = held + chunk
        body = data.rstrip(_SPACE_BYTES)
        if not body:
            held = data
            continue
        if not last and body.removeprefix(_BOM).lstrip(_SPACE_BYTES)[:1] != b"[":
            raise FormatError(
                path, "can only append to a JSON array (the file does not start with '[')"
            )
        before = body[:-1].rstrip(_SPACE_BYTES)
        sink.write(data[: len(before)])
        last = before[-1:] or last
        held = data[len(before) :]
    if not last and not held.strip(_SPACE_BYTES):
        sink.write(b"[\n" + element + b"\n]\n")
        return
    if held.strip(_SPACE_BYTES) != b"]":
        raise FormatError(path, "can only append to a JSON array (the file does not end with ']')")
    sink.write((b"\n" if last == b"[" else b",\n") + element + b"\n]\n")
