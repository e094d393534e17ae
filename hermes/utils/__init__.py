"""Helpers built on the formats: file managers, artifact serialization, export and import."""
