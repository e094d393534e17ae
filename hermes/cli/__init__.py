"""The ``hermes`` command line, thin over the library."""

from hermes.cli.main import cli, main

__all__ = ["cli", "main"]
