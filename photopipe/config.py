"""Client settings: where the stack is (global CLI options, with environment defaults)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENDPOINT = "http://localhost:4566"


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, populate_by_name=True)

    endpoint_url: str = Field(default=DEFAULT_ENDPOINT, validation_alias="AWS_ENDPOINT_URL")
    stack_name: str = Field(default="photopipe", validation_alias="PHOTOPIPE_STACK_NAME")
    region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")

    @property
    def is_local(self) -> bool:
        return "localhost" in self.endpoint_url or "127.0.0.1" in self.endpoint_url
