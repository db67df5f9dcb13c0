"""Configuration read once from the environment into a model (template Parameters → env → Settings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    media_bucket: str
    media_table: str
    pipeline_arn: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
