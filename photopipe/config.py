"""Client settings: where the stack is (global CLI options, with environment defaults)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENDPOINT = "http://localhost:4566"
AWS = "aws"  # --endpoint-url aws: the stack on AWS itself, with the usual credentials


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, populate_by_name=True)

    endpoint_url: str = Field(default=DEFAULT_ENDPOINT, validation_alias="AWS_ENDPOINT_URL")
    stack_name: str = Field(default="photopipe", validation_alias="PHOTOPIPE_STACK_NAME")
    region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")

    @property
    def is_local(self) -> bool:
        return "localhost" in self.endpoint_url or "127.0.0.1" in self.endpoint_url

    @property
    def aws_endpoint(self) -> str | None:
        """The endpoint for boto3: ``aws`` names AWS's own (None: boto3 picks each service's)."""
        return None if self.endpoint_url == AWS else self.endpoint_url
