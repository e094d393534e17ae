"""Options shared by several commands, and the parsing of option values into library arguments.

The choices are spelled out here rather than read from the libraries, so that ``--help`` does not
import them (pyarrow, pydantic); tests check that they agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

FORMATS = ("json", "jsonl", "csv", "tsv", "parquet")
COMPRESSIONS = ("none", "gzip", "zstd")
DOCUMENT_TYPES = ("raw", "cleaned", "chunks", "embedded_chunks")

F = TypeVar("F", bound=Callable[..., Any])


def format_option(
    *names: str, default: str | None = None, required: bool = False, help: str
) -> Callable[[F], F]:
    # Click 8.3 takes an explicit default=None as "has a default" and skips required checks.
    given = {"default": default, "show_default": True} if default is not None else {}
    return click.option(
        *(names or ("--format", "file_format")),
        type=click.Choice(FORMATS, case_sensitive=False),
        required=required,
        help=help,
        **given,
    )


def compression_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--compression",
        type=click.Choice(COMPRESSIONS, case_sensitive=False),
        default="none",
        show_default=True,
        callback=lambda _ctx, _param, value: None if value in (None, "none") else value,
        help=help,
    )


def parse_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise click.BadParameter("give at least one field name, separated by commas")
    return items


def library_parser(name: str) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """An option callback that parses with the warehouse's own ``name`` (``parse_query``...).

    The value is checked before anything connects, so a typo is a usage error (exit 2), and
    the CLI and the library read ``--query``/``--sort``/``--fields`` the same way.
    """

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        from hermes.errors import HermesError
        from hermes.storage import warehouse

        try:
            return getattr(warehouse, name)(value)
        except HermesError as exc:
            raise click.BadParameter(getattr(exc, "reason", str(exc))) from None

    return parse
