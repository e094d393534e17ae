"""Hermes: lossless, streaming export/import for the LLM-twin data warehouse."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hermes-llm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
