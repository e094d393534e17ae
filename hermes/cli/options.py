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
    return click.option(
        *(names or ("--format", "file_format")),
        type=click.Choice(FORMATS, case_sensitive=False),
        default=default,
        required=required,
        show_default=default is not None,
        help=help,
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


def parse_query(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict | None:
    """A filter in (Extended) JSON, e.g. ``{"_id": {"$oid": "..."}}``: parsed, never evaluated."""
    if value is None:
        return None
    from hermes.formats import extjson

    try:
        query = extjson.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid (Extended) JSON: {exc}") from None
    if not isinstance(query, dict):
        raise click.BadParameter('must be a JSON object, e.g. {"platform": "medium"}')
    return query


def parse_sort(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> list[tuple[str, int]] | None:
    """``"published_at,-views"`` or ``{"published_at": 1, "views": -1}`` -> pymongo sort keys."""
    if value is None:
        return None
    if value.lstrip().startswith("{"):
        import json

        try:
            spec = json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}") from None
        if not isinstance(spec, dict) or any(d not in (1, -1) for d in spec.values()):
            raise click.BadParameter('use {"field": 1 or -1, ...}')
        return [(name, direction) for name, direction in spec.items()]
    keys = parse_list(_ctx, _param, value) or []
    return [(key[1:], -1) if key.startswith("-") else (key.lstrip("+"), 1) for key in keys]
