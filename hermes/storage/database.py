"""The warehouse connection: a context manager over a pymongo client.

With a URI, Hermes connects to it; without one, it starts (or reuses) the embedded warehouse.
Credentials never appear in messages or ``repr``: use :func:`mask_uri` for anything shown.
"""

from __future__ import annotations

import re
from datetime import timezone
from typing import TYPE_CHECKING, Any

from bson.codec_options import CodecOptions, DatetimeConversion

from hermes.config import Settings, get_settings
from hermes.errors import WarehouseUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database

    from hermes.storage.retry import RetryPolicy

#: How documents are decoded everywhere in Hermes: the value model of DESIGN.md.
#: Dates are UTC-aware, and dates outside Python's range come back as ``DatetimeMS``.
CODEC_OPTIONS: CodecOptions = CodecOptions(
    tz_aware=True,
    tzinfo=timezone.utc,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/]*)(?::[^@/]*)?@")
_SECRET_PARAMS = re.compile(
    r"(?i)([?&](?:password|authmechanismproperties|tlsCertificateKeyFilePassword)=)[^&]*"
)


def mask_uri(uri: str) -> str:
    """``mongodb://user:secret@host/`` -> ``mongodb://user:***@host/``; secret parameters too."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", uri)
    return _SECRET_PARAMS.sub(r"\1***", masked)


def _scrub(text: str, uri: str | None) -> str:
    """Remove any trace of the URI's password from a driver message."""
    if not uri:
        return text
    text = text.replace(uri, mask_uri(uri))
    match = re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*:([^@/]*)@", uri)
    if match and match.group(1):
        text = text.replace(match.group(1), "***")
    return text


class MongoDBManager:
    """Open, hand out and close the warehouse connection.

    ``uri=None`` means: the URI from the settings, else the embedded warehouse. ``retry`` says
    how often an idempotent operation is tried again after a lost connection (default
    :data:`hermes.storage.retry.DEFAULT_RETRY`).
    """

    def __init__(
        self,
        uri: str | None = None,
        database: str | None = None,
        *,
        settings: Settings | None = None,
        timeout_ms: int = 5000,
        retry: RetryPolicy | None = None,
        on_embedded_start: Callable[[Path], None] | None = None,
    ) -> None:
        from hermes.storage.retry import DEFAULT_RETRY

        self.settings = settings or get_settings()
        self.retry = retry or DEFAULT_RETRY
        self._uri = uri or self.settings.uri
        self.database_name = database or self.settings.database
        self.timeout_ms = timeout_ms
        #: Called with the data folder when the embedded warehouse has to be started.
        self.on_embedded_start = on_embedded_start
        self._client: MongoClient | None = None
        self._embedded_uri: str | None = None

    # -- description, safe to show ------------------------------------------------------------
    @property
    def is_embedded(self) -> bool:
        return self._uri is None

    @property
    def masked_uri(self) -> str:
        if self._uri:
            return mask_uri(self._uri)
        return self._embedded_uri or "embedded"

    @property
    def location(self) -> str:
        """Where the warehouse is, for people: a masked URI or the embedded folder."""
        if self.is_embedded:
            return f"embedded warehouse in {self.settings.hermes_home / 'warehouse'}"
        return self.masked_uri

    def __repr__(self) -> str:
        return f"MongoDBManager({self.location!r}, database={self.database_name!r})"

    # -- connection -----------------------------------------------------------------------------
    @property
    def client(self) -> MongoClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> MongoClient:
        from pymongo import MongoClient
        from pymongo.errors import ConfigurationError as MongoConfigError
        from pymongo.errors import PyMongoError

        uri = self._uri
        if uri is None:
            from hermes.storage.embedded import EmbeddedWarehouse

            home = EmbeddedWarehouse(self.settings.hermes_home)
            uri = home.ensure_running(self.on_embedded_start).uri
            self._embedded_uri = uri
        try:
            client: MongoClient = MongoClient(
                uri,
                serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms,
                tz_aware=True,
                tzinfo=timezone.utc,
                datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                appname="hermes",
            )
            client.admin.command("ping")
        except MongoConfigError as exc:
            raise WarehouseUnavailableError(
                f"Invalid MongoDB URI {mask_uri(uri)}: {_scrub(str(exc), uri)}"
            ) from None
        except PyMongoError as exc:
            reason = _scrub(str(exc).split(", Timeout:")[0], uri)
            raise WarehouseUnavailableError(
                f"Cannot reach the warehouse at {mask_uri(uri)} ({reason}). Check that the server "
                "is running and that MONGODB_URI (host, port, user, password) is right."
            ) from None
        return client

    def get_database(self, name: str | None = None) -> Database:
        return self.client.get_database(name or self.database_name, codec_options=CODEC_OPTIONS)

    def get_collection(self, name: str, database: str | None = None) -> Collection:
        return self.get_database(database)[name]

    def list_collections(self, database: str | None = None) -> list[str]:
        """Collection names, sorted, without system collections."""
        names = self.get_database(database).list_collection_names()
        return sorted(n for n in names if not n.startswith("system."))

    def ping(self) -> bool:
        from pymongo.errors import PyMongoError

        try:
            self.client.admin.command("ping")
        except (PyMongoError, WarehouseUnavailableError):
            return False
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> MongoDBManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
