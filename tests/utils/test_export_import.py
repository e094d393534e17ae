"""Artifact serialization, document export/import through every format, and batch files."""

from __future__ import annotations

import copy
import dataclasses
import enum
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from hermes.domain import DocumentType, RawDocument
from hermes.errors import (
    FormatError,
    UnsupportedFormatError,
    UnsupportedValueError,
    ValidationFailedError,
)
from hermes.formats import extjson, iter_documents
from hermes.formats.base import sha256_file
from hermes.sample import generate_corpus
from hermes.utils.export_import import (
    ArtifactSerializer,
    BatchExporter,
    DataExporter,
    DataImporter,
    ImportResult,
    ImportStream,
    MissingFolderError,
)
from tests.strategies import STORED_DOCUMENTS, same_bson

FORMATS = ["json", "jsonl", "csv", "parquet"]
EXTENSIONS = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
serialize = ArtifactSerializer.serialize


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[dict[str, Any]]]:
    return generate_corpus(4)


def _dumpable(value: Any) -> Any:
    """What a JSON consumer reads back; fails if either encoder refuses the value."""
    assert orjson.loads(orjson.dumps(value)) == json.loads(json.dumps(value))
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------------------------------
# ArtifactSerializer: models, dataclasses, containers
# ------------------------------------------------------------------------------------------


class Address(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    postal_code: str = Field(alias="postalCode")


class Person(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    full_name: str = Field(alias="fullName")
    address: Address
    tags: set[str] = set()


@dataclasses.dataclass
class Team:
    name: str
    lead: Person
    founded: date


def test_pydantic_models_are_serialized_by_alias_at_every_level():
    person = Person(full_name="Zoë", address=Address(postal_code="75001"), tags={"b", "a"})

    assert serialize(person) == {
        "fullName": "Zoë",
        "address": {"postalCode": "75001"},
        "tags": ["a", "b"],
    }


def test_warehouse_models_serialize_to_their_warehouse_form(corpus):
    stored = corpus["raw_documents"][0]
    data = serialize(RawDocument.from_mongo(stored))

    assert data["_id"] == stored["_id"] and "id" not in data
    assert datetime.fromisoformat(data["created_at"]) == stored["created_at"]
    assert data["content"] == stored["content"]


def test_dataclasses_serialize_their_fields_and_nested_models():
    team = Team("core", Person(fullName="Li", address=Address(postalCode="1")), date(2020, 2, 29))

    assert serialize(team) == {
        "name": "core",
        "lead": {"fullName": "Li", "address": {"postalCode": "1"}, "tags": []},
        "founded": "2020-02-29",
    }


def test_serializer_works_on_the_class_and_on_an_instance():
    assert (
        ArtifactSerializer().serialize({"a": (1, 2)}) == serialize({"a": (1, 2)}) == {"a": [1, 2]}
    )


def test_non_string_keys_become_their_json_text():
    data = serialize({1: "int", None: "none", False: "bool", 2.5: "float", (1, "x"): "tuple"})

    assert data == {"1": "int", "null": "none", "false": "bool", "2.5": "float", '[1,"x"]': "tuple"}


def test_keys_that_would_collide_once_stringified_are_an_error():
    with pytest.raises(UnsupportedValueError, match="'1'"):
        serialize({"x": {1: "int", "1": "str"}})


def test_sets_are_sorted_by_json_text_whatever_their_iteration_order():
    numbers = {10, 2, 33, 100}
    expected = sorted(numbers, key=json.dumps)
    assert list(numbers) != expected  # the order would be wrong if the set were just listed

    assert serialize(numbers) == expected
    assert serialize(frozenset({("b", 1), ("a", 2)})) == [["a", 2], ["b", 1]]


def test_set_order_does_not_depend_on_the_hash_seed():
    code = (
        "from hermes.utils.export_import import ArtifactSerializer as A;"
        "print(A.serialize({'pear', 'apple', 'fig', 'kiwi', 'plum', 'lime', 'date'}))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_generators_and_iterators_are_consumed_into_lists():
    assert serialize({"squares": (n * n for n in range(4)), "it": iter("ab")}) == {
        "squares": [0, 1, 4, 9],
        "it": ["a", "b"],
    }


# ------------------------------------------------------------------------------------------
# ArtifactSerializer: scalar types
# ------------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        (datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=timezone.utc), datetime.fromisoformat),
        (datetime(2024, 5, 1, 12, 30), datetime.fromisoformat),
        (date(1999, 12, 31), date.fromisoformat),
        (time(23, 59, 58, 999999), time.fromisoformat),
        (timedelta(days=3, hours=2, microseconds=7), TypeAdapter(timedelta).validate_python),
        (timedelta(days=-2, seconds=5), TypeAdapter(timedelta).validate_python),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID),
        (Decimal("3.14159265358979323846264338327950288"), Decimal),
        (PurePosixPath("/data/exports/raw.jsonl"), PurePosixPath),
        (2**80, int),
        (-(2**70), int),
    ],
)
def test_scalars_become_exact_text(value, read_back):
    data = serialize(value)

    assert isinstance(data, str)
    assert read_back(_dumpable(data)) == value


def test_enums_become_their_values():
    assert serialize([Color.RED, Color.PAIR, Level.HIGH]) == ["red", [1, 2], 3]


def test_64_bit_integers_stay_numbers():
    assert serialize([2**63 - 1, -(2**63), True, 0]) == [2**63 - 1, -(2**63), True, 0]


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_kept_as_extended_json_not_nulled(number):
    data = serialize({"x": number})

    assert data["x"] == {"$numberDouble": extjson._double(number)}
    restored = extjson.from_extended(_dumpable(data))["x"]
    assert math.isnan(restored) if math.isnan(number) else restored == number


def test_bytes_and_bson_types_are_relaxed_extended_json_that_reads_back():
    document = {
        "oid": ObjectId("65f0a1b2c3d4e5f6a7b8c9d0"),
        "decimal": Decimal128("1.10"),
        "long": Int64(7),
        "bytes": b"\x00\xffraw",
        "uuid_binary": Binary(uuid.uuid4().bytes, 4),
        "regex": Regex("^a.*", "im"),
        "timestamp": Timestamp(1_700_000_000, 3),
        "code": Code("function () { return x; }", {"x": 1}),
        "min": MinKey(),
        "max": MaxKey(),
        "ref": DBRef("chunks", ObjectId("65f0a1b2c3d4e5f6a7b8c9d1"), "warehouse"),
        "far_date": DatetimeMS(2**50),
    }
    data = serialize(document)

    assert data["bytes"] == {"$binary": {"base64": "AP9yYXc=", "subType": "00"}}
    assert data["oid"] == {"$oid": "65f0a1b2c3d4e5f6a7b8c9d0"}
    assert same_bson(extjson.from_extended(_dumpable(data)), document)


# ------------------------------------------------------------------------------------------
# ArtifactSerializer: NumPy and pandas
# ------------------------------------------------------------------------------------------


def test_numpy_scalars_and_arrays_become_python_values():
    import numpy as np

    data = serialize(
        {
            "matrix": np.arange(6, dtype=np.int32).reshape(2, 3),
            "int": np.int64(9),
            "float": np.float32(0.5),
            "flag": np.bool_(True),
            "nan": np.float64("nan"),
            "when": np.datetime64("2024-01-02T03:04:05.678"),
        }
    )

    assert data == {
        "matrix": [[0, 1, 2], [3, 4, 5]],
        "int": 9,
        "float": 0.5,
        "flag": True,
        "nan": {"$numberDouble": "NaN"},
        "when": "2024-01-02T03:04:05.678",
    }
    assert type(data["int"]) is int and type(data["flag"]) is bool
    _dumpable(data)


def test_pandas_frames_become_records_and_series_lists():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "name": ["a", "b"],
            "score": [1.5, 2.0],
            "when": [pd.Timestamp("2024-01-01T00:00:00.5", tz="UTC"), pd.NaT],
        }
    )
    data = serialize({"frame": frame, "series": pd.Series([1, 2, 3])})

    assert data == {
        "frame": [
            {"name": "a", "score": 1.5, "when": "2024-01-01T00:00:00.500000+00:00"},
            {"name": "b", "score": 2.0, "when": None},
        ],
        "series": [1, 2, 3],
    }
    _dumpable(data)


def test_importing_the_module_loads_neither_numpy_pandas_nor_zenml():
    code = (
        "import sys, hermes.utils.export_import;"
        "print([m for m in ('numpy', 'pandas', 'zenml') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# ArtifactSerializer: unknown objects, cycles, depth
# ------------------------------------------------------------------------------------------


class Plain:
    def __init__(self) -> None:
        self.visible = [1, 2]
        self._hidden = "secret"


class Slotted:
    __slots__ = ("x", "_y")

    def __init__(self) -> None:
        self.x = 1
        self._y = 2


class Opaque:
    __slots__ = ()

    def __str__(self) -> str:
        return "opaque thing"


def test_unknown_objects_fall_back_to_their_public_fields():
    assert serialize(Plain()) == {"visible": [1, 2]}
    assert serialize(Slotted()) == {"x": 1}


def test_objects_without_public_fields_become_str_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="hermes.utils.export_import"):
        data = serialize({"items": [Opaque()]})

    assert data == {"items": ["opaque thing"]}
    assert "Opaque" in caplog.text and "$.items[0]" in caplog.text


def test_shared_references_are_not_cycles():
    shared = {"k": 1}
    assert serialize({"a": shared, "b": [shared, shared]}) == {"a": {"k": 1}, "b": [{"k": 1}] * 2}


def _self_referencing_dict() -> Any:
    data: dict[str, Any] = {"a": {"b": {}}}
    data["a"]["b"]["back"] = data
    return data


def _self_referencing_list() -> Any:
    items: list[Any] = [1]
    items.append({"inner": items})
    return items


class Node(BaseModel):
    children: list[Any] = []


def _self_referencing_model() -> Any:
    node = Node()
    node.children.append(node)
    return node


@dataclasses.dataclass
class Link:
    target: Any = None


def _self_referencing_dataclass() -> Any:
    link = Link()
    link.target = [link]
    return link


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (_self_referencing_dict, "$.a.b.back"),
        (_self_referencing_list, "$[1].inner"),
        (_self_referencing_model, "$.children[0]"),
        (_self_referencing_dataclass, "$.target[0]"),
    ],
)
def test_reference_cycles_are_a_clear_error_naming_where(make, where):
    with pytest.raises(UnsupportedValueError, match="reference cycle") as caught:
        serialize(make())
    assert where in str(caught.value)
    assert "an object of type " in str(caught.value)


def test_very_deep_nesting_is_a_clear_error_not_a_recursion_error():
    deep: list[Any] = []
    node = deep
    for _ in range(10_000):
        node.append([])
        node = node[0]

    with pytest.raises(UnsupportedValueError, match="nesting deeper than"):
        serialize(deep)


def test_nesting_within_the_limit_serializes_and_dumps():
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(ArtifactSerializer.max_depth - 1):
        node["n"] = {}
        node = node["n"]

    _dumpable(serialize(deep))


def test_strings_are_passed_through_untouched():
    assert serialize("lone \ud800 surrogate") == "lone \ud800 surrogate"


# ------------------------------------------------------------------------------------------
# ArtifactSerializer: arbitrary nested Python data
# ------------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
_HASHABLE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    _TEXT,
    st.binary(max_size=8),
    st.datetimes(timezones=st.none() | st.just(timezone.utc)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False),
    st.sampled_from(Color),
)
#: Keys of distinct kinds never collide once stringified: text keys all start with "s".
_KEYS = st.one_of(_TEXT.map(lambda s: "s" + s), st.integers(), st.none())
_PYTHON_DATA = st.recursive(
    _HASHABLE,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(_KEYS, children, max_size=4),
        st.frozensets(_HASHABLE, max_size=4),
        st.sets(_HASHABLE, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(_PYTHON_DATA)
def test_any_nested_python_data_serializes_to_stable_json(value):
    data = serialize(value)

    assert json.loads(json.dumps(data)) == data
    assert orjson.loads(orjson.dumps(data)) == data
    assert serialize(copy.deepcopy(value)) == data


@settings(max_examples=100, deadline=None)
@given(STORED_DOCUMENTS)
def test_any_warehouse_document_serializes_to_json(document):
    data = serialize(document)

    assert orjson.loads(orjson.dumps(data)) == json.loads(json.dumps(data)) == data


# ------------------------------------------------------------------------------------------
# DataExporter / DataImporter round trips
# ------------------------------------------------------------------------------------------


def _path(tmp_path: Path, file_format: str, stem: str = "data") -> Path:
    return tmp_path / f"{stem}{EXTENSIONS[file_format]}"


@pytest.mark.parametrize("collection", list(generate_corpus(1)))
@pytest.mark.parametrize("file_format", FORMATS)
def test_documents_round_trip_through_every_format(tmp_path, corpus, file_format, collection):
    documents = corpus[collection]
    path = _path(tmp_path, file_format)

    written = DataExporter.export_documents(iter(documents), path)
    result = DataImporter.import_documents(path)

    assert written.count == len(documents) and written.format == file_format
    assert same_bson(list(result), documents)
    assert result.read == result.valid == len(documents)
    assert result.rejected == 0 and result.errors == []


@pytest.mark.parametrize("kind", list(DocumentType))
@pytest.mark.parametrize("file_format", FORMATS)
def test_hermes_models_round_trip_through_every_format(tmp_path, corpus, file_format, kind):
    models = [kind.model.from_mongo(doc) for doc in corpus[kind.collection_name]]
    path = _path(tmp_path, file_format)
    export = getattr(DataExporter, f"export_to_{file_format}")
    load = getattr(DataImporter, f"import_from_{file_format}")

    export(models, path)
    restored = load(path, kind.model)

    assert restored == models
    assert all(type(model) is kind.model for model in restored)


class Profile(BaseModel):
    """A model without warehouse methods: exported with its aliases, validated back."""

    model_config = ConfigDict(populate_by_name=True)
    user_name: str = Field(alias="userName")
    joined: datetime
    scores: list[float]


@pytest.mark.parametrize("file_format", FORMATS)
def test_plain_models_are_exported_by_alias_and_validated_back(tmp_path, file_format):
    profiles = [
        Profile(
            user_name=f"user{i}",
            joined=datetime(2024, 1, i + 1, tzinfo=timezone.utc),
            scores=[i, 0.5],
        )
        for i in range(3)
    ]
    path = _path(tmp_path, file_format)

    DataExporter.export_documents(profiles, path)

    assert [doc["userName"] for doc in iter_documents(path)] == ["user0", "user1", "user2"]
    assert DataImporter.import_documents(path, Profile) == profiles


def test_export_reports_path_count_size_and_checksum(tmp_path, corpus):
    path = tmp_path / "chunks.jsonl.gz"

    result = DataExporter.export_to_jsonl(corpus["chunks"], path)

    assert result.path == path and result.count == len(corpus["chunks"])
    assert result.bytes == path.stat().st_size
    assert result.sha256 == sha256_file(path)
    assert result.compression == "gzip"


def test_export_format_comes_from_the_name_unless_given(tmp_path):
    named = DataExporter.export_documents([{"a": 1}], tmp_path / "out.ndjson")
    forced = DataExporter.export_documents([{"a": 1}], tmp_path / "out.txt", "jsonl")

    assert named.format == forced.format == "jsonl"
    with pytest.raises(UnsupportedFormatError, match=r"\.jsonl"):
        DataExporter.export_documents([{"a": 1}], tmp_path / "out.txt")


def test_export_streams_documents_one_at_a_time(tmp_path):
    """The same dict is yielded five times, changed in between: a writer that gathered the
    documents before writing them would write the last state five times."""

    def reused() -> Iterator[dict[str, int]]:
        document = {"n": 0}
        for n in range(5):
            document["n"] = n
            yield document

    DataExporter.export_to_jsonl(reused(), tmp_path / "out.jsonl")

    assert [doc["n"] for doc in iter_documents(tmp_path / "out.jsonl")] == [0, 1, 2, 3, 4]


def test_export_takes_a_slice_of_an_endless_generator(tmp_path):
    pulled = itertools.count()
    endless = ({"n": next(pulled)} for _ in itertools.repeat(None))

    result = DataExporter.export_to_jsonl(itertools.islice(endless, 7), tmp_path / "out.jsonl")

    assert result.count == 7 and next(pulled) == 7


def test_export_refuses_a_lone_document_and_names_a_bad_item(tmp_path):
    with pytest.raises(UnsupportedValueError, match="wrap it in a list"):
        DataExporter.export_to_jsonl({"a": 1}, tmp_path / "one.jsonl")
    with pytest.raises(UnsupportedValueError, match="Document 1: .* got int"):
        DataExporter.export_to_jsonl([{"a": 1}, 5], tmp_path / "bad.jsonl")
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind


def test_import_result_is_the_list_of_records(tmp_path):
    path = tmp_path / "data.jsonl"
    DataExporter.export_to_jsonl([{"n": 1}, {"n": 2}], path)

    result = DataImporter.import_from_jsonl(path)

    assert isinstance(result, ImportResult) and isinstance(result, list)
    assert result == [{"n": 1}, {"n": 2}] and len(result) == 2 and result[-1] == {"n": 2}
    assert [doc["n"] for doc in result] == [1, 2]
    assert result.path == str(path) and result.summary() == "read 2, valid 2, rejected 0"


def test_import_of_a_missing_file_or_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        DataImporter.import_documents(tmp_path / "absent.jsonl")
    with pytest.raises(UnsupportedFormatError):
        DataImporter.import_documents(tmp_path / "data.xml")
    with pytest.raises(TypeError, match="Pydantic model class"):
        DataImporter.import_documents(tmp_path / "data.jsonl", dict)


# ------------------------------------------------------------------------------------------
# Imports with bad records
# ------------------------------------------------------------------------------------------


def _raw_lines(corpus) -> tuple[list[dict[str, Any]], str]:
    """Four lines: valid, malformed JSON, failing validation, valid."""
    good = corpus["raw_documents"][:2]
    invalid = {**corpus["raw_documents"][2], "platform": 42}
    del invalid["link"]
    lines = [
        extjson.dumps(good[0]).decode(),
        '{"_id": "x", "platform": ',
        extjson.dumps(invalid).decode(),
        extjson.dumps(good[1]).decode(),
    ]
    return good, "\n".join(lines) + "\n"


def test_bad_records_are_reported_with_file_line_and_reason_and_the_rest_imported(tmp_path, corpus):
    good, text = _raw_lines(corpus)
    path = tmp_path / "raw.jsonl"
    path.write_text(text, encoding="utf-8")
    seen = []

    result = DataImporter.import_from_jsonl(path, RawDocument, on_error=seen.append)

    assert result == [RawDocument.from_mongo(doc) for doc in good]
    assert (result.read, result.valid, result.rejected) == (4, 2, 2)
    assert seen == result.errors
    malformed, invalid = result.errors
    assert (malformed.path, malformed.location) == (str(path), "line 2, column 26")
    assert malformed.reason == "malformed JSON: unexpected end of data"
    assert (invalid.path, invalid.location) == (str(path), "line 3")
    assert "platform: Input should be a valid string (got int)" in invalid.reason
    assert "link: Field required" in invalid.reason and "\n" not in invalid.reason
    assert invalid.raw.startswith('{"_id":')


def test_strict_import_stops_at_the_first_bad_record(tmp_path, corpus):
    good, text = _raw_lines(corpus)
    valid, malformed, invalid, _ = text.splitlines()
    malformed_first = tmp_path / "malformed.jsonl"
    malformed_first.write_text(f"{valid}\n{malformed}\n{invalid}\n", encoding="utf-8")
    invalid_first = tmp_path / "invalid.jsonl"
    invalid_first.write_text(f"{valid}\n{invalid}\n{malformed}\n", encoding="utf-8")

    with pytest.raises(FormatError, match=r"malformed\.jsonl, line 2, column 26: malformed JSON"):
        DataImporter.import_from_jsonl(malformed_first, RawDocument, strict=True)
    with pytest.raises(
        ValidationFailedError, match=r"invalid\.jsonl, line 2: .*link: Field required"
    ):
        DataImporter.import_from_jsonl(invalid_first, RawDocument, strict=True)


def test_a_strict_stream_yields_the_records_before_the_first_bad_one(tmp_path, corpus):
    good, text = _raw_lines(corpus)
    valid, malformed, _, _ = text.splitlines()
    path = tmp_path / "raw.jsonl"
    path.write_text(f"{valid}\n{valid}\n{malformed}\n{valid}\n", encoding="utf-8")
    records = iter(ImportStream([path], RawDocument, strict=True))

    assert [next(records), next(records)] == [RawDocument.from_mongo(good[0])] * 2
    with pytest.raises(FormatError, match="line 3"):
        next(records)


def test_records_are_not_validated_without_a_target_class(tmp_path, corpus):
    good, text = _raw_lines(corpus)
    path = tmp_path / "raw.jsonl"
    path.write_text(text, encoding="utf-8")

    result = DataImporter.import_documents(path)

    assert len(result) == 3 and result[1]["platform"] == 42
    assert [e.location for e in result.errors] == ["line 2, column 26"]


def test_csv_bad_rows_are_reported_by_row(tmp_path, corpus):
    cleaned = DocumentType.CLEANED.model
    documents = [dict(doc) for doc in corpus["cleaned_documents"]]
    documents[2]["author_full_name"] = 12
    path = tmp_path / "cleaned.csv"
    DataExporter.export_to_csv(documents, path)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("only,three,cells\r\n")

    result = DataImporter.import_from_csv(path, cleaned)

    assert result == [cleaned.from_mongo(d) for d in documents[:2] + documents[3:]]
    invalid, malformed = result.errors
    assert (invalid.path, invalid.location) == (str(path), "row 3")
    assert "author_full_name: Input should be a valid string (got int)" in invalid.reason
    assert (malformed.path, malformed.location) == (str(path), "row 5 (line 6)")
    assert "3 cells, the header has" in malformed.reason
    with pytest.raises(ValidationFailedError, match=r"cleaned\.csv, row 3: author_full_name"):
        DataImporter.import_from_csv(path, cleaned, strict=True)


# ------------------------------------------------------------------------------------------
# BatchExporter
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", FORMATS)
def test_batches_are_numbered_files_read_back_in_order(tmp_path, corpus, file_format):
    documents = corpus["raw_documents"] * 6  # 24 documents -> 12 batches of 2
    suffix = EXTENSIONS[file_format]

    paths = BatchExporter.export_batches(documents, tmp_path, batch_size=2, file_format=file_format)

    assert [p.name for p in paths] == [f"batch_{i:05d}{suffix}" for i in range(12)]
    assert sorted(os.listdir(tmp_path)) == [p.name for p in paths]
    stream = BatchExporter.import_batches(tmp_path, f"batch_*{suffix}")
    assert same_bson(list(stream), documents)


def test_batch_files_are_ordered_by_number_not_by_text(tmp_path):
    paths = BatchExporter.export_batches(({"n": n} for n in range(12)), tmp_path, batch_size=1)
    for index, path in enumerate(paths):
        path.rename(tmp_path / f"batch_{index}.json")  # batch_10 sorts before batch_2 as text

    assert [doc["n"] for doc in BatchExporter.import_batches(tmp_path)] == list(range(12))


def test_batch_export_pulls_documents_as_it_writes(tmp_path):
    files_seen: list[int] = []

    def documents() -> Iterator[dict[str, int]]:
        for n in range(9):
            files_seen.append(len(list(tmp_path.glob("batch_*.jsonl"))))
            yield {"n": n}

    BatchExporter.export_batches(documents(), tmp_path, batch_size=3, file_format="jsonl")

    assert files_seen == [0, 0, 0, 1, 1, 1, 2, 2, 2]


class SourceBroke(Exception):
    pass


def test_a_failing_source_leaves_only_complete_batches(tmp_path):
    def documents() -> Iterator[dict[str, int]]:
        yield from ({"n": n} for n in range(5))
        raise SourceBroke("the source broke")

    with pytest.raises(SourceBroke):
        BatchExporter.export_batches(documents(), tmp_path, batch_size=2)

    assert sorted(os.listdir(tmp_path)) == ["batch_00000.json", "batch_00001.json"]


def test_empty_input_writes_no_file_and_reads_back_empty(tmp_path):
    assert BatchExporter.export_batches(iter([]), tmp_path / "out") == []

    assert list((tmp_path / "out").iterdir()) == []
    assert BatchExporter.import_batches(tmp_path / "out").to_list() == []


def test_import_batches_from_a_missing_folder_or_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(MissingFolderError, match="nowhere: no such folder") as caught:
        BatchExporter.import_batches(tmp_path / "nowhere")
    assert isinstance(caught.value, FileNotFoundError)

    (tmp_path / "file.json").write_text("[]")
    with pytest.raises(FormatError, match="not a folder"):
        BatchExporter.import_batches(tmp_path / "file.json")


def test_a_new_export_replaces_the_batches_of_an_earlier_one(tmp_path):
    BatchExporter.export_batches(({"old": n} for n in range(10)), tmp_path, batch_size=2)
    (tmp_path / "notes.txt").write_text("kept")

    paths = BatchExporter.export_batches(
        [{"new": 1}, {"new": 2}, {"new": 3}], tmp_path, batch_size=2
    )

    assert sorted(os.listdir(tmp_path)) == ["batch_00000.json", "batch_00001.json", "notes.txt"]
    assert len(paths) == 2
    assert list(BatchExporter.import_batches(tmp_path)) == [{"new": 1}, {"new": 2}, {"new": 3}]


def test_export_without_overwrite_refuses_to_touch_earlier_batches(tmp_path):
    BatchExporter.export_batches([{"n": 1}], tmp_path, file_format="jsonl")
    before = (tmp_path / "batch_00000.jsonl").read_bytes()

    with pytest.raises(FileExistsError, match="batch_"):
        BatchExporter.export_batches([{"n": 2}], tmp_path, file_format="jsonl", overwrite=False)
    assert (tmp_path / "batch_00000.jsonl").read_bytes() == before


def test_import_batches_streams_file_by_file(tmp_path):
    BatchExporter.export_batches(
        ({"n": n} for n in range(30)), tmp_path, batch_size=2, file_format="jsonl"
    )
    (tmp_path / "batch_00014.jsonl").write_text("{broken\n")

    stream = BatchExporter.import_batches(tmp_path, "batch_*.jsonl", strict=True)
    first_three = list(itertools.islice(stream, 3))  # the broken last file is not opened yet

    assert first_three == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(FormatError, match=r"batch_00014\.jsonl, line 1"):
        list(stream)


def test_import_batches_validates_and_collects_errors_per_file(tmp_path, corpus):
    documents = [dict(doc) for doc in corpus["raw_documents"]]
    documents[3]["link"] = None
    BatchExporter.export_batches(documents, tmp_path, batch_size=2, file_format="jsonl")

    result = BatchExporter.import_batches(tmp_path, "batch_*.jsonl", RawDocument).to_list()

    assert result == [RawDocument.from_mongo(d) for d in documents[:3]]
    assert result.path == str(tmp_path) and (result.read, result.rejected) == (4, 1)
    (error,) = result.errors
    assert (Path(error.path).name, error.location) == ("batch_00001.jsonl", "line 2")
    assert error.reason.startswith("link: Input should be a valid string")
