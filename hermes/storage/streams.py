"""Keep the client and the server busy at the same time.

A pymongo cursor asks for its next batch only when the current one is used up, and an
``insert_many`` waits for its reply: on their own, the server's work and the client's (decoding,
encoding, writing files) take turns. The helpers here run the waiting side in a background
thread, so that on a machine with two cores both proceed at once. Documents travel between the
threads as raw BSON, decoded in one C call per chunk on the consuming side.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

T = TypeVar("T")

#: Documents handed over at a time, and the most bytes of raw BSON in one hand-over.
CHUNK_DOCUMENTS = 1000
CHUNK_BYTES = 2 * 1024 * 1024
_POLL = 0.1


class _End:
    """What the background thread sends last: nothing more, or the error that stopped it."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(chunks: Iterable[T], depth: int) -> Iterator[T]:
    """Yield the items of ``chunks``, produced by a background thread up to ``depth`` ahead.

    The source runs entirely in that thread (a generator must not be resumed from two), and is
    closed there when the consumer stops early; an error in it reaches the consumer in order.
    """
    handover: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stopped = threading.Event()

    def put(item: Any) -> bool:
        while not stopped.is_set():
            try:
                handover.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        source = iter(chunks)
        try:
            for chunk in source:
                if not put(chunk):
                    break
            else:
                put(_End())
        except BaseException as exc:  # handed to the consumer, raised there
            put(_End(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=pump, name="hermes-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = handover.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stopped.set()
        worker.join()


def raw_chunks(
    documents: Iterable[RawBSONDocument],
    max_documents: int = CHUNK_DOCUMENTS,
    max_bytes: int = CHUNK_BYTES,
) -> Iterator[list[bytes]]:
    """Group raw documents into lists of their BSON bytes, bounded in count and in size."""
    chunk: list[bytes] = []
    size = 0
    for document in documents:
        raw = document.raw
        chunk.append(raw)
        size += len(raw)
        if len(chunk) >= max_documents or size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def prefetched_chunks(
    documents: Iterable[RawBSONDocument], *, ahead: int = 10_000
) -> Iterator[list[bytes]]:
    """The BSON of a raw cursor's documents in chunks, read by a background thread about
    ``ahead`` documents ahead (one server batch: the next one is being fetched while this one
    is written)."""
    depth = max(1, -(-ahead // CHUNK_DOCUMENTS)) + 1
    return prefetch(raw_chunks(documents), depth)


def raw_codec(codec_options: CodecOptions) -> CodecOptions:
    """The same options, decoding to :class:`RawBSONDocument` (no Python objects per field)."""
    return codec_options.with_options(document_class=RawBSONDocument)
