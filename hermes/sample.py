"""A deterministic sample corpus of the LLM-twin warehouse.

A few authors; articles, posts and repositories as raw documents; their cleaned documents, chunks
and embedded chunks (384-dimension embeddings). Unicode text, nested content and dates included.
The same seed always gives the same documents, so the demo, the tests and the benchmarks agree.
Everything is generated lazily: a million documents stream with constant memory.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId

EMBEDDING_SIZE = 384
COLLECTIONS = ("raw_documents", "cleaned_documents", "chunks", "embedded_chunks")
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)

_AUTHORS = [
    ("Paul Iusztin", "paul"),
    ("Maxime Labonne", "maxime"),
    ("Zoë Ångström", "zoe"),
    ("李小龙", "li"),
    ("José Ñúñez", "jose"),
]
_PLATFORMS = ("medium", "substack", "linkedin", "github")
_WORDS = [
    "model",
    "retrieval",
    "vector",
    "embedding",
    "chunk",
    "pipeline",
    "training",
    "dataset",
    "warehouse",
    "mongo",
    "zenml",
    "prompt",
    "token",
    "context",
    "evaluation",
    "fine-tuning",
    "inference",
    "latency",
    "throughput",
    "rag",
    "agent",
    "naïve",
    "café",
    "résumé",
    "über",
    "straße",
    "数据",
    "学习",
    "模型",
    "émoji",
    "🚀",
    "λ-calculus",
]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _object_id(rng: random.Random, when: datetime) -> ObjectId:
    seconds = int(when.timestamp()).to_bytes(4, "big")
    return ObjectId(seconds + rng.getrandbits(64).to_bytes(8, "big"))


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraphs(rng: random.Random, count: int, words: int) -> str:
    return "\n\n".join(_sentence(rng, words) for _ in range(count))


def authors(seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"authors-{seed}")
    return [{"_id": _uuid(rng), "full_name": name, "handle": handle} for name, handle in _AUTHORS]


def _raw_content(rng: random.Random, kind: str, index: int) -> dict[str, Any]:
    if kind == "articles":
        return {
            "Title": _sentence(rng, 6),
            "Subtitle": _sentence(rng, 10),
            "Content": _paragraphs(rng, 3, 22),
            "language": rng.choice(["en", "fr", "de", "zh"]),
        }
    if kind == "posts":
        return {
            "Content": _paragraphs(rng, 2, 25),
            "image": None if index % 3 else f"https://cdn.example.com/img/{index}.png",
            "reactions": {"likes": rng.randint(0, 5000), "shares": rng.randint(0, 300)},
        }
    return {
        "name": f"repo-{index}",
        "files": {
            "README.md": _paragraphs(rng, 2, 18),
            "src/main.py": "def main() -> None:\n    print('héllo')\n",
        },
        "stars": rng.randint(0, 10_000),
        "topics": [rng.choice(_WORDS) for _ in range(3)],
    }


def raw_document(index: int, seed: int = 0) -> dict[str, Any]:
    """The ``index``-th raw document: about 1.1 KB of BSON."""
    rng = random.Random(f"raw-{seed}-{index}")
    author = authors(seed)[index % len(_AUTHORS)]
    kind = ("articles", "posts", "repositories")[index % 3]
    platform = "github" if kind == "repositories" else rng.choice(_PLATFORMS[:3])
    created = _EPOCH + timedelta(minutes=17 * index, milliseconds=rng.randint(0, 999))
    return {
        "_id": _uuid(rng),
        "platform": platform,
        "type": kind,
        "author_id": author["_id"],
        "author_full_name": author["full_name"],
        "link": f"https://{platform}.com/@{author['handle']}/{kind}/{index}",
        "content": _raw_content(rng, kind, index),
        "created_at": created,
    }


def cleaned_document(index: int, seed: int = 0) -> dict[str, Any]:
    raw = raw_document(index, seed)
    rng = random.Random(f"cleaned-{seed}-{index}")
    text = " ".join(str(v) for v in raw["content"].values() if isinstance(v, str))
    return {
        "_id": _uuid(rng),
        "raw_document_id": raw["_id"],
        "content": " ".join(text.split()),
        "platform": raw["platform"],
        "author_id": raw["author_id"],
        "author_full_name": raw["author_full_name"],
        "link": raw["link"],
        "created_at": raw["created_at"],
    }


def chunk(index: int, seed: int = 0, *, embedded: bool = False) -> dict[str, Any]:
    """The ``index``-th chunk; chunks come two per cleaned document."""
    cleaned = cleaned_document(index // 2, seed)
    rng = random.Random(f"chunk-{seed}-{index}-{embedded}")
    words = cleaned["content"].split()
    half = len(words) // 2
    part = words[:half] if index % 2 == 0 else words[half:]
    doc: dict[str, Any] = {
        "_id": _object_id(rng, cleaned["created_at"]),
        "document_id": cleaned["_id"],
        "content": " ".join(part),
        "platform": cleaned["platform"],
        "author_id": cleaned["author_id"],
        "author_full_name": cleaned["author_full_name"],
        "metadata": {
            "chunk_index": index % 2,
            "chunk_size": len(part),
            "embedding_model_id": "sentence-transformers/all-MiniLM-L6-v2",
        },
    }
    if embedded:
        doc["embedding"] = [round(rng.uniform(-1.0, 1.0), 6) for _ in range(EMBEDDING_SIZE)]
    return doc


def iter_collection(name: str, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` documents of one collection of the corpus, generated one at a time."""
    makers = {
        "raw_documents": raw_document,
        "cleaned_documents": cleaned_document,
        "chunks": chunk,
        "embedded_chunks": lambda i, s: chunk(i, s, embedded=True),
    }
    if name not in makers:
        raise ValueError(
            f"Unknown sample collection {name!r}; choose one of {', '.join(COLLECTIONS)}"
        )
    make = makers[name]
    for index in range(count):
        yield make(index, seed)


def corpus_sizes(raw_count: int) -> dict[str, int]:
    """How many documents each collection holds for ``raw_count`` raw documents."""
    return {
        "raw_documents": raw_count,
        "cleaned_documents": raw_count,
        "chunks": raw_count * 2,
        "embedded_chunks": raw_count * 2,
    }


def generate_corpus(raw_count: int = 30, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """The whole small corpus in memory: collection name -> documents."""
    return {
        name: list(iter_collection(name, count, seed))
        for name, count in corpus_sizes(raw_count).items()
    }


def load_corpus(
    db: Any, raw_count: int = 30, seed: int = 0, batch_size: int = 1000
) -> dict[str, int]:
    """Insert the corpus into a pymongo ``Database``, replacing those collections; returns counts."""
    counts: dict[str, int] = {}
    for name, count in corpus_sizes(raw_count).items():
        collection = db[name]
        collection.drop()
        batch: list[dict[str, Any]] = []
        for doc in iter_collection(name, count, seed):
            batch.append(doc)
            if len(batch) >= batch_size:
                collection.insert_many(batch, ordered=False)
                batch = []
        if batch:
            collection.insert_many(batch, ordered=False)
        counts[name] = count
    return counts
