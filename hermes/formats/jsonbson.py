"""Extended JSON lines straight to BSON, as an import sends them to the warehouse.

An item of :func:`lines_to_bson` that is bytes is exactly
``bson.encode(extjson.loads_document(line), codec_options=ENCODE_OPTIONS)``. Building Python
objects costs several times more than the encoding itself, so when the C decoder
``hermes.formats._jsonbson`` is built (:data:`AVAILABLE`) it writes the BSON from the JSON bytes
directly. It declines (None) the lines it cannot reproduce exactly: malformed JSON, a top-level
object without ``_id`` as its first key, ``$`` keys other than the common type wrappers
(``$numberDecimal``, DBRefs, ``$uuid``, legacy forms...), repeated keys, keys holding NUL, lone
surrogates, integers beyond 64 bits, deep nesting. The caller runs the Python expression for
those, which builds the document or raises the error it would have met anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions

from hermes.storage.database import CODEC_OPTIONS

try:
    from hermes.formats import _jsonbson
except ImportError:  # built without a compiler: the Python path does everything
    _jsonbson = None

__all__ = [
    "AVAILABLE",
    "CODEC_OPTIONS",
    "ENCODE_OPTIONS",
    "NotBson",
    "encode_document",
    "lines_to_bson",
]

#: Whether the C decoder is built; without it every item of :func:`lines_to_bson` is None.
AVAILABLE: bool = _jsonbson is not None

#: The options the BSON of an item is encoded with (the Python path's ``bson.encode``).
ENCODE_OPTIONS = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)


def lines_to_bson(lines: Sequence[bytes]) -> list[bytes | None]:
    """Each line's document as BSON, or None where the Python path must decide (one C call)."""
    if _jsonbson is None:
        return [None] * len(lines)
    return _jsonbson.lines_to_bson(lines)


class NotBson(Exception):
    """A document BSON cannot hold as it is (a key with NUL, an integer over 64 bits, an
    ``_id`` after other fields, which BSON encoding moves to the front)."""


def encode_document(document: Mapping[str, Any]) -> bytes:
    """A document the Python reader built, as BSON (what :func:`lines_to_bson` gives for the
    lines it takes); :class:`NotBson` when BSON cannot hold it as it is."""
    if "_id" in document and next(iter(document)) != "_id":
        raise NotBson("_id is not the first field")
    try:
        return bson.encode(document, codec_options=ENCODE_OPTIONS)
    except (bson.errors.BSONError, OverflowError, TypeError, ValueError) as exc:
        raise NotBson(str(exc)) from None
