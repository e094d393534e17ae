"""Exit codes, and how an error that ends a command is told to the user (one line, no secrets)."""

from __future__ import annotations

import os
import sys

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_WAREHOUSE = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\b
Exit codes:
  {EXIT_OK}    success
  {EXIT_REJECTED}    finished, but some records were rejected (see the rejects file)
  {EXIT_USAGE}    usage or input error (bad option, unreadable file, unknown collection)
  {EXIT_WAREHOUSE}    warehouse unreachable, or it refused the request
  {EXIT_INTERNAL}   internal error: a bug (rerun with --debug and report the traceback)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""

#: Library parameters named in the library's messages, and the options that set them here: the
#: CLI prints the library's messages in its own words.
CLI_SPELLING = {"overwrite=True": "--force", "confirm=True": "--confirm"}

#: Environment variables that may hold a URI with credentials.
_URI_VARIABLES = ("MONGODB_URI", "HERMES_MONGODB_URI", "DATABASE_HOST")


def uris_in_use(option_uri: str | None) -> list[str]:
    """Every URI this command may have used: ``--uri`` and the environment's."""
    return [uri for uri in (option_uri, *map(os.environ.get, _URI_VARIABLES)) if uri]


def scrub(text: str, uris: list[str]) -> str:
    """Mask any URI in a message, and the password of the URIs in use wherever it shows."""
    from urllib.parse import urlsplit

    from hermes.storage.database import mask_uri

    for uri in uris:
        try:
            password = urlsplit(uri).password
        except ValueError:
            password = None
        text = text.replace(uri, mask_uri(uri))
        if password:
            text = text.replace(password, "***")
    return mask_uri(text)


def in_cli_words(message: str) -> str:
    """A library message with its parameters spelled as the CLI's options."""
    for parameter, option in CLI_SPELLING.items():
        message = message.replace(parameter, option)
    return message


def describe_error(exc: BaseException, uris: list[str]) -> tuple[int, str]:
    """The exit code and the one-line message for an error that ends a command."""
    from hermes.errors import HermesError

    if isinstance(exc, HermesError):
        return exc.exit_code, in_cli_words(scrub(str(exc), uris))
    pymongo_errors = sys.modules.get("pymongo.errors")
    if pymongo_errors is not None and isinstance(exc, pymongo_errors.InvalidName):
        return EXIT_USAGE, scrub(str(exc), uris)  # a bad --database or collection name
    if pymongo_errors is not None and isinstance(exc, pymongo_errors.PyMongoError):
        message = scrub(str(exc).split(", Timeout:")[0], uris)
        return EXIT_WAREHOUSE, f"the warehouse failed or refused the request: {message}"
    if isinstance(exc, OSError):
        return EXIT_USAGE, in_cli_words(scrub(str(exc), uris))
    message = scrub(str(exc), uris)
    what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return EXIT_INTERNAL, f"unexpected {what} (rerun with --debug for the traceback)"
