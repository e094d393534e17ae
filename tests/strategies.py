"""Hypothesis strategies for documents of the BSON value model (DESIGN.md), as the warehouse
holds them: every generated document has been through BSON encode/decode with Hermes' codec
options, so it is exactly what pymongo would hand an exporter.

Compare round trips with :func:`same_bson` (raw bytes), which also treats NaN as equal to itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import bson
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from hypothesis import strategies as st

from hermes.formats.extjson import WRAPPER_KEYS
from hermes.storage.database import CODEC_OPTIONS

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_KEY_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8
)
KEYS = st.one_of(
    _KEY_TEXT,
    st.sampled_from(["a.b", "$x", "", "_id", "é", "日本", "a b", "$ref", "$oid", "content.title"]),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DATES = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999).map(
    lambda ms: _EPOCH + timedelta(milliseconds=ms)
)

SCALARS = st.one_of(
    _TEXT,
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=False, allow_infinity=True),  # NaN: the one quiet NaN below
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324]),
    st.booleans(),
    st.none(),
    DATES,
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.decimals(allow_nan=False, min_value=-(10**20), max_value=10**20, places=6).map(
        lambda d: Decimal128(str(d))
    )
    | st.sampled_from([Decimal128("NaN"), Decimal128("-Infinity"), Decimal128("1.10")]),
    st.binary(max_size=20),
    st.tuples(st.binary(max_size=20), st.sampled_from([1, 2, 3, 5, 6, 7, 8, 0x80])).map(
        lambda t: Binary(*t)
    ),
    st.binary(min_size=16, max_size=16).map(lambda b: Binary(b, 4)),
    st.tuples(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
        st.sets(st.sampled_from("imsux")).map(lambda s: "".join(sorted(s))),
    ).map(lambda t: Regex(*t)),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)).map(lambda t: Timestamp(*t)),
    _TEXT.map(Code),
    st.just(MinKey()),
    st.just(MaxKey()),
)


def _plain_dict(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(KEYS, children, max_size=5).filter(
        lambda d: frozenset(d) not in WRAPPER_KEYS and not ("$ref" in d and "$id" in d)
    )


VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        _plain_dict(children),
        st.tuples(_TEXT, _plain_dict(SCALARS)).map(lambda t: Code(t[0], t[1])),
        st.tuples(_KEY_TEXT.filter(bool), st.binary(min_size=12, max_size=12).map(ObjectId)).map(
            lambda t: DBRef(t[0], t[1])
        ),
    ),
    max_leaves=20,
)


def as_stored(document: dict[str, Any]) -> dict[str, Any]:
    """The document as pymongo decodes it from the warehouse."""
    return bson.decode(bson.encode(document), codec_options=CODEC_OPTIONS)


DOCUMENTS = _plain_dict(VALUES).map(as_stored)
#: Documents with an ``_id``, as every stored document has.
STORED_DOCUMENTS = st.tuples(
    st.binary(min_size=12, max_size=12).map(ObjectId), _plain_dict(VALUES)
).map(lambda t: as_stored({"_id": t[0], **{k: v for k, v in t[1].items() if k != "_id"}}))


def same_bson(left: Any, right: Any) -> bool:
    """Byte-identical BSON (the fidelity bar): key order, types and NaN payload included."""
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            same_bson(a, b) for a, b in zip(left, right, strict=True)
        )
    return bson.encode(left) == bson.encode(right)


# -- documents of one collection: shared keys, each field of one type or of several ------------

_FIELD_KINDS = [
    st.text(max_size=8),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(),
    st.booleans(),
    DATES,
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.binary(max_size=6),
    st.binary(min_size=16, max_size=16).map(lambda data: Binary(data, 4)),
    st.binary(max_size=6).map(lambda data: Binary(data, 0x80)),
    SCALARS,  # anything: mixed
]


@st.composite
def _field_values(draw: Any, depth: int = 0) -> st.SearchStrategy:
    """The values one field takes across a collection: mostly one kind, sometimes null."""
    kind = draw(st.integers(0, len(_FIELD_KINDS) + (1 if depth < 2 else -1)))
    if kind < len(_FIELD_KINDS):
        values = _FIELD_KINDS[kind]
    elif kind == len(_FIELD_KINDS):
        values = st.lists(draw(_field_values(depth + 1)), max_size=4)
    else:
        keys = draw(st.lists(st.sampled_from(["x", "y", "é", "a.b"]), unique=True, max_size=3))
        values = st.fixed_dictionaries({key: draw(_field_values(depth + 1)) for key in keys})
    return st.one_of(values, st.none()) if draw(st.booleans()) else values


@st.composite
def _collections(draw: Any) -> list[dict[str, Any]]:
    fields = {name: draw(_field_values()) for name in ["name", "n", "at", "inner", "tags"]}
    optional = draw(st.booleans())
    documents = []
    for number in range(draw(st.integers(0, 12))):
        document: dict[str, Any] = {"_id": number}
        for name, values in fields.items():
            if not optional or draw(st.booleans()):
                document[name] = draw(values)
        documents.append(document)
    return documents


#: Lists of documents as one collection holds them: the same fields (some optional), each of
#: one kind of value (sometimes null) or of any kind, sub-documents and lists among them.
COLLECTIONS = _collections()
