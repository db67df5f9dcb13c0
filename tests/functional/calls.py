"""Every AWS request a function's code makes in the functional tests, as the IAM action it needs and the resource it
names — what tests/functional/test_least_privilege.py holds the template's policies against.

A botocore handler on every client (``before-parameter-build``: API calls and presigned URLs alike) records the call
under the function whose handler is on the stack: the outermost frame in ``functions/<dir>/`` names it, matched to the
template's ``CodeUri`` and ``Handler``. A call made in a pool thread is the handler's that submitted the work.
"""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS

from photopipe_core.settings import Settings

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"

# Operations whose IAM action is not "<service>:<operation>".
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObjects": "s3:DeleteObject",
}
TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@dataclass(frozen=True, order=True)
class Call:
    """One permission a request needs: the IAM action and what it acts on, as the test's names spell them —
    ``bucket`` (the bucket itself), ``object:<key>``, ``table``, ``index/<name>``, ``queue:<url>``,
    ``state-machine:<arn>``, ``execution:<arn>``, ``event-bus:<name>``."""

    action: str
    resource: str


def _s3(operation: str, params: dict[str, Any]) -> set[Call]:
    action = S3_ACTIONS.get(operation, f"s3:{operation}")
    if operation == "DeleteObjects":
        return {Call(action, f"object:{o['Key']}") for o in params["Delete"]["Objects"]}
    if "Key" in params:
        return {Call(action, f"object:{params['Key']}")}
    prefix = params.get("Prefix")
    return {Call(action, "bucket" if prefix is None else f"bucket?prefix={prefix}")}


def _dynamodb(operation: str, params: dict[str, Any]) -> set[Call]:
    if operation == "TransactWriteItems":
        return {Call(TRANSACT_ACTIONS[kind], "table") for entry in params["TransactItems"] for kind in entry}
    if operation == "TransactGetItems":
        return {Call("dynamodb:GetItem", "table")}
    index = params.get("IndexName")
    return {Call(f"dynamodb:{operation}", f"index/{index}" if index else "table")}


def _sqs(operation: str, params: dict[str, Any]) -> set[Call]:
    return {Call(f"sqs:{operation}", f"queue:{params['QueueUrl']}")}


def _sfn(operation: str, params: dict[str, Any]) -> set[Call]:
    if "executionArn" in params:
        return {Call(f"states:{operation}", f"execution:{params['executionArn']}")}
    return {Call(f"states:{operation}", f"state-machine:{params['stateMachineArn']}")}


def _events(operation: str, params: dict[str, Any]) -> set[Call]:
    return {Call(f"events:{operation}", f"event-bus:{entry['EventBusName']}") for entry in params["Entries"]}


PERMISSIONS = {"s3": _s3, "dynamodb": _dynamodb, "sqs": _sqs, "stepfunctions": _sfn, "events": _events}


def permissions(service: str, operation: str, params: dict[str, Any]) -> set[Call]:
    """What IAM checks for one request (``service`` as botocore names it: s3, dynamodb, sqs, stepfunctions, events)."""
    return PERMISSIONS[service](operation, params)


class CallRecorder:
    """The permissions each function's code used, and the settings it read, keyed by the function's directory and
    handler (``("outcome", "reject_handler")``; the API app is ``("api", "app")``)."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], set[Call]] = defaultdict(set)
        self.settings: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.submitted_by = threading.local()  # a pool thread's: the handler whose work it runs

    def setting_read(self, name: str) -> None:
        handler = self._handler_on_stack()
        if handler is not None:
            self.settings[handler].add(name)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        handler = self._handler_on_stack()
        if handler is not None:
            service = model.service_model.service_name
            self.calls[handler] |= permissions(service, model.name, params)

    def _handler_on_stack(self) -> tuple[str, str] | None:
        found = getattr(self.submitted_by, "handler", None)
        frame = sys._getframe(1)
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if path.parent.parent == FUNCTIONS_DIR:
                directory = path.parent.name
                found = (directory, "app") if directory == "api" else (directory, frame.f_code.co_name)
            frame = frame.f_back  # type: ignore[assignment]
        return found


RECORDER = CallRecorder()


def _settings_read(self: Settings, name: str) -> Any:
    if name in Settings.model_fields:
        RECORDER.setting_read(name)
    return object.__getattribute__(self, name)


_submit = ThreadPoolExecutor.submit


def _submit_for_handler(pool: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    handler = RECORDER._handler_on_stack()

    def run_for_handler() -> Any:
        RECORDER.submitted_by.handler = handler
        try:
            return fn(*args, **kwargs)
        finally:
            RECORDER.submitted_by.handler = None

    return _submit(pool, run_for_handler)


def install() -> None:
    """Every botocore session made from now on records through RECORDER (moto installs its own stub this way), and
    so does every read of a Settings field and every call a handler's pool thread makes."""
    if ("before-parameter-build", RECORDER) not in BUILTIN_HANDLERS:
        BUILTIN_HANDLERS.append(("before-parameter-build", RECORDER))
    Settings.__getattribute__ = _settings_read  # type: ignore[method-assign,assignment]
    ThreadPoolExecutor.submit = _submit_for_handler  # type: ignore[method-assign]
