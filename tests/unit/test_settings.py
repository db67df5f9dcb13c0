"""The functions' settings: a resource name a function needs and its template entry lacks is a clear error."""

from __future__ import annotations

import pytest

from photopipe_core.settings import Settings


def test_a_missing_resource_name_names_the_variable_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDIA_TABLE", raising=False)
    monkeypatch.setenv("MEDIA_BUCKET", "media")
    settings = Settings()
    assert settings.require("media_bucket") == "media"
    with pytest.raises(RuntimeError, match=r"MEDIA_TABLE is not set: this function's Environment in template.yaml"):
        settings.require("media_table")
