"""Lambda runtime for one execution environment, run as a host process by the process executor.

This file is executed by path in a clean interpreter (``python -I -u lambda_bootstrap.py``) that has only what
the AWS Python runtime has (boto3) plus the function's code and layers. It therefore uses the standard library
only and imports nothing from this package.

Protocol, one JSON document per line over two pipes the executor opens for it:
- it reads invocations from file descriptor ``$LAMBDA_PROCESS_INVOKE_FD``:
  ``{"invoke-id", "invoked-function-arn", "payload", "trace-id"}``; end of file means stop;
- it writes to ``$LAMBDA_PROCESS_RESULT_FD`` ``{"ready": true}`` once the handler is loaded (or failed to load), then
  one ``{"request_id", "error": false|true, "body"}`` per invocation, ``body`` being the result or error document.

Handlers run one at a time on the main thread, as in AWS. Timeouts and crashes are handled by the executor,
which owns this process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

PARENT_POLL_SECONDS = 0.5


class LambdaContext:
    """The ``context`` object handed to a handler, with the attributes of the AWS Python runtime."""

    def __init__(self, request_id: str, invoked_function_arn: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class RuntimeClient:
    """Writes to the executor's result pipe."""

    def __init__(self, fd: int) -> None:
        self._results = os.fdopen(fd, "wb")

    def _send(self, message: dict[str, Any]) -> None:
        self._results.write(json.dumps(message).encode() + b"\n")
        self._results.flush()

    def ready(self) -> None:
        self._send({"ready": True})

    def response(self, request_id: str, body: bytes) -> None:
        self._send({"request_id": request_id, "error": False, "body": body.decode()})

    def error(self, request_id: str, error: dict[str, Any]) -> None:
        self._send({"request_id": request_id, "error": True, "body": json.dumps(error)})


def error_body(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The error document of the AWS Python runtime; the trace starts in the function's code, not in this file."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    frames = traceback.extract_tb(tb)
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


def load_handler(spec: str) -> Any:
    """Import ``module.function`` the way the AWS runtime does (``a/b.handler`` and ``a.b.handler`` both work)."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise ValueError(f"Bad handler '{spec}': expected 'module.function'")
    module = importlib.import_module(module_name.replace("/", "."))
    try:
        return getattr(module, function_name)
    except AttributeError as exc:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'") from exc


def exit_with_parent() -> None:
    """Stop this process when the LocalStack process that started it is gone (we would be re-parented)."""
    parent = os.getppid()
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def run_invocation(client: RuntimeClient, handler: Any, init_error: dict[str, Any] | None, inv: dict[str, Any]) -> None:
    request_id = inv["invoke-id"]
    timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
    if inv.get("trace-id"):
        os.environ["_X_AMZN_TRACE_ID"] = inv["trace-id"]
    if init_error is not None:
        flush_output()
        client.error(request_id, dict(init_error, requestId=request_id))
        return
    context = LambdaContext(request_id, inv.get("invoked-function-arn", ""), time.time() + timeout)
    try:
        event = json.loads(inv["payload"]) if inv.get("payload") else {}
        result = handler(event, context)
        try:
            body = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            raise MarshalError(f"Unable to marshal response: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - every handler error is reported to the caller, as AWS does
        error = error_body(exc, "Runtime.MarshalError" if isinstance(exc, MarshalError) else None)
        error["requestId"] = request_id
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        print("Traceback (most recent call last):", *error["stackTrace"], sep="\n", file=sys.stderr)
        flush_output()
        client.error(request_id, error)
        return
    flush_output()
    client.response(request_id, body)


class MarshalError(Exception):
    pass


def main() -> None:
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    extra_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # -I drops the script's folder and PYTHONPATH from sys.path; put back what the AWS runtime has, in its order.
    sys.path[:0] = [task_root, *[p for p in extra_paths if p != task_root]]
    os.chdir(task_root)

    result_fd = int(os.environ.pop("LAMBDA_PROCESS_RESULT_FD"))
    invoke_fd = int(os.environ.pop("LAMBDA_PROCESS_INVOKE_FD"))
    for fd in (result_fd, invoke_fd):
        os.set_inheritable(fd, False)  # not for whatever the handler starts
    client = RuntimeClient(result_fd)
    invocations = os.fdopen(invoke_fd, "rb")
    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()

    handler = None
    init_error: dict[str, Any] | None = None
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except Exception as exc:  # noqa: BLE001 - reported on every invoke, like the AWS runtime does
        init_error = error_body(exc, "Runtime.ImportModuleError" if isinstance(exc, ImportError) else None)
        init_error["errorMessage"] = f"Unable to import module '{os.environ['_HANDLER']}': {exc}"
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
    flush_output()
    client.ready()

    for line in invocations:
        run_invocation(client, handler, init_error, json.loads(line))


if __name__ == "__main__":
    main()
