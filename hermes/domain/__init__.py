"""Pydantic models of what the warehouse holds."""

from hermes.domain.documents import (
    Chunk,
    CleanedDocument,
    DocumentType,
    EmbeddedChunk,
    RawDocument,
    WarehouseDocument,
)

__all__ = [
    "Chunk",
    "CleanedDocument",
    "DocumentType",
    "EmbeddedChunk",
    "RawDocument",
    "WarehouseDocument",
]
