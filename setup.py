"""Build the optional C codecs (raw BSON <-> Extended JSON, raw BSON -> Arrow columns and CSV
cells); metadata lives in pyproject.toml.

``optional=True``: without a compiler the install still succeeds and Hermes uses the Python codec.
"""

import sys

from setuptools import Extension, setup

_FLAGS = [] if sys.platform == "win32" else ["-O2", "-Wall"]
#: Headers the codecs include: byte scanning and strict UTF-8; the Extended JSON writer of BSON.
_SHARED = ["hermes/formats/_utf8.h", "hermes/formats/_bsonjson.h"]

setup(
    ext_modules=[
        Extension(
            "hermes.formats._bsonjson",
            sources=["hermes/formats/_bsonjson.c"],
            depends=_SHARED,
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "hermes.formats._bsonarrow",
            sources=["hermes/formats/_bsonarrow.c"],
            depends=_SHARED,
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "hermes.formats._bsoncsv",
            sources=["hermes/formats/_bsoncsv.c"],
            depends=_SHARED,
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "hermes.formats._jsonbson",
            sources=["hermes/formats/_jsonbson.c"],
            depends=_SHARED,
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ]
)
