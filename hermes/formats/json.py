"""Placeholder: the json format is being written."""

from __future__ import annotations

from typing import Any


class JsonFormat:
    def __init__(self, **kwargs: Any) -> None:
        self.name = kwargs.get("name", "json")
        self.extensions = kwargs.get("extensions", (".json",))

    def read_batches(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def write_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError
