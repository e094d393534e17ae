"""Document models of the warehouse, usable to validate records on import.

Models keep unknown fields (``extra="allow"``) so that validating a record never drops data, and
``to_mongo``/``from_mongo`` map ``id`` <-> ``_id`` without touching nested values. An id may be a
UUID string (the LLM Engineer's Handbook's warehouse) or an ObjectId.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from bson import ObjectId
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _coerce_id(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict) and set(value) == {"$oid"}:
        return ObjectId(value["$oid"])
    return value


DocumentId = Annotated[str | ObjectId, BeforeValidator(_coerce_id)]


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class WarehouseDocument(BaseModel):
    """Base of every warehouse document: an id, and a collection to live in."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, populate_by_name=True)

    id: DocumentId = Field(default_factory=_new_id)

    collection_name: ClassVar[str] = ""

    @classmethod
    def from_mongo(cls, data: Mapping[str, Any]) -> Self:
        """Build a model from a warehouse document (``_id`` becomes ``id``); input is untouched."""
        fields = dict(data)
        if "_id" in fields:
            fields["id"] = fields.pop("_id")
        return cls.model_validate(fields)

    def to_mongo(self) -> dict[str, Any]:
        """The warehouse form: ``_id`` first, then the fields in model order, extras last."""
        data = self.model_dump()
        return {"_id": data.pop("id"), **data}


class RawDocument(WarehouseDocument):
    """A crawled item (article, post, repository) before cleaning."""

    collection_name: ClassVar[str] = "raw_documents"
    platform: str
    author_id: DocumentId
    author_full_name: str
    link: str
    content: dict[str, Any]
    created_at: datetime = Field(default_factory=_now)


class CleanedDocument(WarehouseDocument):
    """A raw document's text after cleaning."""

    collection_name: ClassVar[str] = "cleaned_documents"
    content: str
    platform: str
    author_id: DocumentId
    author_full_name: str
    link: str | None = None
    raw_document_id: DocumentId | None = None
    created_at: datetime = Field(default_factory=_now)


class Chunk(WarehouseDocument):
    """A piece of a cleaned document, the unit of retrieval."""

    collection_name: ClassVar[str] = "chunks"
    document_id: DocumentId
    content: str
    platform: str | None = None
    author_id: DocumentId | None = None
    author_full_name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class EmbeddedChunk(Chunk):
    """A chunk with its embedding vector."""

    collection_name: ClassVar[str] = "embedded_chunks"
    embedding: list[float]


class DocumentType(StrEnum):
    """The kinds of documents the warehouse holds, each in its own collection."""

    RAW = "raw"
    CLEANED = "cleaned"
    CHUNKS = "chunks"
    EMBEDDED_CHUNKS = "embedded_chunks"

    @property
    def collection_name(self) -> str:
        return _COLLECTIONS[self]

    @property
    def model(self) -> type[WarehouseDocument]:
        return _MODELS[self]

    @classmethod
    def parse(cls, value: str | DocumentType) -> DocumentType:
        """Accept the value (``raw``), the name (``RAW``) or the collection (``raw_documents``)."""
        if isinstance(value, DocumentType):
            return value
        text = str(value).strip().lower().replace("-", "_")
        for member in cls:
            if text in (member.value, member.name.lower(), member.collection_name):
                return member
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"Unknown document type {value!r}; choose one of: {choices}")


_COLLECTIONS = {
    DocumentType.RAW: "raw_documents",
    DocumentType.CLEANED: "cleaned_documents",
    DocumentType.CHUNKS: "chunks",
    DocumentType.EMBEDDED_CHUNKS: "embedded_chunks",
}
_MODELS: dict[DocumentType, type[WarehouseDocument]] = {
    DocumentType.RAW: RawDocument,
    DocumentType.CLEANED: CleanedDocument,
    DocumentType.CHUNKS: Chunk,
    DocumentType.EMBEDDED_CHUNKS: EmbeddedChunk,
}
