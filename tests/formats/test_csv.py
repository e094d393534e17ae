"""CSV and TSV: lossless through a typed header, honest refusals without one."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId, Regex
from bson.binary import Binary
from bson.datetime_ms import DatetimeMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes.errors import FormatError, UnsupportedValueError
from hermes.formats import (
    RecordError,
    get_format,
    iter_documents,
    read_documents,
    write_documents,
)
from hermes.formats import csv as csv_format
from hermes.sample import generate_corpus
from tests.strategies import COLLECTIONS, DOCUMENTS, as_stored, same_bson

WHEN = datetime(2024, 5, 17, 8, 30, 1, 250000, tzinfo=timezone.utc)


def round_trip(path: Path, documents: list[dict[str, Any]], **options: Any) -> list[dict]:
    write_documents(path, documents, **options)
    return list(iter_documents(path))


def rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def collect_errors() -> tuple[list[RecordError], Any]:
    errors: list[RecordError] = []
    return errors, errors.append


# ------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(DOCUMENTS, max_size=4), st.sampled_from(["data.csv", "data.tsv"]))
def test_typed_files_read_back_byte_identical_bson(documents: list[dict], name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        try:
            write_documents(path, documents)
        except UnsupportedValueError as exc:
            # The one refusal by design: top-level fields in conflicting orders across rows.
            assert "orders its fields" in str(exc) and "JSON Lines" in str(exc)
            assert len(documents) > 1
            assert not path.exists()
            return
        assert same_bson(list(iter_documents(path)), documents)


@settings(max_examples=100, deadline=None)
@given(DOCUMENTS)
def test_every_single_document_round_trips(document: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.csv"
        assert same_bson(round_trip(path, [document]), [document])


@pytest.mark.parametrize("name", ["corpus.csv", "corpus.csv.gz", "corpus.tsv.zst"])
def test_sample_corpus_round_trips_compressed_or_not(tmp_path: Path, name: str) -> None:
    for collection, documents in generate_corpus(6).items():
        path = tmp_path / f"{collection}-{name}"
        result = write_documents(path, documents)
        assert result.count == len(documents)
        assert same_bson(list(iter_documents(path)), documents)


def test_sample_documents_flatten_to_dotted_typed_columns(tmp_path: Path) -> None:
    documents = generate_corpus(3)["raw_documents"]
    path = tmp_path / "raw.csv"
    write_documents(path, documents)
    header = rows(path)[0]
    assert header[:2] == ["_id.string()", "platform.string()"]
    assert "content.Title.string()" in header
    assert "content.reactions.likes.int32()" in header
    assert "created_at.date()" in header
    # Keys with dots ("README.md") cannot become dotted columns: the sub-document stays JSON.
    assert "content.files.json()" in header
    # Columns follow each document's own field order: content.* sit before created_at.
    assert header.index("content.name.string()") < header.index("created_at.date()")


def test_python_csv_module_reads_names_and_values(tmp_path: Path) -> None:
    documents = [
        {"_id": ObjectId("65f000000000000000000001"), "content": {"title": "Hi"}, "views": 3},
        {"_id": ObjectId("65f000000000000000000002"), "content": {"title": "Yo"}, "views": 4},
    ]
    path = tmp_path / "plain.csv"
    write_documents(path, documents)
    with open(path, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == ["_id.objectId()", "content.title.string()", "views.int32()"]
    assert records[1] == {
        "_id.objectId()": "65f000000000000000000002",
        "content.title.string()": "Yo",
        "views.int32()": "4",
    }


def test_tsv_uses_tabs(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    write_documents(path, [{"a": "x,y", "b": "z"}])
    assert path.read_bytes() == b"a.string()\tb.string()\r\nx,y\tz\r\n"


# ------------------------------------------------------------------------------------------
# Exact values
# ------------------------------------------------------------------------------------------


def test_number_types_stay_distinct_and_exact(tmp_path: Path) -> None:
    documents = [
        {"i": 1, "l": Int64(1), "d": 1.0, "big": 2**40, "z": -0.0},
        {"i": -(2**31), "l": Int64(2**63 - 1), "d": math.nan, "big": 2**41, "z": math.inf},
        {"i": 7, "l": Int64(-5), "d": 0.1 + 0.2, "big": -(2**62), "z": 5e-324},
    ]
    path = tmp_path / "numbers.csv"
    back = round_trip(path, documents)
    assert rows(path)[0] == ["i.int32()", "l.int64()", "d.double()", "big.int64()", "z.double()"]
    assert rows(path)[2][2] == "NaN"
    assert same_bson(back, documents)
    assert math.copysign(1.0, back[0]["z"]) == -1.0


def test_bson_types_get_their_own_columns(tmp_path: Path) -> None:
    document = {
        "_id": ObjectId("65f0a1b2c3d4e5f601234567"),
        "when": WHEN,
        "price": Decimal128("1.10"),
        "blob": b"\x00\xffdata",
        "flag": False,
        "uuid": Binary(bytes(range(16)), 4),
        "pattern": Regex("^a", "i"),
        "early": datetime(1, 1, 1, tzinfo=timezone.utc),
        "far": DatetimeMS(2**62),
    }
    path = tmp_path / "types.csv"
    back = round_trip(path, [as_stored(document)])
    assert rows(path) == [
        [
            "_id.objectId()",
            "when.date()",
            "price.decimal()",
            "blob.binary(base64)",
            "flag.boolean()",
            "uuid.json()",
            "pattern.json()",
            "early.date()",
            "far.json()",
        ],
        [
            "65f0a1b2c3d4e5f601234567",
            "2024-05-17T08:30:01.250Z",
            "1.10",
            "AP9kYXRh",
            "false",
            '{"$binary":{"base64":"AAECAwQFBgcICQoLDA0ODw==","subType":"04"}}',
            '{"$regularExpression":{"pattern":"^a","options":"i"}}',
            "0001-01-01T00:00:00.000Z",
            '{"$date":{"$numberLong":"4611686018427387904"}}',
        ],
    ]
    assert same_bson(back, [as_stored(document)])


def test_empty_string_null_and_missing_stay_apart(tmp_path: Path) -> None:
    documents = [{"a": "x", "b": 1}, {"a": "", "b": 2}, {"a": None, "b": 3}, {"b": 4}]
    path = tmp_path / "empties.csv"
    back = round_trip(path, documents)
    assert [row[0] for row in rows(path)] == ["a.json()", '"x"', '""', "null", ""]
    assert back == documents


def test_mixed_types_in_one_field_become_json(tmp_path: Path) -> None:
    documents = [{"v": 1}, {"v": "1"}, {"v": {"n": 1}}, {"v": [1, 2]}]
    path = tmp_path / "mixed.csv"
    back = round_trip(path, documents)
    assert [row[0] for row in rows(path)] == ["v.json()", "1", '"1"', '{"n":1}', "[1,2]"]
    assert same_bson(back, documents)


def test_json_format_canonical_on_request(tmp_path: Path) -> None:
    path = tmp_path / "canonical.csv"
    back = round_trip(path, [{"tags": [1, 2.5]}], json_format="canonical")
    assert rows(path)[1] == ['[{"$numberInt":"1"},{"$numberDouble":"2.5"}]']
    assert same_bson(back, [{"tags": [1, 2.5]}])


def test_quotes_newlines_delimiters_and_unicode_survive(tmp_path: Path) -> None:
    text = 'He said "hi",\r\nthen\tleft; 数据 🚀 naïve\n\x00end'
    documents = [{"note": text, "nested": {"q": '"quoted"'}}, {"note": " ", "nested": {"q": ","}}]
    for name in ("text.csv", "text.tsv"):
        assert round_trip(tmp_path / name, documents) == documents


def test_odd_field_names_get_quoted_columns(tmp_path: Path) -> None:
    document = {"a.b": 1, "$x": "dollar", "": "empty", "a": {"b": 2}, "content.title": "t"}
    path = tmp_path / "odd.csv"
    back = round_trip(path, [document])
    assert rows(path)[0] == [
        '"a.b".int32()',
        '"$x".string()',
        '"".string()',
        "a.b.int32()",
        '"content.title".string()',
    ]
    assert back == [document]


def test_documents_without_fields(tmp_path: Path) -> None:
    assert round_trip(tmp_path / "empty.csv", [{}, {}]) == [{}, {}]
    assert round_trip(tmp_path / "some.csv", [{}, {"a": "x"}, {}]) == [{}, {"a": "x"}, {}]
    result = write_documents(tmp_path / "none.csv", [])
    assert result.count == 0 and result.bytes == 0
    assert list(iter_documents(tmp_path / "none.csv")) == []


# ------------------------------------------------------------------------------------------
# Field order
# ------------------------------------------------------------------------------------------


def test_optional_fields_take_their_place_in_the_column_order(tmp_path: Path) -> None:
    documents = [{"a": "1", "c": "3"}, {"a": "1", "b": "2", "c": "3"}, {"b": "2", "c": "3"}]
    path = tmp_path / "optional.csv"
    assert round_trip(path, documents) == documents
    assert rows(path)[0] == ["a.string()", "b.string()", "c.string()"]


def test_sub_documents_in_conflicting_orders_become_json(tmp_path: Path) -> None:
    documents = [{"m": {"x": 1, "y": 2}, "n": 1}, {"m": {"y": 3, "x": 4}, "n": 2}]
    path = tmp_path / "nested-order.csv"
    back = round_trip(path, documents)
    assert rows(path)[0] == ["m.json()", "n.int32()"]
    assert [list(d["m"]) for d in back] == [["x", "y"], ["y", "x"]]
    assert same_bson(back, documents)


@pytest.mark.parametrize(
    ("documents", "fields"),
    [
        ([{"a": 1, "b": 2}, {"a": 1}, {"b": 2, "a": 1}], "'b', 'a'"),
        ([{"a": 1, "b": 2}, {"b": 2, "c": 3}, {"c": 3, "a": 1}], "'b', 'c', 'a'"),
    ],
)
def test_top_level_fields_in_conflicting_orders_are_refused(
    tmp_path: Path, documents: list[dict], fields: str
) -> None:
    path = tmp_path / "order.csv"
    with pytest.raises(UnsupportedValueError, match=f"Row 3 orders its fields {fields} "):
        write_documents(path, documents)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_spill_file_is_removed_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))

    def documents():
        yield {"a": "fine"}
        yield {"a": 2**70}  # BSON cannot hold it

    with pytest.raises(UnsupportedValueError, match="Row 2"):
        write_documents(tmp_path / "out.csv", documents())
    write_documents(tmp_path / "ok.csv", iter([{"a": "fine"}]))
    assert list(spill.iterdir()) == []
    assert not (tmp_path / "out.csv").exists()


# ------------------------------------------------------------------------------------------
# Rows written while the documents arrive
# ------------------------------------------------------------------------------------------


class WriteOnly:
    """A stream that can only be written, as a pipe or a compressor: nothing is cut back, so
    the rows are written after the last document (the reference)."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)


def written(documents: list[dict], stream: Any, **options: Any) -> tuple[str, bytes]:
    """The refusal of a CSV write ("" if none), and the bytes it leaves in ``stream``."""
    try:
        get_format("csv").write_stream(stream, iter(documents), **options)
        outcome = ""
    except UnsupportedValueError as exc:
        outcome = str(exc)
    data = stream.buffer.getvalue() if isinstance(stream, WriteOnly) else stream.getvalue()
    return outcome, data


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_format, "_SPILL_DOCUMENTS", 2)


@given(
    parts=st.lists(COLLECTIONS, min_size=1, max_size=4),
    batch=st.integers(1, 5),
    reversed_at=st.sets(st.integers(0, 40), max_size=2),
    options=st.sampled_from(
        [
            {},
            {"json_format": "canonical"},
            {"typed": False, "plain_values": "text"},
            {"typed": False},
        ]
    ),
)
@settings(max_examples=150, deadline=None)
def test_rows_written_early_are_the_file_written_at_the_end(
    parts: list[list[dict]], batch: int, reversed_at: set[int], options: dict
) -> None:
    # Collections one after the other: later documents add columns, change types and key orders
    # after rows were written, in batches of any size; a document with its fields reversed may
    # make the header impossible.
    documents = [document for part in parts for document in part]
    for index in reversed_at & set(range(len(documents))):
        documents[index] = dict(reversed(documents[index].items()))
    spill_documents = csv_format._SPILL_DOCUMENTS
    csv_format._SPILL_DOCUMENTS = batch
    try:
        early = written(documents, io.BytesIO(), **options)
        late = written(documents, WriteOnly(), **options)
    finally:
        csv_format._SPILL_DOCUMENTS = spill_documents
    if late[0]:  # refused: the same message, and nothing left in the stream
        assert early == (late[0], b"")
    else:
        assert early == late


def test_rows_are_written_while_the_documents_arrive(small_batches: None) -> None:
    stream = io.BytesIO()
    sizes = []

    def documents():
        for number in range(10):
            sizes.append(len(stream.getvalue()))
            yield {"_id": number, "title": f"post {number}"}

    get_format("csv").write_stream(stream, documents())
    assert sizes[:2] == [0, 0] and sizes[-1] > 0
    assert stream.getvalue() == written(list(documents()), WriteOnly())[1]


def test_a_csv_file_fills_while_the_documents_arrive(tmp_path: Path, small_batches: None) -> None:
    # The atomic output can be cut back to its start, so an export's rows need not wait.
    on_disk = []

    def documents():
        for number in range(200):
            on_disk.append(sum(p.stat().st_size for p in tmp_path.glob(".out.csv.*.tmp")))
            yield {"_id": number, "body": "x" * 20_000}

    result = write_documents(tmp_path / "out.csv", documents())
    assert on_disk[0] == 0 and on_disk[-1] > 2_000_000
    assert result.bytes == (tmp_path / "out.csv").stat().st_size


def test_a_column_that_appears_late_rewrites_the_file_in_place(
    tmp_path: Path, small_batches: None
) -> None:
    documents = [{"_id": n, "title": f"post {n}"} for n in range(20)]
    documents[15]["views"] = Int64(7)
    path = tmp_path / "late.csv"
    result = write_documents(path, documents)
    data = path.read_bytes()
    assert data.startswith(b"_id.int32(),title.string(),views.int64()\r\n")
    assert data == written(documents, WriteOnly())[1]
    assert (result.bytes, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert [dict(d) for d in iter_documents(path)] == documents


def test_a_refused_write_leaves_the_stream_as_it_was(small_batches: None) -> None:
    stream = io.BytesIO(b"kept")
    stream.seek(4)
    documents = [{"a": n, "b": n} for n in range(9)] + [{"b": 1, "a": 2}]
    with pytest.raises(UnsupportedValueError, match="Row 10 orders its fields 'b', 'a'"):
        get_format("csv").write_stream(stream, iter(documents))
    assert stream.getvalue() == b"kept"


# ------------------------------------------------------------------------------------------
# Plain header
# ------------------------------------------------------------------------------------------


def test_plain_header_writes_names_only_for_string_data(tmp_path: Path) -> None:
    documents = [{"title": "Hi", "meta": {"lang": "en"}}]
    path = tmp_path / "plain.csv"
    assert round_trip(path, documents, typed=False) == documents
    assert rows(path) == [["title", "meta.lang"], ["Hi", "en"]]


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (42, "a value of type int"),
        (None, "a value of type NoneType"),
        ("", "an empty string"),
        (WHEN, "a value of type datetime"),
        ([1], "a value of type list"),
        (Int64(7), "a value of type Int64"),
    ],
)
def test_plain_header_refuses_values_that_would_change(
    tmp_path: Path, value: Any, described: str
) -> None:
    path = tmp_path / "plain.csv"
    with pytest.raises(UnsupportedValueError, match=r"Column 'views' holds .*row 2") as info:
        write_documents(path, [{"views": "1"}, {"views": value}], typed=False)
    assert described in str(info.value) and "plain_values='text'" in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        (
            [{"m": {"a": "x"}}, {"m": "y"}],
            "holds a sub-document in row 1 and another value in row 2",
        ),
        ([{"m": {"a": "x", "b": "y"}}, {"m": {"b": "y", "a": "x"}}], "orders the fields"),
        ([{"a": {"string()": "x"}}], "would be read back as a typed header"),
    ],
)
def test_plain_header_refuses_what_only_json_could_hold(
    tmp_path: Path, documents: list[dict], message: str
) -> None:
    with pytest.raises(UnsupportedValueError, match=re.escape(message)):
        write_documents(tmp_path / "plain.csv", documents, typed=False)
    assert round_trip(tmp_path / "typed.csv", documents) == documents


def test_plain_values_text_writes_everything_as_text(tmp_path: Path) -> None:
    documents = [{"n": 42, "when": WHEN, "none": None, "tags": ["a"], "oid": ObjectId(b"x" * 12)}]
    path = tmp_path / "text.csv"
    back = round_trip(path, documents, typed=False, plain_values="text")
    assert rows(path) == [
        ["n", "when", "none", "tags", "oid"],
        ["42", "2024-05-17T08:30:01.250Z", "", '["a"]', "787878787878787878787878"],
    ]
    assert back == [
        {"n": "42", "when": "2024-05-17T08:30:01.250Z", "tags": '["a"]', "oid": "7878" * 6}
    ]


def test_unknown_plain_values_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain_values"):
        write_documents(tmp_path / "x.csv", [{"a": "b"}], typed=False, plain_values="lossy")


# ------------------------------------------------------------------------------------------
# Spreadsheet safety
# ------------------------------------------------------------------------------------------


def test_neutralize_formulas_prefixes_text_cells_only(tmp_path: Path) -> None:
    documents = [{"f": "=HYPERLINK(1)", "g": "@SUM(A1)", "ok": "plain", "n": -5, "=k": "+1"}]
    path = tmp_path / "sheet.csv"
    write_documents(path, documents, neutralize_formulas=True)
    assert rows(path) == [
        ["f.string()", "g.string()", "ok.string()", "n.int32()", "'=k.string()"],
        ["'=HYPERLINK(1)", "'@SUM(A1)", "plain", "-5", "'+1"],
    ]
    # Lossy by design: the prefix is part of the text now.
    assert next(iter_documents(path))["f"] == "'=HYPERLINK(1)"


def test_formulas_are_left_alone_by_default(tmp_path: Path) -> None:
    documents = [{"f": "=1+1"}]
    assert round_trip(tmp_path / "sheet.csv", documents) == documents


# ------------------------------------------------------------------------------------------
# Reading other files
# ------------------------------------------------------------------------------------------


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_plain_files_read_as_strings_with_dotted_nesting(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "name,stats.views,stats.likes\nada,10,\n")
    assert list(iter_documents(path)) == [{"name": "ada", "stats": {"views": "10"}}]


def test_types_option_types_plain_columns(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "name,views,when\nada,10,2024-01-02T03:04:05Z\n")
    documents = list(iter_documents(path, types={"views": "int64", "when": "date()"}))
    assert documents == [
        {"name": "ada", "views": 10, "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)}
    ]
    assert type(documents[0]["views"]) is Int64


def test_types_option_overrides_a_typed_header(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "n.string(),m.string()\n5,6\n")
    assert list(iter_documents(path, types={"n": "int32()"})) == [{"n": 5, "m": "6"}]


def test_types_option_rejects_unknown_types_and_columns(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "name\nada\n")
    with pytest.raises(ValueError, match="Unknown column type"):
        list(iter_documents(path, types={"name": "int99"}))
    with pytest.raises(ValueError, match="not in the header"):
        list(iter_documents(path, types={"nmae": "string"}))


def test_typed_header_needs_every_column_typed(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "total.int32(),note\n5,x\n")
    assert list(iter_documents(path)) == [{"total": {"int32()": "5"}, "note": "x"}]


def test_mongoimport_style_types_are_read(tmp_path: Path) -> None:
    text = "a.auto(),b.auto(),c.auto(),d.binary(hex),e.boolean(),f.double()\n7,2.5,true,00ff,TRUE,1e3\n"
    path = write_text(tmp_path / "in.csv", text)
    assert list(iter_documents(path)) == [
        {"a": 7, "b": 2.5, "c": True, "d": b"\x00\xff", "e": True, "f": 1000.0}
    ]


def test_skip_header_names_fields_by_position(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", "ada,10\nbob,,x\n")
    documents = list(iter_documents(path, skip_header=True, types={"1": "int32"}))
    assert documents == [{"0": "ada", "1": 10}, {"0": "bob", "2": "x"}]
    with pytest.raises(ValueError, match="keyed by position"):
        list(iter_documents(path, skip_header=True, types={"views": "int32"}))


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfname.string()\r\nZo\xc3\xab\r\n")
    assert list(iter_documents(path)) == [{"name": "Zoë"}]


def test_rows_are_located_by_data_row_number(tmp_path: Path) -> None:
    path = write_text(tmp_path / "in.csv", 'a,b\n1,2\n\n"multi\nline",3\n4,5\n')
    batches = list(read_documents(path, batch_size=2))
    assert [b.locations for b in batches] == [["row 1", "row 2"], ["row 3"]]


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def test_bad_cells_name_row_and_column_and_reading_goes_on(tmp_path: Path) -> None:
    text = (
        "n.int32(),j.json(),s.string()\n"
        "1,[1],a\n"
        "x,[2],b\n"  # row 2: not an int
        "3,{bad,c\n"  # row 3: not JSON
        "4,[4]\n"  # row 4: a cell short
        "2147483648,[5],e\n"  # row 5: out of the int32 range
        '6,[6],"ok"x\n'  # row 6: malformed quoting
        "7,[7],g\n"
    )
    path = write_text(tmp_path / "bad.csv", text)
    errors, on_error = collect_errors()
    documents = list(iter_documents(path, on_error=on_error))
    assert documents == [{"n": 1, "j": [1], "s": "a"}, {"n": 7, "j": [7], "s": "g"}]
    assert [e.location for e in errors] == [
        "row 2 (line 3)",
        "row 3 (line 4)",
        "row 4 (line 5)",
        "row 5 (line 6)",
        "row 6 (line 7)",
    ]
    assert "column 'n' (int32())" in errors[0].reason and "'x'" in errors[0].reason
    assert "column 'j' (json())" in errors[1].reason
    assert "2 cells, the header has 3" in errors[2].reason
    assert "out of the int32 range" in errors[3].reason
    assert "malformed CSV" in errors[4].reason
    assert errors[0].raw == "x,[2],b"


def test_bad_cell_without_handler_is_a_format_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "bad.csv", "when.date()\n2024-01-01T00:00:00Z\nyesterday\n")
    with pytest.raises(FormatError, match=r"bad\.csv, row 2 \(line 3\): column 'when'"):
        list(iter_documents(path))


def test_unterminated_quote_ends_the_read(tmp_path: Path) -> None:
    path = write_text(tmp_path / "open.csv", 'a,b\n1,2\n3,"never closed\n4,5\n6,7\n')
    errors, on_error = collect_errors()
    with pytest.raises(FormatError, match=r"row 2 \(line 3\).*quote is never closed"):
        list(iter_documents(path, on_error=on_error))


def test_runaway_cell_stops_at_the_field_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_format, "_FIELD_LIMIT", 100)
    previous = csv.field_size_limit(100)
    try:
        path = write_text(tmp_path / "runaway.csv", 'a\n"' + "x\n" * 500)
        with pytest.raises(FormatError, match=r"row 1 \(line 2\): a cell exceeds 100 characters"):
            list(iter_documents(path))
    finally:
        csv.field_size_limit(previous)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name\nok\nZoë\n".encode("latin-1"))
    with pytest.raises(FormatError, match=r"line 3: invalid UTF-8"):
        list(iter_documents(path))


def test_malformed_header_is_a_format_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "head.csv", '"a"b,c\n1,2\n')
    with pytest.raises(FormatError, match="line 1: malformed CSV header"):
        list(iter_documents(path))


def test_duplicate_header_names_are_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path / "dup.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(FormatError, match="column 'a' appears twice"):
        list(iter_documents(path))


def test_a_header_with_nul_bytes_is_not_csv(tmp_path: Path) -> None:
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"PAR1" + bytes(64) + b"\n1\n")
    with pytest.raises(FormatError, match="line 1: not CSV text"):
        list(iter_documents(path))


def test_a_value_and_a_dotted_column_cannot_share_a_field(tmp_path: Path) -> None:
    path = write_text(tmp_path / "clash.csv", "a,a.b\nx,\n,y\nx,y\n")
    errors, on_error = collect_errors()
    assert list(iter_documents(path, on_error=on_error)) == [{"a": "x"}, {"a": {"b": "y"}}]
    assert [(e.location, e.reason) for e in errors] == [
        ("row 3 (line 4)", "column 'a.b' conflicts with column 'a'")
    ]


def test_parquet_bytes_are_not_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "really.parquet.csv"
    pq.write_table(pa.table({"n": list(range(100)), "s": ["x"] * 100}), path)
    with pytest.raises(FormatError, match="really.parquet.csv"):
        list(iter_documents(path, on_error=lambda error: None))
