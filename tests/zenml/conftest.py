"""A real ZenML store for the test session, and the pipeline runs the export tests read.

ZenML runs offline on its default local stack (SQLite store, local artifact store, local
orchestrator) inside a temporary folder: nothing is read from or written to the user's ZenML
configuration, and analytics are off. Pipeline runs cost about a second each, so they are made
once per session and shared: the demo pipeline runs twice (seeds 1 and 2), which makes versions
1 and 2 of each of its artifacts with different content.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: What keeps ZenML in its folder, quiet and offline.
ZENML_ENVIRONMENT = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_LOGGING_VERBOSITY": "WARN",
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "ZENML_ENABLE_REPO_INIT_WARNINGS": "false",
    "ZENML_DISABLE_STEP_LOGS_STORAGE": "true",
    "ZENML_DISABLE_PIPELINE_LOGS_STORAGE": "true",
    "AUTO_OPEN_DASHBOARD": "false",
}
#: Artifacts the demo pipeline makes, and the number of documents in each run.
DEMO_ARTIFACTS = ("raw_documents", "cleaned_documents", "instruct_datasets", "document_lineage")
DEMO_COUNT = 4


def _forget_zenml_state() -> None:
    """Drop ZenML's process-wide configuration and client, if ZenML was already imported, so
    that the next use reads the environment again."""
    import sys

    if "zenml.client" in sys.modules:
        from zenml.client import Client
        from zenml.config.global_config import GlobalConfiguration

        Client._reset_instance()
        GlobalConfiguration._reset_instance()


@pytest.fixture(scope="session")
def zenml_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ZenML store, initialised once for the session; yields its folder."""
    root = tmp_path_factory.mktemp("zenml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZENML_CONFIG_PATH", str(root / "config"))
        patch.setenv("ZENML_LOCAL_STORES_PATH", str(root / "stores"))
        for key, value in ZENML_ENVIRONMENT.items():
            patch.setenv(key, value)
        _forget_zenml_state()
        pytest.importorskip("zenml", reason="needs the zenml extra")
        from zenml.client import Client

        assert Client().active_stack_model.name == "default"  # creates the store now
        yield root
        _forget_zenml_state()


@dataclass(frozen=True)
class DemoRuns:
    """The two runs of the demo pipeline: ``first`` made version 1 of each artifact."""

    first: Any
    second: Any

    def value(self, name: str, version: int | str | None = None) -> Any:
        """An artifact version's value as ZenML loads it (the latest when no version)."""
        from zenml.client import Client

        version = None if version is None else str(version)
        return Client().get_artifact_version(name, version).load()


@pytest.fixture(scope="session")
def demo_runs(zenml_store: Path) -> DemoRuns:
    from hermes.zenml_pipelines.demo import document_pipeline

    first = document_pipeline(count=DEMO_COUNT, seed=1)
    second = document_pipeline(count=DEMO_COUNT, seed=2)
    return DemoRuns(first, second)
