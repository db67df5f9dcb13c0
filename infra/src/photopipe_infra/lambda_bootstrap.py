"""Lambda runtime for one execution environment, run as a host process by the process executor.

This file is executed by path in a clean interpreter (``python -I -u lambda_bootstrap.py``) that has only what
the AWS Python runtime has (boto3) plus the function's code and layers. It therefore uses the standard library
only and imports nothing from this package.

Protocol (LocalStack's executor protocol):
- it serves ``POST /invoke`` on ``127.0.0.1:$LAMBDA_PROCESS_PORT``; the body is
  ``{"invoke-id", "invoked-function-arn", "payload", "trace-id"}``;
- it reports ``POST {LOCALSTACK_RUNTIME_ENDPOINT}/status/{LOCALSTACK_RUNTIME_ID}/ready`` once the handler is loaded;
- it posts each result to ``…/invocations/{id}/response`` or ``…/invocations/{id}/error``.

Handlers run one at a time on the main thread, as in AWS. Timeouts and crashes are handled by the executor,
which owns this process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import queue
import sys
import threading
import time
import traceback
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    """Talks back to LocalStack's executor endpoint."""

    def __init__(self, endpoint: str, runtime_id: str) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._runtime_id = runtime_id
        # Calls to LocalStack must never go through a proxy the host may have configured.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            f"{self._endpoint}{path}", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with self._opener.open(request, timeout=30) as response:
            response.read()

    def ready(self) -> None:
        self._post(f"/status/{self._runtime_id}/ready", b"{}")

    def response(self, request_id: str, body: bytes) -> None:
        self._post(f"/invocations/{request_id}/response", body)

    def error(self, request_id: str, error: dict[str, Any]) -> None:
        self._post(f"/invocations/{request_id}/error", json.dumps(error).encode())


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


class InvokeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, invocations: queue.Queue[dict[str, Any]]) -> None:
        self.invocations = invocations
        super().__init__(("127.0.0.1", port), InvokeRequestHandler)


class InvokeRequestHandler(BaseHTTPRequestHandler):
    server: InvokeServer

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        if self.path != "/invoke":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        length = int(self.headers.get("Content-Length") or 0)
        self.server.invocations.put(json.loads(self.rfile.read(length)))
        self.send_response(HTTPStatus.ACCEPTED)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        return


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

    client = RuntimeClient(os.environ["LOCALSTACK_RUNTIME_ENDPOINT"], os.environ["LOCALSTACK_RUNTIME_ID"])
    invocations: queue.Queue[dict[str, Any]] = queue.Queue()
    server = InvokeServer(int(os.environ["LAMBDA_PROCESS_PORT"]), invocations)
    threading.Thread(target=server.serve_forever, name="invoke-server", daemon=True).start()
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

    while True:
        run_invocation(client, handler, init_error, invocations.get())


if __name__ == "__main__":
    main()
