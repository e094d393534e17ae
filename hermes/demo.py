"""The end-to-end demo on the embedded warehouse (``./run demo``)."""

from __future__ import annotations

from hermes.sample import load_corpus
from hermes.storage.database import MongoDBManager


def main() -> None:
    with MongoDBManager() as manager:
        print(f"Warehouse: {manager.location}, database {manager.database_name!r}")
        counts = load_corpus(manager.get_database(), raw_count=300)
        for name in manager.list_collections():
            count = manager.get_collection(name).estimated_document_count()
            print(f"  {name:<20} {count:>8} documents (loaded {counts.get(name, 0)})")


if __name__ == "__main__":
    main()
