"""Bounded retries for warehouse work that is safe to repeat, and a cursor that resumes.

pymongo already retries a read or a write once after a network error. A server that restarts,
or a network that drops a few connections in a row, needs a few more tries with some patience
between them; after that, Hermes gives up with a :class:`WarehouseUnavailableError` that says
what it was doing, how often it tried and why it failed.

Only idempotent work is retried: reading (a cursor resumes where it stopped, it does not start
over), upserts and merges, and inserts whose retry first checks which documents of the batch
the lost attempt already stored (:func:`already_stored`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

from hermes.errors import HermesError, WarehouseUnavailableError
from hermes.storage.database import mask_uri

if TYPE_CHECKING:
    from pymongo.collection import Collection

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Server error codes that mean "try again": the node is shutting down, stepping down, or the
#: network between it and the client failed (the list pymongo retries on, plus interruptions).
TRANSIENT_CODES = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 134}
)
_RAW = CodecOptions(document_class=RawBSONDocument)
_MISSING = object()
#: Decoding that re-encodes to the same bytes: raw sub-documents, dates as milliseconds.
_RAW_EXACT = CodecOptions(
    document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_MS
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try (``attempts`` in all, the first included) and how long to wait between
    tries: ``initial_delay``, doubling each time, at most ``max_delay`` seconds."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> Iterator[float]:
        """The pauses before the second, third... attempt."""
        delay = self.initial_delay
        for _ in range(max(self.attempts, 1) - 1):
            yield min(delay, self.max_delay)
            delay *= 2


#: About 7.5 s of waiting in all (0.5 + 1 + 2 + 4), plus the connection timeouts of each try.
DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


def is_transient(exc: BaseException) -> bool:
    """A failure that another try may not meet: a lost connection, a restarting server."""
    from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure

    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, server selection
        return True
    if isinstance(exc, BulkWriteError):  # per-document errors: retrying changes nothing
        return False
    if isinstance(exc, OperationFailure):
        return exc.has_error_label("RetryableWriteError") or exc.code in TRANSIENT_CODES
    return False


def driver_reason(exc: BaseException) -> str:
    """A driver error as one short line, without credentials or pymongo's topology dump."""
    return mask_uri(str(exc).split(", Timeout:")[0].split(", Topology Description:")[0])


def call_with_retry(
    operation: Callable[[int], T],
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    advice: str = "",
) -> T:
    """``operation(attempt)`` (attempt 1, 2, ...) until it succeeds or fails for good.

    Transient failures are retried with backoff; the last one, or any other driver error,
    becomes a :class:`WarehouseUnavailableError` naming ``what`` was being done.
    """
    started = time.monotonic()
    delays: Iterator[float] | None = None
    attempt = 1
    while True:
        try:
            return operation(attempt)
        except Exception as exc:
            if not isinstance(exc, _driver_error()):
                raise
            delays = delays or policy.delays()
            delay = next(delays, None) if is_transient(exc) else None
            if delay is None:
                seconds = time.monotonic() - started
                raise unavailable(what, exc, attempt, seconds, advice) from exc
            log.warning(
                "%s failed (%s); retrying in %.1f s (attempt %d of %d)",
                what,
                driver_reason(exc),
                delay,
                attempt + 1,
                policy.attempts,
            )
            time.sleep(delay)
            attempt += 1


@functools.cache
def _driver_error() -> type[Exception]:
    """pymongo's base error, imported on first need (the command line starts without pymongo);
    cached, since every document a cursor yields passes through :func:`call_with_retry`."""
    from pymongo.errors import PyMongoError

    return PyMongoError


def unavailable(
    what: str, exc: BaseException, attempts: int = 1, seconds: float = 0.0, advice: str = ""
) -> WarehouseUnavailableError:
    """The error that ends an operation the warehouse did not let finish."""
    tries = f" after {attempts} attempts over {seconds:.1f} s" if attempts > 1 else ""
    reason = driver_reason(exc)
    error = WarehouseUnavailableError(
        f"The warehouse failed while {what}{tries}: {reason}. Check that the server is running "
        f"and reachable{'; ' + advice if advice else ''}."
    )
    error.reason = f"{reason}{tries}"  # type: ignore[attr-defined]
    return error


def driver_errors_as(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a warehouse operation so that a driver error ends it as a Hermes error.

    Invalid names stay as they are (they are the caller's mistake, not the warehouse's).
    """

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            from pymongo.errors import InvalidName, PyMongoError

            try:
                return function(*args, **kwargs)
            except HermesError:
                raise
            except InvalidName:
                raise
            except PyMongoError as exc:
                raise unavailable(what, exc) from exc

        return wrapper

    return decorate


# ------------------------------------------------------------------------------------------
# Reading: a cursor that resumes where it stopped
# ------------------------------------------------------------------------------------------


def resumable_find(
    collection: Collection,
    filter_: Mapping[str, Any],
    *,
    projection: Mapping[str, Any] | None = None,
    sort: Sequence[tuple[str, int]] | None = None,
    limit: int = 0,
    batch_size: int = 10_000,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> Iterator[Any]:
    """Every document of a query once, even when the connection drops between batches.

    pymongo retries the query that opens a cursor, but not the ``getMore`` that fetches its next
    batch: a lost connection there ends the cursor. This one then reopens it after the last
    document it yielded.

    - No filter and no sort (and ``_id`` not projected out): the documents come in ``_id`` order
      (through the ``_id`` index, as mongoexport reads), and a reopened cursor starts just after
      the last ``_id`` seen. That is exact even while other clients write: ``_id`` never changes.
    - Otherwise: the query as given (``_id`` breaks ties of a sort, so the order is total), and a
      reopened cursor skips the documents already yielded; exact when the documents before that
      point did not change meanwhile.

    Documents are decoded one by one from raw BSON as they are consumed (memory stays that of
    the driver's current batch), so that a document whose own fields are ``$ref`` and ``$id``
    stays a document (pymongo's cursor would hand it over as a ``DBRef``).
    """
    codec_options = collection.codec_options
    raw_collection = collection.with_options(
        codec_options=codec_options.with_options(document_class=RawBSONDocument)
    )
    already_raw = codec_options.document_class is RawBSONDocument
    keeps_id = not projection or bool(projection.get("_id", True))
    by_id = not filter_ and not sort and keeps_id
    order = None if by_id else _total_order(sort)
    what = f"reading {collection.name}"
    yielded = 0
    last: Any = _MISSING  # the last document yielded; its ``_id`` is read only to reopen
    last_id: Any = _MISSING
    reopened = False

    def open_cursor(attempt: int) -> Any:
        nonlocal reopened, last_id
        remaining = limit - yielded if limit else 0
        if last is not _MISSING:
            # Reading ``_id`` off a raw document decodes all of it: once per reopening, not
            # once per document.
            last_id = last["_id"]
        cursor = raw_collection.find(
            filter_, projection=projection, sort=order, limit=remaining, batch_size=batch_size
        )
        if by_id:
            cursor = cursor.hint([("_id", 1)])
            if last_id is not _MISSING:
                cursor = cursor.min([("_id", last_id)])
                reopened = True
        elif yielded:
            cursor = cursor.skip(yielded)
        return cursor

    def next_document(attempt: int) -> dict[str, Any] | None:
        nonlocal cursor, reopened
        if attempt > 1:
            cursor.close()
            cursor = open_cursor(attempt)
        for raw in cursor:
            document = raw if already_raw else bson.decode(raw.raw, codec_options=codec_options)
            if reopened:
                reopened = False
                if _same_id(document, last_id):
                    continue  # ``min`` is inclusive: the last document seen comes first again
            return document
        return None

    cursor = call_with_retry(open_cursor, what, policy)
    try:
        while (document := call_with_retry(next_document, what, policy)) is not None:
            yield document
            yielded += 1
            if by_id:
                last = document
            if limit and yielded >= limit:
                return
    finally:
        cursor.close()


def _total_order(sort: Sequence[tuple[str, int]] | None) -> list[tuple[str, int]] | None:
    if not sort:
        return None
    keys = list(sort)
    if all(key != "_id" for key, _ in keys):
        keys.append(("_id", 1))
    return keys


def _same_id(document: Mapping[str, Any], value: Any) -> bool:
    found = document.get("_id", _MISSING)
    return type(found) is type(value) and found == value


# ------------------------------------------------------------------------------------------
# Writing: inserts that a lost attempt may already have stored
# ------------------------------------------------------------------------------------------


def already_stored(collection: Collection, documents: Sequence[RawBSONDocument]) -> set[int]:
    """Positions of ``documents`` stored byte for byte under their ``_id`` already.

    After a lost reply, an insert may have been applied (whole or in part) or not; inserting
    again would report the applied documents as duplicates of themselves. A document whose
    ``_id`` holds exactly the same BSON is taken as inserted; any other duplicate stays one.
    """
    by_key: dict[bytes, int] = {}
    for index, document in enumerate(documents):
        if "_id" in document:
            by_key[_id_key(document["_id"])] = index
    if not by_key:
        return set()
    raw = collection.with_options(codec_options=_RAW)
    ids = [documents[i]["_id"] for i in by_key.values()]
    stored = set()
    for found in raw.find({"_id": {"$in": ids}}):
        index = by_key.get(_id_key(found["_id"]))
        if index is not None and found.raw == _id_first(documents[index]):
            stored.add(index)
    return stored


def _id_first(document: RawBSONDocument) -> bytes:
    """The BSON of ``document`` as a server stores it: ``_id`` moved to the front."""
    if next(iter(document), "_id") == "_id":
        return document.raw
    fields = dict(RawBSONDocument(document.raw, codec_options=_RAW_EXACT).items())
    return bson.encode({"_id": fields.pop("_id"), **fields}, codec_options=_RAW_EXACT)


def _id_key(value: Any) -> bytes:
    return bson.encode({"_id": value})
