"""The embedded warehouse: SecantusDB run as its own process on 127.0.0.1.

The server is a separate process (not imported: it would share our GIL, and it is GPL-licensed),
started on demand, found and reused by later commands through a state file, and stopped cleanly.
A file lock around start-up keeps two commands from starting two servers on one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hermes.errors import MissingDependencyError, WarehouseUnavailableError

_LISTENING = re.compile(r"listening on ([0-9.]+):(\d+)")
#: How long a starting server may take to listen while its process is alive (one that exits
#: fails at once). Opening a large data folder is slow: 66 s for 6.5 GB (a million documents
#: with their copies) on the reference machine.
START_TIMEOUT = 600.0


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"


def _daemon_command() -> list[str]:
    """The ``secantusd-py`` launcher of the current environment."""
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("secantusd-py")
    if found:
        return [found]
    try:
        import secantus.cli  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("The embedded warehouse", "embedded") from exc
    return [sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ping(info: ServerInfo, timeout_ms: int = 2000) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(info.uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class EmbeddedWarehouse:
    """Manage the SecantusDB server whose data lives under ``home/warehouse``."""

    def __init__(self, home: str | Path, extra_args: list[str] | None = None) -> None:
        self.home = Path(home).expanduser()
        self.data_dir = self.home / "warehouse"
        self.state_file = self.home / "warehouse.json"
        self.lock_file = self.home / "warehouse.lock"
        self.log_file = self.home / "warehouse.log"
        self.extra_args = list(extra_args or [])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.lock_file, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> ServerInfo | None:
        try:
            data = json.loads(self.state_file.read_text())
            return ServerInfo(int(data["pid"]), str(data["host"]), int(data["port"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running(self) -> ServerInfo | None:
        """The live server of this folder, if one answers."""
        info = self._read_state()
        if info and _alive(info.pid) and _ping(info):
            return info
        return None

    def ensure_running(self, on_start: Callable[[Path], None] | None = None) -> ServerInfo:
        """Reuse the server of this folder, or start one and wait until it answers.

        ``on_start(data_dir)`` is called when a server has to be started: opening a large data
        folder takes a while (about a minute for 6.5 GB), which a command line should say.
        """
        with self._locked():
            info = self._read_state()
            if info and _alive(info.pid) and _ping(info):
                return info
            if info and _alive(info.pid):
                # A server that no longer answers still holds the folder: end it first.
                self._terminate(info.pid)
            if on_start is not None:
                on_start(self.data_dir)
            return self._start()

    def _start(self) -> ServerInfo:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [
            *_daemon_command(),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--storage-path",
            str(self.data_dir),
            "--log-level",
            "INFO",
            *self.extra_args,
        ]
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        offset = log.tell()
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command, reused by the next one
                close_fds=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            port = self._port_from_log(offset)
            if port is not None:
                info = ServerInfo(proc.pid, "127.0.0.1", port)
                if _ping(info):
                    self.state_file.write_text(json.dumps(info.__dict__))
                    os.chmod(self.state_file, 0o600)
                    return info
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            self._terminate(proc.pid)
        tail = self._log_tail(offset)
        raise WarehouseUnavailableError(
            f"The embedded warehouse did not start (data folder {self.data_dir}). "
            f"Its log {self.log_file} ends with: {tail or '(nothing)'}"
        )

    def _port_from_log(self, offset: int) -> int | None:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return None
        match = _LISTENING.search(text)
        return int(match.group(2)) if match else None

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                lines = handle.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    @staticmethod
    def _terminate(pid: int, timeout: float = 30.0) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not _alive(pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> bool:
        """Stop the server of this folder; True when one was running."""
        with self._locked():
            info = self._read_state()
            was_running = bool(info and _alive(info.pid))
            if info and was_running:
                self._terminate(info.pid)
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            return was_running
