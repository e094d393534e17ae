"""Entry point of the ``hermes`` command."""

from __future__ import annotations

import click

from hermes import __version__


@click.group()
@click.version_option(__version__, prog_name="hermes")
def cli() -> None:
    """Hermes: lossless, streaming export/import for the LLM-twin data warehouse."""


def main() -> None:
    cli()
