"""Placeholder: the parquet format is being written."""

from __future__ import annotations

from typing import Any


class ParquetFormat:
    def __init__(self, **kwargs: Any) -> None:
        self.name = kwargs.get("name", "parquet")
        self.extensions = kwargs.get("extensions", (".parquet",))

    def read_batches(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def write_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError
