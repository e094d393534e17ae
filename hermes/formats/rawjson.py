"""Raw BSON documents straight to Extended JSON, as the warehouse hands them to an export.

The output is byte for byte ``extjson.dumps(bson.decode(raw, CODEC_OPTIONS), canonical)``, and so
are the errors. Decoding into Python objects costs more than the encoding itself, so when the C
encoder ``hermes.formats._bsonjson`` is built (:data:`AVAILABLE`), it writes the JSON from the
BSON bytes directly. It declines the documents it cannot reproduce exactly (decimal128, code with
scope, symbol, DBPointer, undefined, ``$`` keys, repeated keys, invalid UTF-8, malformed BSON,
deep nesting): those, and only those, go through the Python codec, which writes them or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bson

from hermes.formats import extjson
from hermes.storage.database import CODEC_OPTIONS

try:
    from hermes.formats import _bsonjson
except ImportError:  # built without a compiler: the Python codec does everything
    _bsonjson = None

__all__ = ["AVAILABLE", "CODEC_OPTIONS", "dumps_raw", "dumps_raw_lines", "nesting_exceeds"]

#: Whether the C encoder is built; without it the functions below are the Python expression.
AVAILABLE: bool = _bsonjson is not None

#: Documents as a list of BSON documents, or as one buffer of documents back to back.
RawDocuments = Sequence[bytes] | bytes | bytearray | memoryview


def dumps_raw(raw: bytes, canonical: bool = False) -> bytes:
    """One BSON document as compact Extended JSON (no newline)."""
    if _bsonjson is not None:
        out = _bsonjson.encode(raw, canonical)
        if out is not None:
            return out
    return extjson.dumps(bson.decode(raw, CODEC_OPTIONS), canonical)


def dumps_raw_lines(raws: RawDocuments, canonical: bool = False) -> bytes:
    """BSON documents as Extended JSON lines, each followed by ``b"\\n"``.

    ``raws`` is a list of documents (each must span its bytes exactly, as for ``bson.decode``) or
    one buffer of documents back to back (as ``bson.decode_all`` reads it). Every document is
    decoded before any is encoded, so a malformed document is reported first, as by the Python
    path.
    """
    if _bsonjson is None:
        return _python_lines(_decode(raws, 0, len(raws)), canonical)
    out, declined = _bsonjson.encode_lines(raws, canonical)
    if not declined:
        return out
    return _splice(out, raws, declined, canonical)


def nesting_exceeds(raw: bytes, limit: int) -> bool | None:
    """Whether a BSON document nests more than ``limit`` levels (itself level 1, each embedded
    document or array one more), read off the bytes; None when that takes decoding (no C
    encoder, or bytes that are not well-formed BSON)."""
    if _bsonjson is None:
        return None
    return _bsonjson.nesting_exceeds(raw, limit)


def _decode(raws: RawDocuments, start: int, end: int) -> list[dict[str, Any]]:
    """Documents ``start:end`` of a list, or bytes ``start:end`` of back-to-back documents."""
    if isinstance(raws, list | tuple):
        return [bson.decode(raw, CODEC_OPTIONS) for raw in raws[start:end]]
    return bson.decode_all(memoryview(raws)[start:end], CODEC_OPTIONS)


def _python_lines(documents: list[dict[str, Any]], canonical: bool) -> bytes:
    dumps = extjson.dumps
    return b"".join([dumps(document, canonical) + b"\n" for document in documents])


def _splice(
    out: bytes, raws: RawDocuments, declined: list[tuple[int, int, int]], canonical: bool
) -> bytes:
    """Insert the Python codec's lines for the declined spans at the offsets the C encoder left.

    All declined spans are decoded first: the documents the C encoder wrote are valid BSON, so
    the first decoding error (if any) is the one the Python path would meet first.
    """
    decoded = [_decode(raws, start, end) for _, start, end in declined]
    view = memoryview(out)
    parts: list[bytes | memoryview] = []
    previous = 0
    for (offset, _, _), documents in zip(declined, decoded, strict=True):
        parts.append(view[previous:offset])
        parts.append(_python_lines(documents, canonical))
        previous = offset
    parts.append(view[previous:])
    return b"".join(parts)
