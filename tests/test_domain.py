"""Document models: id mapping, UUID and ObjectId ids, no mutation, warehouse round trip."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone

import pytest
from bson import ObjectId
from pydantic import ValidationError

from hermes.domain import Chunk, CleanedDocument, DocumentType, EmbeddedChunk, RawDocument
from hermes.sample import generate_corpus


def _raw(**overrides):
    data = {
        "_id": str(uuid.uuid4()),
        "platform": "medium",
        "author_id": str(uuid.uuid4()),
        "author_full_name": "Zoë",
        "link": "https://medium.com/x",
        "content": {"Title": "T", "nested": {"list": [1, {"a": None}]}},
        "created_at": datetime(2024, 5, 1, tzinfo=timezone.utc),
    }
    data.update(overrides)
    return data


def test_from_mongo_maps_id_and_keeps_input_intact():
    data = _raw()
    before = copy.deepcopy(data)
    model = RawDocument.from_mongo(data)
    assert data == before
    assert model.id == data["_id"]
    assert model.to_mongo() == data


def test_objectid_and_uuid_ids_are_accepted():
    oid = ObjectId()
    assert RawDocument.from_mongo(_raw(_id=oid)).to_mongo()["_id"] == oid
    value = uuid.uuid4()
    assert RawDocument.from_mongo(_raw(_id=value)).to_mongo()["_id"] == str(value)


def test_unknown_fields_are_kept():
    model = CleanedDocument.from_mongo(
        {
            "_id": "x",
            "content": "c",
            "platform": "p",
            "author_id": "a",
            "author_full_name": "n",
            "extra": {"k": [1]},
        }
    )
    assert model.to_mongo()["extra"] == {"k": [1]}


def test_invalid_document_is_rejected():
    with pytest.raises(ValidationError):
        RawDocument.from_mongo(_raw(content="not a dict"))
    with pytest.raises(ValidationError):
        EmbeddedChunk.from_mongo({"_id": "x", "document_id": "d", "content": "c"})


def test_document_type_maps_collections_and_models():
    assert DocumentType.RAW.collection_name == "raw_documents"
    assert DocumentType.parse("embedded_chunks").model is EmbeddedChunk
    assert DocumentType.parse("chunks").model is Chunk
    assert DocumentType.parse("cleaned_documents") is DocumentType.CLEANED
    with pytest.raises(ValueError, match="choose one of"):
        DocumentType.parse("nope")


@pytest.mark.parametrize("kind", list(DocumentType))
def test_sample_corpus_round_trips_through_warehouse(db, kind):
    docs = generate_corpus(6)[kind.collection_name]
    models = [kind.model.from_mongo(d) for d in docs]
    db[kind.collection_name].insert_many([m.to_mongo() for m in models])
    stored = list(db[kind.collection_name].find().sort("_id"))
    assert stored == sorted(docs, key=lambda d: d["_id"])
    assert [kind.model.from_mongo(d) for d in stored] == sorted(models, key=lambda m: m.id)


def test_sample_corpus_is_deterministic():
    assert generate_corpus(5, seed=1) == generate_corpus(5, seed=1)
    assert generate_corpus(5, seed=1) != generate_corpus(5, seed=2)
    assert len(generate_corpus(5)["embedded_chunks"][0]["embedding"]) == 384
