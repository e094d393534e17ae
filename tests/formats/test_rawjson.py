"""Raw BSON straight to Extended JSON: ``rawjson`` writes exactly what decoding and
``extjson.dumps`` write, byte for byte and error for error, whether the C encoder writes a
document itself or hands it to the Python codec."""

from __future__ import annotations

import math
import os
import random
import struct
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import bson
import orjson
import pytest
from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.errors import InvalidBSON
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.errors import UnsupportedValueError
from hermes.formats import extjson, rawjson
from hermes.storage.database import CODEC_OPTIONS
from tests.strategies import DATES, STORED_DOCUMENTS

needs_c = pytest.mark.skipif(
    not rawjson.AVAILABLE,
    reason="hermes.formats._bsonjson is not built (installed without a C compiler): "
    "rawjson runs the Python codec only, so there is no C output to compare",
)
MODES = pytest.mark.parametrize("canonical", [False, True], ids=["relaxed", "canonical"])


def python_path(raw: bytes, canonical: bool) -> bytes:
    """The reference: what an export wrote before the C encoder existed."""
    return extjson.dumps(bson.decode(raw, CODEC_OPTIONS), canonical)


def python_lines(raws: list[bytes], canonical: bool) -> bytes:
    documents = [bson.decode(raw, CODEC_OPTIONS) for raw in raws]
    return b"".join(extjson.dumps(document, canonical) + b"\n" for document in documents)


def python_concatenated(data: bytes, canonical: bool) -> bytes:
    documents = bson.decode_all(data, CODEC_OPTIONS)
    return b"".join(extjson.dumps(document, canonical) + b"\n" for document in documents)


def outcome(call: Callable[..., bytes], *args: Any) -> tuple[Any, ...]:
    """The bytes a call returns, or the type and message of what it raises."""
    try:
        return ("ok", call(*args))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def c_encode(raw: bytes, canonical: bool) -> bytes | None:
    """The C encoder alone: None means it declined the document."""
    from hermes.formats import _bsonjson

    return _bsonjson.encode(raw, canonical)


def assert_same(raw: bytes, canonical: bool) -> None:
    assert outcome(rawjson.dumps_raw, raw, canonical) == outcome(python_path, raw, canonical)


def assert_written_by_c(raw: bytes, canonical: bool) -> bytes:
    """The C encoder writes this document itself, exactly as the Python path."""
    out = c_encode(raw, canonical)
    assert out is not None, "the C encoder declined a document it should write"
    assert out == python_path(raw, canonical)
    return out


# -- raw BSON built by hand, for what bson.encode never writes ---------------------------------


def element(kind: int, key: bytes, payload: bytes = b"") -> bytes:
    return bytes([kind]) + key + b"\x00" + payload


def document(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def string(text: bytes) -> bytes:
    return struct.pack("<i", len(text) + 1) + text + b"\x00"


# -- documents made only of what the C encoder writes itself -----------------------------------

_C_KEYS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
_C_KEYS = _C_KEYS.filter(lambda key: not key.startswith("$"))
_C_SCALARS = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(),
    st.booleans(),
    st.none(),
    DATES,
    st.integers(-(2**63), 2**63 - 1).map(DatetimeMS),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.tuples(st.binary(max_size=20), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80])).map(
        lambda t: Binary(*t)
    ),
    st.tuples(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
        st.text("ilmsuxqa", max_size=6),
    ).map(lambda t: Regex(*t)),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)).map(lambda t: Timestamp(*t)),
    st.text(max_size=10).map(Code),
    st.just(MinKey()),
    st.just(MaxKey()),
)
C_DOCUMENTS = st.dictionaries(
    _C_KEYS,
    st.recursive(
        _C_SCALARS,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_C_KEYS, children, max_size=4)
        ),
        max_leaves=15,
    ),
    max_size=6,
)


# -- the promise: the Python expression, byte for byte ------------------------------------------


@settings(max_examples=150, deadline=None)
@given(STORED_DOCUMENTS)
def test_dumps_raw_is_the_python_expression_for_every_stored_document(doc):
    raw = bson.encode(doc)
    for canonical in (False, True):
        assert_same(raw, canonical)


@needs_c
@settings(max_examples=150, deadline=None)
@given(C_DOCUMENTS)
def test_the_c_encoder_writes_ordinary_documents_itself(doc):
    raw = bson.encode(doc)
    for canonical in (False, True):
        assert_written_by_c(raw, canonical)


@settings(max_examples=50, deadline=None)
@given(st.lists(STORED_DOCUMENTS, max_size=6))
def test_dumps_raw_lines_is_one_line_per_document_in_order(docs):
    raws = [bson.encode(doc) for doc in docs]
    for canonical in (False, True):
        expected = python_lines(raws, canonical)
        assert rawjson.dumps_raw_lines(raws, canonical) == expected
        assert rawjson.dumps_raw_lines(tuple(raws), canonical) == expected
        assert rawjson.dumps_raw_lines(b"".join(raws), canonical) == expected


def test_the_default_mode_is_relaxed():
    raw = bson.encode({"n": 5})
    assert rawjson.dumps_raw(raw) == b'{"n":5}'
    assert rawjson.dumps_raw_lines([raw]) == b'{"n":5}\n'


# -- declined documents go to Python, in place -------------------------------------------------

ACCEPTED = [bson.encode({"_id": i, "text": f"line {i}"}) for i in range(4)]
DECLINED = [
    bson.encode({"price": Decimal128("1.10")}),
    bson.encode({"code": Code("f()", {"x": 1})}),
    bson.encode({"$set": 1}),
    bson.encode({"ref": {"$ref": "users", "$id": 1}}),
    document(element(0x10, b"a", b"\x01\x00\x00\x00"), element(0x10, b"a", b"\x02\x00\x00\x00")),
]


@needs_c
@pytest.mark.parametrize("raw", DECLINED, ids=["decimal", "scope", "dollar", "dbref", "repeat"])
def test_the_c_encoder_declines_what_it_cannot_reproduce(raw):
    assert c_encode(raw, False) is None
    assert c_encode(raw, True) is None
    for canonical in (False, True):
        assert rawjson.dumps_raw(raw, canonical) == python_path(raw, canonical)


@needs_c
@MODES
def test_a_chunk_mixing_declined_and_written_documents_keeps_their_order(canonical):
    from hermes.formats import _bsonjson

    raws = [ACCEPTED[0], DECLINED[0], DECLINED[1], ACCEPTED[1], DECLINED[2], ACCEPTED[2]]
    out, declined = _bsonjson.encode_lines(raws, canonical)
    assert [(start, end) for _, start, end in declined] == [(1, 2), (2, 3), (4, 5)]
    expected = python_lines(raws, canonical)
    assert rawjson.dumps_raw_lines(raws, canonical) == expected
    assert rawjson.dumps_raw_lines(b"".join(raws), canonical) == expected


@MODES
def test_errors_are_those_of_the_python_expression(canonical):
    wrapper_shaped = bson.encode({"a": {"$oid": "not an ObjectId"}})
    bad_utf8 = document(element(0x02, b"t", string(b"caf\xe9")))
    for raw in (wrapper_shaped, bad_utf8):
        got = outcome(rawjson.dumps_raw, raw, canonical)
        assert got[0] == "raised"
        assert got == outcome(python_path, raw, canonical)
    assert outcome(rawjson.dumps_raw, wrapper_shaped, canonical)[1] is UnsupportedValueError
    assert issubclass(outcome(rawjson.dumps_raw, bad_utf8, canonical)[1], InvalidBSON)


@MODES
def test_a_chunk_reports_a_malformed_document_before_an_unwritable_one(canonical):
    """Every document is decoded before any is encoded, as by the Python path."""
    unwritable = bson.encode({"a": {"$oid": "x"}})
    malformed = ACCEPTED[0][:-1] + b"\x01"
    raws = [ACCEPTED[1], unwritable, ACCEPTED[2], malformed]
    got = outcome(rawjson.dumps_raw_lines, raws, canonical)
    assert got[0] == "raised" and issubclass(got[1], InvalidBSON)
    assert got == outcome(python_lines, raws, canonical)
    got = outcome(rawjson.dumps_raw_lines, raws[:3], canonical)
    assert got[1] is UnsupportedValueError


@MODES
def test_without_the_extension_the_functions_are_the_python_expression(monkeypatch, canonical):
    monkeypatch.setattr(rawjson, "_bsonjson", None)
    raws = ACCEPTED + DECLINED
    assert rawjson.dumps_raw_lines(raws, canonical) == python_lines(raws, canonical)
    assert rawjson.dumps_raw_lines(b"".join(raws), canonical) == python_lines(raws, canonical)
    assert rawjson.dumps_raw(ACCEPTED[0], canonical) == python_path(ACCEPTED[0], canonical)
    bad = [ACCEPTED[0], b"\x05\x00\x00\x00"]
    assert outcome(rawjson.dumps_raw_lines, bad, canonical) == outcome(python_lines, bad, canonical)


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI has to prove the extension is built")
def test_ci_builds_the_extension():
    import hermes.formats._bsonjson  # noqa: F401

    assert rawjson.AVAILABLE


# -- floats: orjson's notation when relaxed, repr when canonical ---------------------------------


def float_doc(value: float) -> bytes:
    return bson.encode({"x": value})


def expected_float(value: float, canonical: bool) -> bytes:
    if canonical or not math.isfinite(value):
        text = extjson._double(value)
        return b'{"x":{"$numberDouble":"' + text.encode() + b'"}}'
    return b'{"x":' + orjson.dumps(value) + b"}"


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.floats())
def test_floats_are_written_as_orjson_and_repr_write_them(value):
    raw = float_doc(value)
    for canonical in (False, True):
        assert assert_written_by_c(raw, canonical) == expected_float(value, canonical)


FLOATS = [1.0, 1e16, 1e15, 1e-7, 1e-5, 1e-6, 1e-4, 123456789.0, 5e-324, -0.0, 0.0, 0.1, 1 / 3]
FLOATS += [1.7976931348623157e308, 2.2250738585072014e-308, 2.225073858507201e-308, 1e22, 1e23]
FLOATS += [9007199254740993.0, 0.30000000000000004, -1.5e-7, 123.456, 1e100, 4.35, 0.3]
FLOATS += [2.0**e for e in range(-1074, 1024, 7)] + [float(f"1e{e}") for e in range(-323, 309, 5)]
FLOATS += [math.nan, -math.nan, math.inf, -math.inf]


@needs_c
@MODES
def test_float_notation_at_the_edges(canonical):
    rng = random.Random(7)
    widened = [struct.unpack("f", struct.pack("f", rng.uniform(-1, 1)))[0] for _ in range(300)]
    bits = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(300)]
    for value in FLOATS + widened + bits + [math.nextafter(v, 0) for v in FLOATS]:
        raw = float_doc(value)
        assert assert_written_by_c(raw, canonical) == expected_float(value, canonical), value


@needs_c
@MODES
def test_many_floats_in_one_array(canonical):
    """The shape of an embedding: the encoder takes a fast path per float."""
    rng = random.Random(3)
    values = [round(rng.uniform(-1, 1), 6) for _ in range(384)] + [
        rng.gauss(0, 1) for _ in range(384)
    ]
    assert_written_by_c(bson.encode({"embedding": values}), canonical)


# -- strings, keys, and the other types at their edges -------------------------------------------

CONTROL = "".join(chr(i) for i in range(0x20))
TEXTS = [CONTROL, '"quoted" \\back\\ /slash/', "\x7f\u2028\u2029", "🚀𝄞\U0010ffff", "", "a\x00b"]
TEXTS += ["Zoë 数据 " * 40, "x" * 7, "é" * 9, "long " * 5000]


@needs_c
@MODES
@pytest.mark.parametrize("text", TEXTS, ids=lambda t: repr(t[:12]))
def test_strings_and_keys_are_escaped_as_orjson_escapes_them(text, canonical):
    key = text.replace("\x00", "") or "k"
    out = assert_written_by_c(bson.encode({key: text, "list": [text]}), canonical)
    assert out == orjson.dumps({key: text, "list": [text]})


@pytest.mark.parametrize(
    "raw_text", [b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ab\xe2\x82"]
)
def test_invalid_utf8_raises_as_bson_raises(raw_text):
    for raw in (
        document(element(0x02, b"v", string(raw_text))),
        document(element(0x02, b"k" + raw_text, string(b"v"))),
        document(element(0x0B, b"r", raw_text + b"\x00i\x00")),
        document(element(0x0D, b"c", string(raw_text))),
    ):
        got = outcome(rawjson.dumps_raw, raw, False)
        assert got[0] == "raised" and got == outcome(python_path, raw, False)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLIS = [-1, 0, 1, 253402300799999, 253402300800000, -62135596800000, -62135596800001]
MILLIS += [1704067200123, 951782400000, 2**63 - 1, -(2**63), -86400000 * 365 * 70]


@needs_c
@MODES
def test_dates_at_the_edges_of_iso_text(canonical):
    for millis in MILLIS:
        assert_written_by_c(document(element(0x09, b"d", struct.pack("<q", millis))), canonical)


@needs_c
@MODES
def test_integers_at_their_bounds(canonical):
    for number in (0, -1, 2**31 - 1, -(2**31)):
        assert_written_by_c(bson.encode({"i": number}), canonical)
    for number in (0, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, -(2**63)):
        assert_written_by_c(bson.encode({"l": Int64(number)}), canonical)


@needs_c
@MODES
def test_binary_of_every_subtype(canonical):
    for subtype in [*range(9), 0x80, 0xFF]:
        for data in (b"", b"\x00", b"ab", b"abc", bytes(range(16)), bytes(range(256))):
            assert_written_by_c(bson.encode({"b": Binary(data, subtype)}), canonical)


@MODES
def test_old_binary_subtype_2_inner_length_is_checked_as_bson_checks_it(canonical):
    for inner in (b"\x02\x00\x00\x00hi", b"\x03\x00\x00\x00hi", b"\x01"):
        raw = document(element(0x05, b"b", struct.pack("<i", len(inner)) + b"\x02" + inner))
        assert_same(raw, canonical)


@needs_c
@MODES
def test_regex_options_are_read_as_bson_reads_them(canonical):
    for options in (b"", b"xsmiul", b"ii", b"qz", b"m\xc3\xa9"):
        raw = document(element(0x0B, b"r", b'a/b"\\\x00' + options + b"\x00"))
        assert_written_by_c(raw, canonical)


@needs_c
@MODES
def test_other_types_and_empty_containers(canonical):
    doc = {
        "oid": ObjectId("5f1e2d3c4b5a697887960a1b"),
        "ts": Timestamp(2**32 - 1, 0),
        "code": Code("return 1"),
        "min": MinKey(),
        "max": MaxKey(),
        "none": None,
        "flags": [True, False],
        "empty": {},
        "nothing": [],
        "nested": [[], [{}], {"": {"": []}}],
    }
    assert_written_by_c(bson.encode(doc), canonical)
    assert_written_by_c(bson.encode({}), canonical)


@MODES
def test_deep_nesting(canonical):
    for depth in (1, 50, 99, 150, 300):
        doc: dict[str, Any] = {"leaf": 1.5}
        for level in range(depth):
            doc = {"d": doc} if level % 2 else {"l": [doc]}
        assert_same(bson.encode(doc), canonical)
    if rawjson.AVAILABLE:
        shallow: dict[str, Any] = {"leaf": 1}
        for _ in range(50):
            shallow = {"d": shallow}
        assert_written_by_c(bson.encode(shallow), canonical)


# -- malformed input raises, never crashes -------------------------------------------------------


def test_truncated_and_mislabelled_documents_raise_as_bson_raises():
    raw = bson.encode({"_id": ObjectId(), "text": "hello", "list": [1, 2.5, {"a": None}]})
    cases = [raw[:cut] for cut in range(len(raw))]
    cases += [struct.pack("<i", size) + raw[4:] for size in (0, 4, len(raw) - 1, len(raw) + 1)]
    cases += [raw + b"\x00", raw[:-1] + b"\x01", b"", b"\x05\x00\x00\x00"]
    for case in cases:
        got = outcome(rawjson.dumps_raw, case, False)
        assert got[0] == "raised" and got == outcome(python_path, case, False), case
        assert outcome(rawjson.dumps_raw_lines, [case]) == outcome(python_lines, [case], False)
    for tail in (b"\x01", b"\x06\x00\x00\x00\x00", b"\x10\x00\x00\x00" + b"\x00" * 12):
        got = outcome(rawjson.dumps_raw_lines, raw + tail)
        assert got[0] == "raised" and got == outcome(python_concatenated, raw + tail, False)


MALFORMED = {
    "bool other than 0 or 1": element(0x08, b"b", b"\x02"),
    "string without its NUL": element(0x02, b"s", struct.pack("<i", 2) + b"ab"),
    "string of length 0": element(0x02, b"s", struct.pack("<i", 0)),
    "string past the end": element(0x02, b"s", struct.pack("<i", 99) + b"ab\x00"),
    "code without its NUL": element(0x0D, b"c", struct.pack("<i", 2) + b"ab"),
    "document too short": element(0x03, b"d", struct.pack("<i", 4)),
    "document past the end": element(0x03, b"d", struct.pack("<i", 99) + b"\x00"),
    "document without EOO": element(0x03, b"d", struct.pack("<i", 6) + b"\x0a\x00"),
    "array element overrunning": element(
        0x04, b"a", struct.pack("<i", 13) + element(0x10, b"0", b"\x01\x00\x00\x00")
    ),
    "binary past the end": element(0x05, b"b", struct.pack("<i", 50) + b"\x00abc"),
    "unknown type": element(0x14, b"x", b"\x00"),
    "EOO in the middle": b"\x00" + element(0x0A, b"n"),
    "int32 cut short": element(0x10, b"i", b"\x01\x00"),
    "regex without options": element(0x0B, b"r", b"abc"),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_values_raise_as_bson_raises(bad):
    raw = document(element(0x0A, b"first"), bad)
    got = outcome(rawjson.dumps_raw, raw, False)
    assert got[0] == "raised" and got == outcome(python_path, raw, False)
    chunk = ACCEPTED[0] + raw
    assert outcome(rawjson.dumps_raw_lines, chunk) == outcome(python_concatenated, chunk, False)


@settings(max_examples=60, deadline=None)
@given(STORED_DOCUMENTS, st.randoms(use_true_random=False))
def test_random_byte_flips_give_the_python_result_or_its_error(doc, rng):
    raw = bson.encode(doc)
    for _ in range(10):
        flipped = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        case = bytes(flipped)
        for canonical in (False, True):
            assert outcome(rawjson.dumps_raw, case, canonical) == outcome(
                python_path, case, canonical
            )
        chunk = raw + case + raw
        assert outcome(rawjson.dumps_raw_lines, chunk) == outcome(python_concatenated, chunk, False)


# -- nesting depth, read off the bytes (an import checks every document against MongoDB's 100) --


def _depth(value: Any) -> int:
    """Levels of embedded documents and arrays, the document itself being level 1."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(levels: int, inner: Any) -> dict[str, Any]:
    document: Any = inner
    for index in range(levels - 1):
        document = {"a": document} if index % 2 else [document]
    return {"_id": 1, "deep": document}


@needs_c
@given(document=STORED_DOCUMENTS, limit=st.integers(min_value=1, max_value=6))
def test_nesting_read_off_the_bytes_agrees_with_the_decoded_document(document, limit):
    raw = bson.encode(document)
    decoded = bson.decode(raw)  # DBRefs and Code scopes come back as documents here
    assert rawjson.nesting_exceeds(raw, limit) is (_depth(_plain(decoded)) > limit)


def _plain(value: Any) -> Any:
    """The value with every embedded BSON document as a dict (DBRef and scoped Code count as
    embedded documents in BSON, as MongoDB counts them)."""
    if isinstance(value, bson.DBRef):
        return _plain(value.as_doc().to_dict())
    if isinstance(value, Code) and value.scope is not None:
        return 0  # its scope is inside a code value, not an embedded document
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@needs_c
@pytest.mark.parametrize("levels", [99, 100, 101, 150])
def test_nesting_at_mongodbs_limit(levels):
    raw = bson.encode(_nested(levels, "leaf"))
    assert rawjson.nesting_exceeds(raw, 100) is (levels > 100)


@needs_c
def test_nesting_of_malformed_bson_is_left_to_the_decoder():
    raw = bson.encode({"_id": 1, "inner": {"a": [1, 2, {"b": "text"}]}})
    assert rawjson.nesting_exceeds(raw, 100) is False
    for cut in range(1, len(raw)):
        assert rawjson.nesting_exceeds(raw[:cut], 100) is None
    assert rawjson.nesting_exceeds(raw[:-1] + b"\x01", 100) is None
