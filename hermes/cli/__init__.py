"""The ``hermes`` command line, thin over the library."""

from hermes.cli.app import cli, main

__all__ = ["cli", "main"]
