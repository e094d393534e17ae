"""What a writer makes of an export's BSON chunks, with its C module and without it (the
reference: the same chunks decoded and converted in Python)."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any
from unittest import mock

import bson

from hermes.formats import get_format
from hermes.formats.base import BsonChunks
from hermes.storage.database import CODEC_OPTIONS


def encoded(documents: list[dict[str, Any]], size: int = 1000) -> list[list[bytes]]:
    """The documents as BSON, in chunks of ``size``."""
    raws = [bson.encode(document) for document in documents]
    return [raws[start : start + size] for start in range(0, len(raws), size)]


def written(file_format: str, chunks: list[list[bytes]], **options: Any) -> tuple[Any, ...]:
    """The bytes written from BSON chunks, or the type and message of the error it raises."""
    stream = io.BytesIO()
    try:
        documents = BsonChunks(iter(chunks), CODEC_OPTIONS)
        get_format(file_format).write_stream(stream, documents, **options)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("ok", stream.getvalue())


def written_in_python(
    module: ModuleType, c_module: str, file_format: str, chunks: list[list[bytes]], **options: Any
) -> tuple[Any, ...]:
    """:func:`written` with ``module``'s C module (its attribute ``c_module``) taken away."""
    with mock.patch.object(module, c_module, None):
        return written(file_format, chunks, **options)
