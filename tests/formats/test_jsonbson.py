"""Extended JSON lines straight to BSON: every item ``jsonbson.lines_to_bson`` returns is either
None (the caller runs the Python path) or exactly the BSON of that path,
``bson.encode(extjson.loads_document(line), codec_options=STANDARD uuids)``. The C decoder writes
the lines Hermes' own exports write, and declines everything it does not reproduce exactly."""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timezone
from typing import Any

import bson
import orjson
import pytest
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hermes import sample
from hermes.errors import UnsupportedValueError
from hermes.formats import extjson, jsonbson
from tests.strategies import DOCUMENTS, STORED_DOCUMENTS, as_stored

# In CI the extension must be built: nothing is skipped there, a missing build fails.
pytestmark = pytest.mark.skipif(
    not jsonbson.AVAILABLE and not os.environ.get("CI"),
    reason="hermes.formats._jsonbson is not built (installed without a C compiler): "
    "lines_to_bson declines every line, so there is no C output to compare",
)
MODES = pytest.mark.parametrize("canonical", [False, True], ids=["relaxed", "canonical"])


def python_path(line: bytes) -> bytes:
    """The reference: what an import sends the warehouse without the C decoder."""
    return bson.encode(extjson.loads_document(line), codec_options=jsonbson.ENCODE_OPTIONS)


def python_outcome(line: bytes) -> bytes | None:
    """The Python path's BSON, or None when it raises."""
    try:
        return python_path(line)
    except Exception:
        return None


def c_path(line: bytes) -> bytes | None:
    (result,) = jsonbson.lines_to_bson([line])
    return result


def assert_agrees(line: bytes) -> bytes | None:
    """C declines, or writes the Python path's bytes; where Python raises, C declines."""
    result = c_path(line)
    if result is not None:
        assert result == python_outcome(line), line
    return result


def assert_written(line: bytes) -> None:
    """The C decoder writes this line itself, exactly as the Python path."""
    result = c_path(line)
    assert result is not None, f"declined a line it should write: {line!r}"
    assert result == python_path(line), line


def with_id(fields: str | bytes) -> bytes:
    """A line holding ``fields`` after an ``_id``."""
    text = fields.encode() if isinstance(fields, str) else fields
    return b'{"_id":1,' + text + b"}"


def needs_python(value: Any) -> bool:
    """Whether a stored value holds something the C decoder leaves to Python by design."""
    if isinstance(value, dict):
        return any(key.startswith("$") or needs_python(item) for key, item in value.items())
    if isinstance(value, list):
        return any(needs_python(item) for item in value)
    if isinstance(value, Code):
        return value.scope is not None
    return isinstance(value, Decimal128 | DBRef)


def dumps_or_skip(document: dict[str, Any], canonical: bool) -> bytes:
    try:
        return extjson.dumps(document, canonical)
    except UnsupportedValueError:
        assume(False)
        raise


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI has to prove the extension is built")
def test_ci_builds_the_extension():
    import hermes.formats._jsonbson  # noqa: F401

    assert jsonbson.AVAILABLE


# -- documents as Hermes writes them ---------------------------------------------------------


@MODES
@settings(max_examples=150)
@given(document=STORED_DOCUMENTS)
def test_stored_documents_are_written_by_c_unless_they_hold_rare_types(document, canonical):
    line = dumps_or_skip(document, canonical)
    result = assert_agrees(line)
    if not needs_python(document):
        assert result is not None, f"declined a common document: {line!r}"


@MODES
@settings(max_examples=100)
@given(document=DOCUMENTS)
def test_any_document_is_written_exactly_or_declined(document, canonical):
    assert_agrees(dumps_or_skip(document, canonical))


@MODES
def test_the_sample_corpus_is_written_by_c(canonical):
    documents = [as_stored(d) for d in sample.iter_collection("raw_documents", 200)]
    lines = [extjson.dumps(document, canonical) for document in documents]
    assert jsonbson.lines_to_bson(lines) == [python_path(line) for line in lines]


def test_every_wrapper_hermes_writes_is_written_by_c():
    document = {
        "_id": ObjectId("0123456789abcdefABCDEF01"),
        "when": datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=timezone.utc),
        "old": datetime(1, 1, 1, tzinfo=timezone.utc),
        "small_long": Int64(5),
        "long": Int64(2**40),
        "int": -7,
        "binary": Binary(b"\x00\xff" * 9, 0x80),
        "old_binary": Binary(b"xyz", 2),
        "uuid": Binary(bytes(range(16)), 4),
        "legacy_uuid": Binary(bytes(range(16)), 3),
        "bytes": b"",
        "ts": Timestamp(2**32 - 1, 0),
        "regex": Regex("^a\\.b$", "ximsu"),
        "code": Code("function () { return '\x00'; }"),
        "bounds": [MinKey(), MaxKey(), float("nan"), float("-inf"), -0.0, 1e308],
    }
    for canonical in (False, True):
        assert_written(extjson.dumps(as_stored(document), canonical))


# -- numbers ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(value=st.floats())
def test_floats_read_as_orjson_and_float_read_them(value):
    if value == value and abs(value) != float("inf"):
        assert_written(with_id(b'"x":' + orjson.dumps(value)))
    assert_written(with_id(f'"x":{{"$numberDouble":"{extjson._double(value)}"}}'))


@settings(max_examples=200)
@given(text=st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?\Z"))
def test_any_json_number_text_reads_as_the_python_path(text):
    line = with_id(f'"x":{text}')
    result = assert_agrees(line)
    if "." in text or "e" in text.lower() or abs(int(text)) < 2**63:
        assert result is not None, line


@pytest.mark.parametrize(
    "text",
    [
        "1e-400",
        "-1e-400",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1e309",
        "1E400",
        "-1E400",
        "9007199254740993.0",
        "9007199254740993e0",
        "0.1",
        "1.0",
        "-0.0",
        "-0e0",
        "1E+2",
        "123456789012345678901234567890.123456789012345678901234567890e-10",
        "1e99999999999999999999",
        "1e-99999999999999999999",
        "1" * 400 + ".5",
        "2." + "2250738585072011" * 30 + "e-308",
    ],
)
def test_float_edge_cases_are_the_same_double(text):
    assert_written(with_id(f'"x":{text}'))
    assert_written(with_id(f'"x":{{"$numberDouble":"{text}"}}'))


@pytest.mark.parametrize(
    "number",
    [0, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 9007199254740993],
)
def test_integers_within_64_bits_are_int32_or_int64_as_bson_encode_picks(number):
    assert_written(with_id(f'"x":{number}'))
    assert_written(with_id(f'"x":{{"$numberLong":"{number}"}}'))


def test_minus_zero_integer_is_zero():
    assert_written(with_id('"x":-0'))
    assert c_path(with_id('"x":-0')) == bson.encode({"_id": 1, "x": 0})


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**64 - 1, 2**64, 10**30])
def test_integers_beyond_64_bits_are_declined(number):
    assert c_path(with_id(f'"x":{number}')) is None
    assert c_path(with_id(f'"x":{{"$numberLong":"{number}"}}')) is None


# -- strings and whitespace ------------------------------------------------------------------


def test_every_json_escape_decodes_to_utf8():
    escapes = r'"\" \\ \/ \b \f \n \r \t \u0000 \u00e9 \u00E9 \u20ac \ud83d\ude00 \uD83D\uDE00"'
    line = with_id(f'"s":{escapes},"k\\u00e9\\n":1')
    assert_written(line)
    assert c_path(line) == bson.encode(
        {"_id": 1, "s": '" \\ / \b \f \n \r \t \x00 é é € 😀 😀', "ké\n": 1}
    )


@settings(max_examples=150)
@given(text=st.text(st.characters(exclude_categories=("Cs",))), key=st.text(max_size=5))
def test_strings_raw_or_ascii_escaped_are_written(text, key):
    assume("\x00" not in key and not key.startswith("$") and key != "_id")
    assume(all(not 0xD800 <= ord(c) <= 0xDFFF for c in key))
    for ensure_ascii in (False, True):
        fields = json.dumps({key: text}, ensure_ascii=ensure_ascii)[1:-1]
        assert_written(with_id(fields.encode()))


@pytest.mark.parametrize(
    "line",
    [
        b'{"_id":1}\n',
        b'{"_id":1}\r\n',
        b' \t{ "_id" : 1 , "a" : [ 1 , { } , [ ] ] , "b" : { "c" : null } }  \r\n',
        b'{\n"_id":\n{ "$oid" : "0123456789abcdef01234567" }\n}',
        b'{"_id":{"$date":  {"$numberLong" : "5"}},"t":{ "$timestamp" : { "i" : 1 , "t" : 2 } }}',
    ],
    ids=["lf", "crlf", "spaces", "newlines-inside", "spaces-in-wrappers"],
)
def test_json_whitespace_is_accepted_anywhere(line):
    assert_written(line)


# -- wrappers --------------------------------------------------------------------------------


WRAPPERS = [
    '{"$oid":"0123456789ABCDEFabcdef01"}',
    '{"$date":"2000-02-29T00:00:00.000Z"}',
    '{"$date":"1969-12-31T23:59:59.999Z"}',
    '{"$date":"0001-01-01T00:00:00Z"}',
    '{"$date":"9999-12-31T23:59:59.999Z"}',
    '{"$date":{"$numberLong":"-62135596800001"}}',
    '{"$date":{"$numberLong":"9223372036854775807"}}',
    '{"$date":-5}',
    '{"$numberLong":"-0"}',
    '{"$numberLong":"+5"}',
    '{"$numberLong":"007"}',
    '{"$numberInt":"-2147483648"}',
    '{"$numberInt":"2147483647"}',
    '{"$numberDouble":"NaN"}',
    '{"$numberDouble":"Infinity"}',
    '{"$numberDouble":"-Infinity"}',
    '{"$numberDouble":"-0.0"}',
    '{"$numberDouble":"5."}',
    '{"$numberDouble":".5"}',
    '{"$numberDouble":"+1.5e-3"}',
    '{"$numberDouble":"1"}',
    '{"$binary":{"base64":"","subType":"00"}}',
    '{"$binary":{"base64":"QQ==","subType":"0"}}',
    '{"$binary":{"base64":"QR==","subType":"80"}}',
    '{"$binary":{"base64":"QUI=","subType":"FF"}}',
    '{"$binary":{"subType":"02","base64":"QUJD"}}',
    '{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}}',
    '{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"03"}}',
    '{"$binary":{"base64":"AAEC","subType":"4"}}',
    '{"$timestamp":{"t":0,"i":4294967295}}',
    '{"$timestamp":{"i":1,"t":2}}',
    '{"$regularExpression":{"pattern":"a\\\\d\\u00e9","options":"xzmiiu"}}',
    '{"$regularExpression":{"options":"l","pattern":""}}',
    '{"$regularExpression":{"pattern":"","options":"xusmli"}}',
    '{"$code":"a\\u0000b \\ud83d\\ude00"}',
    '{"$minKey":1}',
    '{"$maxKey":1}',
]


@pytest.mark.parametrize("value", WRAPPERS)
def test_wrappers_are_written(value):
    assert_written(with_id(f'"v":{value}'))
    assert_written(with_id(f'"v":[{value},{{"in":{value}}}]'))


# -- declines --------------------------------------------------------------------------------

_DEEP = 99  # nested arrays under the top-level document: 100 levels in all
DECLINED: dict[str, bytes] = {
    "empty line": b"",
    "blank line": b" \r\n",
    "BOM": b'\xef\xbb\xbf{"_id":1}',
    "array line": b'[{"_id":1}]',
    "number line": b"1",
    "string line": b'"x"',
    "no _id": b'{"a":1}',
    "empty object": b"{}",
    "_id not first": b'{"a":1,"_id":2}',
    "top-level $ key": with_id('"$set":1'),
    "unknown $ key": with_id('"a":{"$foo":1}'),
    "$ key not first": with_id('"a":{"x":1,"$oid":"0123456789abcdef01234567"}'),
    "wrapper with more keys": with_id('"a":{"$oid":"0123456789abcdef01234567","x":1}'),
    "escaped $ key": with_id('"a":{"\\u0024oid":"0123456789abcdef01234567"}'),
    "$numberDecimal": with_id('"a":{"$numberDecimal":"1.5"}'),
    "$uuid": with_id('"a":{"$uuid":"00010203-0405-0607-0809-0a0b0c0d0e0f"}'),
    "$symbol": with_id('"a":{"$symbol":"s"}'),
    "$undefined": with_id('"a":{"$undefined":true}'),
    "$dbPointer": with_id('"a":{"$dbPointer":{"$ref":"c","$id":1}}'),
    "DBRef": with_id('"a":{"$ref":"c","$id":1}'),
    "legacy $binary": with_id('"a":{"$binary":"QQ==","$type":"00"}'),
    "legacy $regex": with_id('"a":{"$regex":"a","$options":"i"}'),
    "$code with $scope": with_id('"a":{"$code":"x","$scope":{}}'),
    "repeated key": with_id('"a":1,"a":2'),
    "repeated _id": b'{"_id":1,"_id":2}',
    "repeated nested key": with_id('"a":{"b":1,"c":2,"b":3}'),
    "repeated wrapper field": with_id('"a":{"$binary":{"base64":"","base64":"","subType":"0"}}'),
    "NUL in key": with_id('"a\\u0000b":1'),
    "lone high surrogate": with_id('"a":"\\ud800"'),
    "lone low surrogate": with_id('"a":"\\udc00x"'),
    "high surrogate then BMP": with_id('"a":"\\ud800\\u0041"'),
    "lone surrogate in key": with_id('"\\udfff":1'),
    "invalid UTF-8": with_id(b'"a":"\xff"'),
    "overlong UTF-8": with_id(b'"a":"\xc0\xaf"'),
    "UTF-8 surrogate": with_id(b'"a":"\xed\xa0\x80"'),
    "truncated UTF-8": with_id(b'"a":"\xe2\x82"'),
    "NaN literal": with_id('"a":NaN'),
    "Infinity literal": with_id('"a":Infinity'),
    "-Infinity literal": with_id('"a":-Infinity'),
    "too deep": with_id('"a":' + "[" * (_DEEP + 1) + "]" * (_DEEP + 1)),
    "over 1024 keys": with_id(",".join(f'"k{i}":0' for i in range(1024))),
    "trailing comma": b'{"_id":1,}',
    "missing colon": b'{"_id" 1}',
    "unterminated string": b'{"_id":"abc}',
    "unterminated object": b'{"_id":1',
    "extra brace": b'{"_id":1}}',
    "trailing text": b'{"_id":1} x',
    "two objects": b'{"_id":1}{"_id":2}',
    "single quotes": b"{'_id':1}",
    "leading zero": with_id('"a":01'),
    "plus sign": with_id('"a":+1'),
    "bare fraction": with_id('"a":.5'),
    "empty fraction": with_id('"a":1.'),
    "empty exponent": with_id('"a":1e'),
    "raw control character": with_id(b'"a":"x\ty"'),
    "bad escape": with_id('"a":"\\x41"'),
    "short unicode escape": with_id('"a":"\\u12"'),
    "bad literal": with_id('"a":tru'),
    "$oid too short": with_id('"a":{"$oid":"0123"}'),
    "$oid not hex": with_id('"a":{"$oid":"0123456789abcdef0123456g"}'),
    "$oid not a string": with_id('"a":{"$oid":5}'),
    "$date with offset": with_id('"a":{"$date":"2020-01-01T00:00:00+00:00"}'),
    "$date with space": with_id('"a":{"$date":"2020-01-01 00:00:00.000Z"}'),
    "$date with micros": with_id('"a":{"$date":"2020-01-01T00:00:00.123456Z"}'),
    "$date not a day": with_id('"a":{"$date":"2021-02-29T00:00:00.000Z"}'),
    "$date hour 24": with_id('"a":{"$date":"2020-01-01T24:00:00.000Z"}'),
    "$date float": with_id('"a":{"$date":1.0}'),
    "$date beyond int64": with_id('"a":{"$date":{"$numberLong":"9223372036854775808"}}'),
    "$numberLong spaces": with_id('"a":{"$numberLong":" 5"}'),
    "$numberLong underscore": with_id('"a":{"$numberLong":"1_000"}'),
    "$numberLong number": with_id('"a":{"$numberLong":5}'),
    "$numberInt out of range": with_id('"a":{"$numberInt":"2147483648"}'),
    "$numberDouble nan": with_id('"a":{"$numberDouble":"nan"}'),
    "$numberDouble inf": with_id('"a":{"$numberDouble":"inf"}'),
    "$numberDouble underscore": with_id('"a":{"$numberDouble":"1_0"}'),
    "$binary unpadded": with_id('"a":{"$binary":{"base64":"QQ","subType":"00"}}'),
    "$binary bad char": with_id('"a":{"$binary":{"base64":"Q-==","subType":"00"}}'),
    "$binary subType 3 digits": with_id('"a":{"$binary":{"base64":"","subType":"100"}}'),
    "$binary subType number": with_id('"a":{"$binary":{"base64":"","subType":0}}'),
    "$binary missing subType": with_id('"a":{"$binary":{"base64":""}}'),
    "$timestamp negative": with_id('"a":{"$timestamp":{"t":-1,"i":0}}'),
    "$timestamp too big": with_id('"a":{"$timestamp":{"t":4294967296,"i":0}}'),
    "$timestamp float": with_id('"a":{"$timestamp":{"t":1.0,"i":0}}'),
    "$minKey 2": with_id('"a":{"$minKey":2}'),
    "$minKey true": with_id('"a":{"$minKey":true}'),
    "$maxKey 1.0": with_id('"a":{"$maxKey":1.0}'),
    "regex NUL": with_id('"a":{"$regularExpression":{"pattern":"a\\u0000","options":""}}'),
    "regex extra field": with_id('"a":{"$regularExpression":{"pattern":"a","options":"","x":1}}'),
    "$code not a string": with_id('"a":{"$code":1}'),
}


@pytest.mark.parametrize("line", DECLINED.values(), ids=DECLINED.keys())
def test_lines_it_cannot_reproduce_exactly_are_declined(line):
    assert c_path(line) is None


def test_nesting_up_to_100_levels_and_1024_keys_is_written():
    assert_written(with_id('"a":' + "[" * _DEEP + "]" * _DEEP))
    assert_written(with_id(",".join(f'"k{i}":0' for i in range(1023))))


# -- the list call ---------------------------------------------------------------------------


def test_one_call_answers_every_line_in_order():
    good = [with_id(f'"n":{n}') for n in range(3)]
    lines = [good[0], b"{", bytearray(good[1]), '{"_id":1}', memoryview(good[2])]
    assert jsonbson.lines_to_bson(lines) == [
        python_path(good[0]),
        None,
        python_path(good[1]),
        None,  # a str: the Python path reads it
        python_path(good[2]),
    ]
    assert jsonbson.lines_to_bson([]) == []


def test_without_the_extension_every_line_is_left_to_python(monkeypatch):
    monkeypatch.setattr(jsonbson, "_jsonbson", None)
    assert jsonbson.lines_to_bson([with_id('"a":1'), b"{"]) == [None, None]


# -- fuzz ------------------------------------------------------------------------------------

_MUTATION_BYTES = b'"\\${}[],:0123456789.eE-+ \n\x00\x7f\x80\xbf\xc3\xe2\xed\xf0\xffabu'


def _mutate(line: bytes, rng: random.Random) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        where = rng.randrange(len(data) + 1)
        choice = rng.randrange(5)
        if choice == 0 and where < len(data):
            data[where] = rng.choice(_MUTATION_BYTES)
        elif choice == 1:
            data.insert(where, rng.choice(_MUTATION_BYTES))
        elif choice == 2 and where < len(data):
            del data[where]
        elif choice == 3:
            data[where:where] = data[rng.randrange(len(data) + 1) :][: rng.randint(1, 8)]
        else:
            del data[where:]
    return bytes(data)


def test_random_mutations_of_valid_lines_are_written_exactly_or_declined():
    documents = [as_stored(d) for d in sample.iter_collection("raw_documents", 5)]
    lines = [extjson.dumps(d, canonical) for d in documents for canonical in (False, True)]
    lines += [with_id(f'"v":{value}') for value in WRAPPERS]
    rng = random.Random(20240601)
    mutants = [_mutate(rng.choice(lines), rng) for _ in range(4000)]
    for mutant, result in zip(mutants, jsonbson.lines_to_bson(mutants), strict=True):
        if result is not None:
            assert result == python_outcome(mutant), mutant
