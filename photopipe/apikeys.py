"""API keys as a user manages them: each key is an owner's (``photopipe keys create | list | revoke``), and the
CLI finds the key it sends in ``--api-key``, ``PHOTOPIPE_API_KEY`` or its own key file.

A key is an API Gateway API key in the stack's usage plan (API Gateway admits it) plus the mapping from its id to
the owner in the media table (the API function finds the owner by it). Both are made together and taken away
together; the key's value is shown once, when it is made, and kept only in the key file when asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from photopipe.stack import Stack
from photopipe_core.owners import OPERATOR, Owner, OwnerExists, Owners, check_owner_name

KEY_FILE_NAME = "keys.json"
# The local operator runs the stack and pays for it: the per-owner limits are for the keys it hands out.
OPERATOR_LIMITS = {"daily_uploads": 0, "daily_bytes": 0, "open_uploads": 0}
ENV_VAR = "PHOTOPIPE_API_KEY"


class NoApiKey(RuntimeError):
    """The CLI has no key to send for this stack."""


@dataclass(frozen=True)
class CreatedKey:
    owner: str
    key_id: str
    value: str


@dataclass(frozen=True)
class KeyInfo:
    owner: str
    key_id: str | None
    created_at: str
    key_created_at: str | None
    enabled: bool | None  # as API Gateway has it (None: no key, or API Gateway no longer has it)
    limits: dict[str, int]  # the owner's own limits (the stack's apply to the others)


class ApiKeys:
    """The stack's owners and their API keys."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._gateway = stack.client("apigateway")

    @property
    def _owners(self) -> Owners:
        table = self._stack.resource("dynamodb").Table(self._stack.outputs.MediaTableName)
        return Owners(table)

    def create(self, name: str, limits: dict[str, int] | None = None) -> CreatedKey:
        """A new key for the owner ``name`` (a new owner, or one whose key was revoked), with the owner's own
        ``limits`` where given (quotas: ``daily_uploads``, ``daily_bytes``, ``open_uploads``; 0 = none)."""
        check_owner_name(name)
        owners = self._owners
        existing = owners.get(name)
        if existing is not None and existing.key_id is not None:
            raise OwnerExists(f"owner {name!r} already has an API key; `photopipe keys revoke {name}` first")
        key = self._gateway.create_api_key(
            name=f"{self._stack.settings.stack_name}-{name}",
            description=f"photopipe owner {name}",
            enabled=True,
            tags={"photopipe:owner": name},
        )
        try:
            self._gateway.create_usage_plan_key(
                usagePlanId=self._stack.outputs.UsagePlanId, keyId=key["id"], keyType="API_KEY"
            )
            owners.register_key(name, key["id"])
            owners.set_limits(name, limits or {})
        except BaseException:  # no key without its owner, nor one API Gateway admits
            with contextlib.suppress(self._gateway.exceptions.NotFoundException):
                self._gateway.delete_usage_plan_key(usagePlanId=self._stack.outputs.UsagePlanId, keyId=key["id"])
            self._gateway.delete_api_key(apiKey=key["id"])
            raise
        return CreatedKey(owner=name, key_id=key["id"], value=key["value"])

    def listing(self) -> list[KeyInfo]:
        enabled = {key["id"]: bool(key.get("enabled")) for key in self._gateway_keys()}
        return [_info(owner, enabled) for owner in sorted(self._owners.everyone(), key=lambda owner: owner.name)]

    def revoke(self, name: str) -> str | None:
        """Take the owner's key away (the mapping first, so the API refuses it even before API Gateway does);
        returns its id, or None if the owner had no key. The owner's media stay theirs."""
        key_id = self._owners.revoke_key(name)
        if key_id is not None:
            # out of the plan, then gone (a key left in the plan after it is deleted breaks the plan's checks)
            with contextlib.suppress(self._gateway.exceptions.NotFoundException):
                self._gateway.delete_usage_plan_key(usagePlanId=self._stack.outputs.UsagePlanId, keyId=key_id)
            with contextlib.suppress(self._gateway.exceptions.NotFoundException):
                self._gateway.delete_api_key(apiKey=key_id)
        return key_id

    def webhook_secret(self, name: str, rotate: bool = False) -> str:
        """The owner's webhook secret (made at the first ask; ``rotate``: a new one); ValueError for an owner the
        stack does not have."""
        owners = self._owners
        if owners.get(check_owner_name(name)) is None:
            raise ValueError(f"no owner {name!r} (`photopipe keys list` shows them)")
        return owners.webhook_secret(name, rotate)

    def owner_of_value(self, value: str) -> str | None:
        """The owner of the key with this value (as the API function would find it), or None."""
        key_id = next((key["id"] for key in self._gateway_keys(values=True) if key.get("value") == value), None)
        return self._owners.of_api_key(key_id) if key_id else None

    def _gateway_keys(self, values: bool = False) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = []
        for page in self._gateway.get_paginator("get_api_keys").paginate(includeValues=values):
            keys += page.get("items", [])
        return keys


def _info(owner: Owner, enabled: dict[str, bool]) -> KeyInfo:
    return KeyInfo(
        owner=owner.name,
        key_id=owner.key_id,
        created_at=owner.created_at,
        key_created_at=owner.key_created_at,
        enabled=enabled.get(owner.key_id) if owner.key_id else None,
        limits=owner.limits,
    )


class KeyFile:
    """The CLI's keys, one per API (by its URL), in a file only its user can read (0600, in a 0700 folder under
    the user's config directory)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(click.get_app_dir("photopipe")) / KEY_FILE_NAME

    def get(self, api_url: str) -> str | None:
        entry = self._read().get(api_url)
        return str(entry["key"]) if isinstance(entry, dict) and entry.get("key") else None

    def owner(self, api_url: str) -> str | None:
        entry = self._read().get(api_url)
        return str(entry["owner"]) if isinstance(entry, dict) and entry.get("owner") else None

    def save(self, api_url: str, owner: str, value: str) -> None:
        keys = self._read()
        keys[api_url] = {"owner": owner, "key": value}
        self._write(keys)

    def forget(self, api_url: str) -> None:
        keys = self._read()
        if keys.pop(api_url, None) is not None:
            self._write(keys)

    def _write(self, keys: dict[str, Any]) -> None:
        """Write, fsync, rename: a crash leaves the old file or the new one, never half of one."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")  # created 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(keys, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _read(self) -> dict[str, Any]:
        try:
            keys = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise NoApiKey(f"cannot read the key file {self.path}: {error}") from error
        return keys if isinstance(keys, dict) else {}


def ensure_local_key(stack: Stack, key_file: KeyFile) -> CreatedKey | None:
    """The local stack's operator key in the key file, made if the file has none for this API (a new stack):
    ``photopipe up`` calls this so the CLI, the demo and the README's recipes work without a step by hand.
    Returns the key when one was made."""
    api_url = stack.outputs.ApiUrl
    if key_file.get(api_url) is not None:
        return None
    keys = ApiKeys(stack)
    keys.revoke(OPERATOR)  # its value is nowhere this machine can read it: a new one replaces it
    created = keys.create(OPERATOR, OPERATOR_LIMITS)
    key_file.save(api_url, created.owner, created.value)
    return created


def resolve_key(explicit: str | None, api_url: str, key_file: KeyFile) -> str:
    """The key to send: ``--api-key`` / PHOTOPIPE_API_KEY (click passes either as ``explicit``), else the key
    file's for this API."""
    if explicit:
        return explicit
    saved = key_file.get(api_url)
    if saved is None:
        raise NoApiKey(
            f"no API key for {api_url}: pass --api-key, set {ENV_VAR}, or make one with "
            "`photopipe keys create NAME --save`"
        )
    return saved
