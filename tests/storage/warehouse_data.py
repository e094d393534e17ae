"""Shared data and checks for the warehouse tests: a document of every BSON type, raw snapshots
of collections, the file formats under test, and a progress recorder."""

from __future__ import annotations

import io
import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from bson import DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from hermes.formats import get_format

RAW = CodecOptions(document_class=RawBSONDocument)


def every_type_document(object_id: ObjectId | None = None) -> dict[str, Any]:
    """One document holding every BSON type the embedded warehouse stores, and awkward keys."""
    return {
        "_id": object_id or ObjectId(),
        "string": "héllo wörld 🚀 数据",
        "int32": 42,
        "int32_min": -(2**31),
        "int64": Int64(2**40),
        "int64_small": Int64(5),
        "double": 3.141592653589793,
        "nan": math.nan,
        "infinity": math.inf,
        "minus_infinity": -math.inf,
        "minus_zero": -0.0,
        "true": True,
        "false": False,
        "null": None,
        "date": datetime(2024, 5, 17, 13, 45, 12, 345000, tzinfo=timezone.utc),
        "date_before_1970": datetime(1901, 12, 13, 20, 45, 52, 7000, tzinfo=timezone.utc),
        "decimal": Decimal128("1234.5678"),
        "decimal_nan": Decimal128("NaN"),
        "binary": b"\x00\x01\xfe\xff",
        "uuid": Binary(uuid.UUID("6f1b5c6e-8d7a-4d3e-9a1b-2c3d4e5f6a7b").bytes, 4),
        "user_binary": Binary(b"user-defined", 0x80),
        "regex": Regex("^a.*b$", "im"),
        "timestamp": Timestamp(1_700_000_000, 7),
        "code": Code("function () { return 1; }"),
        "code_with_scope": Code("function () { return x; }", {"x": 1}),
        "min_key": MinKey(),
        "max_key": MaxKey(),
        "dbref": DBRef("authors", ObjectId("65a1b2c3d4e5f6a7b8c9d0e1"), "twin"),
        "nested": [{"a": [1, {"b": [2.5, None, "c"]}]}, [[]], {}, [Int64(7), "mixed"]],
        "content": {"title": "Nested", "tags": ["x", "y"], "meta": {"views": Int64(10)}},
        "dotted.key": "dots in a key",
        "$dollar": "a key starting with $",
        "日本語キー": "Unicode key",
        "": "an empty key",
    }


def raw_snapshot(collection: Any) -> list[bytes]:
    """Every document of a collection as its stored BSON bytes, sorted by ``_id``."""
    documents = collection.with_options(codec_options=RAW).find({}, sort=[("_id", 1)])
    return [document.raw for document in documents]


def _placeholder(name: str) -> bool:
    """Whether a format is still a placeholder (its writer raises NotImplementedError)."""
    try:
        get_format(name).write_stream(io.BytesIO(), [])
    except NotImplementedError:
        return True
    return False


def format_params(*names: str) -> list[Any]:
    """Formats to parametrize over; those not written yet are expected to fail, not skipped."""
    return [
        pytest.param(
            name,
            id=name,
            marks=[pytest.mark.xfail(raises=NotImplementedError, strict=False)]
            if _placeholder(name)
            else [],
        )
        for name in names
    ]


#: The lossless formats: a collection survives a round trip through each byte for byte.
LOSSLESS_FORMATS = format_params("json", "jsonl", "parquet", "csv")


@dataclass
class RecordingProgress:
    """A :class:`hermes.progress.Progress` that remembers what it was told."""

    tasks: list[tuple[str, int | None, str]] = field(default_factory=list)
    advanced: int = 0
    finished: int = 0

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        self.tasks.append((label, total, unit))

    def advance(self, count: int = 1) -> None:
        self.advanced += count

    def finish(self) -> None:
        self.finished += 1
