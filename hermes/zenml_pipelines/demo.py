"""A small ZenML pipeline that produces the warehouse's documents as named artifacts.

The artifact exports are shown and tested on it. One run of :data:`document_pipeline` makes:

- ``raw_documents``: a list of :class:`~hermes.domain.documents.RawDocument` (the sample corpus);
- ``cleaned_documents``: a list of :class:`~hermes.domain.documents.CleanedDocument`;
- ``instruct_datasets``: a dict of ``train``/``test`` instruction records, as a dataset step of
  an LLM-twin pipeline returns;
- ``document_lineage``: a graph whose nodes point back to their parents. JSON holds trees, not
  cycles, so this artifact is one an export refuses (with a clear error).

The models live in the importable ``hermes`` package, so the artifacts load from any working
directory. A different ``seed`` gives different documents. Importing this module imports ZenML.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from hermes.domain.documents import CleanedDocument, RawDocument
from hermes.errors import MissingDependencyError
from hermes.sample import raw_document

try:
    from zenml import pipeline, step
    from zenml.materializers.cloudpickle_materializer import CloudpickleMaterializer
except ImportError as exc:
    raise MissingDependencyError("The ZenML demo pipeline", "zenml") from exc

_CLEANED_NAMESPACE = uuid.UUID("5b0f1c4e-2d7a-4c3e-9a51-6f1d2e8b7c90")


# ------------------------------------------------------------------------------------------
# The work, as plain functions
# ------------------------------------------------------------------------------------------


def make_raw_documents(count: int, seed: int = 0) -> list[RawDocument]:
    """``count`` raw documents of the sample corpus made with ``seed``."""
    return [RawDocument.from_mongo(raw_document(index, seed)) for index in range(count)]


def clean_document(document: RawDocument) -> CleanedDocument:
    """The cleaned form of a raw document: its text fields joined on single spaces."""
    text = " ".join(str(value) for value in document.content.values() if isinstance(value, str))
    return CleanedDocument(
        id=str(uuid.uuid5(_CLEANED_NAMESPACE, str(document.id))),
        content=" ".join(text.split()),
        platform=document.platform,
        author_id=document.author_id,
        author_full_name=document.author_full_name,
        link=document.link,
        raw_document_id=document.id,
        created_at=document.created_at,
    )


def make_instruct_datasets(
    documents: list[CleanedDocument], test_every: int = 4
) -> dict[str, list[dict[str, Any]]]:
    """Instruction/answer pairs split into train and test (every ``test_every``-th is test)."""
    datasets: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for index, document in enumerate(documents):
        split = "test" if index % test_every == test_every - 1 else "train"
        datasets[split].append(
            {
                "instruction": f"Write a {document.platform} post in the style of "
                f"{document.author_full_name}.",
                "answer": document.content[:300],
                "document_id": str(document.id),
                "words": len(document.content.split()),
            }
        )
    return datasets


class LineageNode:
    """A document in the lineage graph; each child points back to its parent."""

    def __init__(self, document_id: str, kind: str) -> None:
        self.document_id = document_id
        self.kind = kind
        self.parent: LineageNode | None = None
        self.children: list[LineageNode] = []

    def add(self, child: LineageNode) -> LineageNode:
        child.parent = self
        self.children.append(child)
        return child


class LineageMaterializer(CloudpickleMaterializer):
    """Stores lineage graphs by pickle, which keeps their cycles (declared, so ZenML does not
    warn that it fell back to pickle)."""

    ASSOCIATED_TYPES = (LineageNode,)


def make_lineage(raw: list[RawDocument], cleaned: list[CleanedDocument]) -> LineageNode:
    """Raw documents under one root, each with its cleaned document as child."""
    root = LineageNode("corpus", "root")
    by_raw_id = {str(document.raw_document_id): document for document in cleaned}
    for document in raw:
        node = root.add(LineageNode(str(document.id), "raw"))
        if (child := by_raw_id.get(str(document.id))) is not None:
            node.add(LineageNode(str(child.id), "cleaned"))
    return root


# ------------------------------------------------------------------------------------------
# The steps and the pipeline
# ------------------------------------------------------------------------------------------


@step
def load_raw_documents(count: int, seed: int) -> Annotated[list[RawDocument], "raw_documents"]:
    return make_raw_documents(count, seed)


@step
def clean_documents(
    documents: list[RawDocument],
) -> Annotated[list[CleanedDocument], "cleaned_documents"]:
    return [clean_document(document) for document in documents]


@step
def build_instruct_datasets(
    documents: list[CleanedDocument],
) -> Annotated[dict[str, list[dict[str, Any]]], "instruct_datasets"]:
    return make_instruct_datasets(documents)


@step
def trace_lineage(
    raw: list[RawDocument], cleaned: list[CleanedDocument]
) -> Annotated[LineageNode, "document_lineage"]:
    return make_lineage(raw, cleaned)


@pipeline(enable_cache=False)
def document_pipeline(count: int = 4, seed: int = 0) -> None:
    """Raw documents -> cleaned documents -> instruction datasets, and their lineage."""
    raw = load_raw_documents(count, seed)
    cleaned = clean_documents(raw)
    build_instruct_datasets(cleaned)
    trace_lineage(raw, cleaned)
