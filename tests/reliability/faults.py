"""Fault injection against real processes: a private warehouse server that a test may kill or
arm with fail points, a TCP proxy that loses replies, and exact comparisons of what survived.

Nothing here fakes the server: faults are SIGKILLs, closed connections and lost replies on
127.0.0.1, and every check reads back raw BSON.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from hermes.storage.database import CODEC_OPTIONS, MongoDBManager
from hermes.storage.embedded import EmbeddedWarehouse, ServerInfo
from hermes.storage.retry import RetryPolicy

RAW = CodecOptions(document_class=RawBSONDocument)
#: Quick retries for tests: the same code path as the default, with shorter pauses.
QUICK_RETRY = RetryPolicy(attempts=4, initial_delay=0.05, max_delay=0.2)
#: Hermes' connections name themselves so, and fail points can target them alone.
HERMES_APP = "hermes"


def manager_for(info: ServerInfo, database: str, *, uri: str | None = None) -> MongoDBManager:
    """A Hermes connection to a private server, quick to give up when the server is gone."""
    return MongoDBManager(uri=uri or info.uri, database=database, timeout_ms=400, retry=QUICK_RETRY)


# ------------------------------------------------------------------------------------------
# Exact comparisons
# ------------------------------------------------------------------------------------------


def stored_bson(collection: Any) -> Counter[bytes]:
    """A collection's documents as raw BSON (a multiset: a duplicate would count twice)."""
    raw = collection.with_options(codec_options=RAW)
    return Counter(document.raw for document in raw.find().sort("_id", 1))


def expected_bson(documents: Iterable[Mapping[str, Any]]) -> Counter[bytes]:
    """Documents as the warehouse stores them: BSON, ``_id`` first."""
    encoded = Counter()
    for document in documents:
        ordered = {"_id": document["_id"], **{k: v for k, v in document.items() if k != "_id"}}
        encoded[bson.encode(ordered, codec_options=CODEC_OPTIONS)] += 1
    return encoded


def damage(expected: Counter[bytes], actual: Counter[bytes]) -> int:
    """Documents missing, duplicated, changed or added: 0 when ``actual`` is exactly ``expected``."""
    return sum((expected - actual).values()) + sum((actual - expected).values())


# ------------------------------------------------------------------------------------------
# The server: kill it, arm fail points
# ------------------------------------------------------------------------------------------


def kill(pid: int) -> None:
    """SIGKILL a process and reap it if it is our child: no clean shutdown, no flush."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class KillAfter:
    """A progress that SIGKILLs the server once ``documents`` were reported done.

    The kill comes from another thread while the importer goes on writing, so it lands in the
    middle of a batch; the next batch waits for it, so the operation can never finish first.
    ``acknowledged`` is what the server had confirmed (journaled) before the kill.
    """

    def __init__(self, pid: int, documents: int) -> None:
        self.pid = pid
        self.threshold = documents
        self.done = 0
        self.acknowledged = 0
        self._killed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, label: str, total: int | None = None, unit: str = "docs") -> None:
        pass

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._thread is not None:
            self._killed.wait(10)
        elif self.done >= self.threshold:
            self.acknowledged = self.done
            self._thread = threading.Thread(target=self._kill, daemon=True)
            self._thread.start()

    def _kill(self) -> None:
        kill(self.pid)
        self._killed.set()

    def finish(self) -> None:
        pass

    @property
    def killed(self) -> bool:
        return self._killed.is_set()


@contextlib.contextmanager
def fail_point(client: MongoClient, commands: list[str], times: int, **data: Any) -> Iterator[None]:
    """Make the server fail the next ``times`` of ``commands`` from Hermes' connections (closing
    the connection unless ``data`` says otherwise), as mongod's ``failCommand`` does."""
    spec = {"failCommands": commands, "appName": HERMES_APP, **(data or {"closeConnection": True})}
    client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": spec}
    )
    try:
        yield
    finally:
        client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


# ------------------------------------------------------------------------------------------
# The network: a proxy that loses replies
# ------------------------------------------------------------------------------------------


def command_name(message: bytes) -> str | None:
    """The command of an OP_MSG request (its first key), or None for anything else."""
    if len(message) < 26 or struct.unpack_from("<i", message, 12)[0] != 2013 or message[20]:
        return None
    end = message.find(b"\x00", 26)
    return message[26:end].decode("utf-8", "replace") if end > 0 else None


def _read_message(sock: socket.socket) -> bytes | None:
    data = bytearray()
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return None
        data += chunk
    length = struct.unpack("<i", data)[0]
    while len(data) < length:
        chunk = sock.recv(min(1 << 20, length - len(data)))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class LossyProxy:
    """A TCP proxy on 127.0.0.1 in front of the server. ``lose_replies("insert", 2)`` lets the
    next two insert requests reach the server and be applied, then drops the connection instead
    of returning the reply: the client cannot know that its write was applied."""

    def __init__(self, target: ServerInfo) -> None:
        self.target = (target.host, target.port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pending: Counter[str] = Counter()
        self.lost: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def lose_replies(self, command: str, times: int) -> None:
        with self._lock:
            self._pending[command] = times

    def close(self) -> None:
        self._listener.close()

    def _should_lose(self, command: str | None) -> bool:
        with self._lock:
            if command is None or self._pending[command] <= 0:
                return False
            self._pending[command] -= 1
            self.lost.append(command)
            return True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client, socket.create_connection(self.target) as server:
            while (request := _read_message(client)) is not None:
                server.sendall(request)
                reply = _read_message(server)
                if reply is None or self._should_lose(command_name(request)):
                    return
                client.sendall(reply)


def private_warehouse(home: Path, *extra: str) -> EmbeddedWarehouse:
    """A server of the test's own (never the session's), with fail points enabled."""
    return EmbeddedWarehouse(home, extra_args=["--enable-test-commands", *extra])


def discard(warehouse: EmbeddedWarehouse) -> None:
    """End a private server whose data nobody needs: a kill, without the clean stop's wait."""
    info = warehouse.running()
    if info is not None:
        kill(info.pid)
    warehouse.stop()
