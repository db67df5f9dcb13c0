"""Where the CLI's AWS calls go: LocalStack (the default, with throwaway credentials) or AWS itself."""

from __future__ import annotations

import pytest

from photopipe.config import ClientSettings
from photopipe.stack import LOCAL_CREDENTIALS, Stack


def test_the_default_is_the_local_stack_with_throwaway_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    connection = Stack(ClientSettings())._connection()
    assert connection["endpoint_url"] == "http://localhost:4566"
    assert connection.items() >= LOCAL_CREDENTIALS.items()


def test_aws_means_aws_own_endpoints_and_the_usual_credentials() -> None:
    connection = Stack(ClientSettings(endpoint_url="aws"))._connection()
    assert connection["endpoint_url"] is None
    assert "aws_access_key_id" not in connection
