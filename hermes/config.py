"""Settings, from the environment and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the warehouse is and where Hermes keeps its state.

    With no URI set, Hermes runs the embedded warehouse under ``hermes_home``.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    mongodb_uri: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("HERMES_MONGODB_URI", "MONGODB_URI", "DATABASE_HOST"),
    )
    database: str = Field(
        default="hermes", validation_alias=AliasChoices("HERMES_DATABASE", "DATABASE_NAME")
    )
    hermes_home: Path = Field(
        default=Path("~/.hermes"), validation_alias=AliasChoices("HERMES_HOME")
    )

    @field_validator("mongodb_uri", mode="before")
    @classmethod
    def _empty_uri_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("hermes_home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def uri(self) -> str | None:
        return self.mongodb_uri.get_secret_value() if self.mongodb_uri else None


def get_settings(**overrides: object) -> Settings:
    """Fresh settings each call, so tests and CLI options can change the environment."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
