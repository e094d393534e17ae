"""Coverage-guided fuzzing of the file readers with atheris (not part of the test suite).

Any exception other than Hermes' own errors is a crash; so is an error that does not name the
file. atheris is not a dependency of Hermes: install it where you fuzz, then run, for example::

    pip install atheris
    python -m tests.reliability.fuzz_readers .jsonl -max_total_time=60

The first argument is the file suffix to fuzz (``.json``, ``.jsonl``, ``.csv``, ``.tsv``,
``.parquet``, ``.jsonl.gz``...); the rest go to libFuzzer. The corpus starts from a valid file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import hermes.formats.csv
    import hermes.formats.extjson
    import hermes.formats.json
    import hermes.formats.jsonl
    import hermes.formats.parquet  # noqa: F401 - loaded here to be instrumented
    from hermes.errors import HermesError
    from hermes.formats import iter_documents, write_documents
    from hermes.formats.base import RecordError


def main() -> None:
    suffix, fuzzer_args = sys.argv[1], sys.argv[2:]
    folder = Path(tempfile.mkdtemp())
    seeds = folder / "seeds"
    seeds.mkdir()
    from tests.reliability.test_hostile_input import seed_documents

    write_documents(seeds / f"seed{suffix}", seed_documents())
    path = folder / f"fuzz{suffix}"

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        errors: list[RecordError] = []
        try:
            for _ in iter_documents(path, on_error=errors.append):
                pass
        except HermesError as error:
            if str(path) not in str(error):
                raise AssertionError(f"error without the file name: {error}") from None
        for error in errors:
            if error.path != str(path) or not error.location:
                raise AssertionError(f"record error without file or position: {error}")

    atheris.Setup([sys.argv[0], *fuzzer_args, str(seeds)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
