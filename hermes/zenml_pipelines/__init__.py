"""ZenML pipelines and plain functions that export ZenML artifacts to files.

Importing this package never imports ZenML (it takes seconds); the pipeline objects are built the
first time they are used (see :mod:`hermes.zenml_pipelines.artifact_export`).
"""
