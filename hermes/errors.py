"""Hermes' own error types.

Every error a user can meet is a :class:`HermesError`; the CLI prints its message on one line and
exits with its ``exit_code`` (2: usage or input error, 3: warehouse unreachable or refused).
"""

from __future__ import annotations

from pathlib import Path


class HermesError(Exception):
    """Base of every error Hermes raises on purpose."""

    exit_code = 2


class MissingDependencyError(HermesError, ImportError):
    """An optional extra is needed for this feature."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'hermes-llm[{extra}]'")
        self.extra = extra


class ConfigurationError(HermesError):
    """Settings are missing or contradictory."""


class WarehouseUnavailableError(HermesError):
    """The MongoDB server cannot be reached, or refused the request."""

    exit_code = 3


class FormatError(HermesError, ValueError):
    """A file is malformed or does not hold what its extension says.

    ``location`` is a human phrase such as ``"line 12"``, ``"row 4"`` or ``"byte 1024"``.
    """

    def __init__(self, path: str | Path | None, message: str, location: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.location = location
        self.reason = message
        where = self.path or "<data>"
        if location:
            where = f"{where}, {location}"
        super().__init__(f"{where}: {message}")


class MissingFileError(FormatError, FileNotFoundError):
    """The input file does not exist."""

    def __init__(self, path: str | Path) -> None:
        FormatError.__init__(self, path, "no such file")


class UnsupportedFormatError(HermesError, ValueError):
    """The file name or format name is not one Hermes reads or writes."""


class UnsupportedValueError(HermesError, ValueError):
    """A value cannot be held by the chosen format without changing it."""


class ValidationFailedError(HermesError):
    """A record failed validation and the caller asked to stop at the first error."""


class IntegrityError(HermesError):
    """A backup or export does not match its manifest (missing file, checksum, count)."""


class InvalidNameError(HermesError):
    """A collection or file name is empty, unsafe or escapes its folder."""


class ConfirmationRequiredError(HermesError):
    """A destructive operation was asked for without confirmation."""
