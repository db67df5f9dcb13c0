"""A LocalStack Lambda runtime executor that runs Python functions as host processes (no Docker engine needed).

Selected with ``LAMBDA_RUNTIME_EXECUTOR=process``; the clean interpreter is ``LAMBDA_PROCESS_PYTHON``.
One execution environment is one process running ``lambda_bootstrap.py``. The executor owns what the
Docker init binary does elsewhere: it enforces the function timeout, notices a crashed process, replaces
a dead process before the next invoke, and turns the process's output into the invocation's log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import requests
from localstack import config
from localstack.services.lambda_.invocation.executor_endpoint import ExecutorEndpoint
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor
from localstack.utils.net import get_free_tcp_port

LOG = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
PYTHON_ENV_VAR = "LAMBDA_PROCESS_PYTHON"
# Seconds between liveness checks of the process while an invocation is in flight.
POLL_SECONDS = 0.02
# Seconds a process gets to exit on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 1.0
NO_PROXY = {"http": "", "https": ""}


def lambda_python() -> Path:
    value = os.environ.get(PYTHON_ENV_VAR, "")
    if not value or not Path(value).is_file():
        raise LambdaRuntimeException(
            f"{PYTHON_ENV_VAR} must name the Python interpreter that runs Lambda handlers (got '{value}')"
        )
    return Path(value)


# How the AWS runtime words the common fatal signals (Go's names for them).
SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
}


def describe_exit(returncode: int) -> str:
    """'exit status 3' or 'signal: killed', as AWS reports a runtime that exited."""
    if returncode < 0:
        number = signal.Signals(-returncode)
        return f"signal: {SIGNAL_WORDS.get(number, number.name.removeprefix('SIG').lower())}"
    return f"exit status {returncode}"


def peak_rss_mb(pid: int) -> int | None:
    """Peak resident memory of a live process (VmHWM), in MB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return math.ceil(int(line.split()[1]) / 1024)
    return None


class ProcessRuntimeExecutor(RuntimeExecutor):
    """Runs one execution environment as one host process."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002 - LocalStack's signature
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(self.id, container_address="127.0.0.1", container_port=None)
        self._env: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix=f"lambda-{function_version.id.function_name}-"))
        self._log_path = self._workdir / "output.log"
        self._log_offset = 0
        self._lock = threading.Lock()
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        runtime = self.function_version.config.runtime or ""
        if not runtime.startswith("python"):
            raise LambdaRuntimeException(f"The process executor runs Python functions only, not '{runtime}'")
        self._env = self._process_env(env_vars)
        self.executor_endpoint.start()
        self._spawn()

    def stop(self) -> None:
        self._stopped = True
        self._kill()
        with contextlib.suppress(Exception):
            self.executor_endpoint.shutdown()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def _process_env(self, env_vars: dict[str, str]) -> dict[str, str]:
        code_dir = str(self.function_version.config.code.get_unzipped_code_location())
        paths = [code_dir]
        runtime = self.function_version.config.runtime
        for layer in self.function_version.config.layers:
            root = layer.code.get_unzipped_code_location()
            paths += [str(root / "python" / "lib" / runtime / "site-packages"), str(root / "python")]
        tmp = self._workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TMPDIR": str(tmp),
            "HOME": str(tmp),
            **{k: str(v) for k, v in env_vars.items()},
            "LAMBDA_TASK_ROOT": code_dir,
            "PYTHONPATH": os.pathsep.join(paths),
        }
        return env

    def _spawn(self) -> None:
        """Start a fresh process and wait until it reports ready (or dies trying)."""
        port = get_free_tcp_port()
        self.executor_endpoint.container_port = port
        if self._process is not None:
            # A replacement: LocalStack's startup future was used by the first process.
            self.executor_endpoint.startup_future = Future()
        self._log_offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [str(lambda_python()), "-I", "-u", str(BOOTSTRAP)],
                env={**self._env, "LAMBDA_PROCESS_PORT": str(port)},
                cwd=self._env["LAMBDA_TASK_ROOT"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout kills whatever it started too
            )
        LOG.debug("Started Lambda process %s for %s", self._process.pid, self.function_version.qualified_arn)
        startup = self.executor_endpoint.startup_future
        while True:
            try:
                startup.result(timeout=POLL_SECONDS)
                return
            except FutureTimeout:
                if self._process.poll() is not None:
                    raise LambdaRuntimeException(
                        f"Runtime process exited during start ({describe_exit(self._process.returncode)}): "
                        f"{self._read_new_output()[-2000:]}"
                    ) from None

    def _kill(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _read_new_output(self) -> str:
        with contextlib.suppress(OSError), self._log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
            self._log_offset += len(data)
            return data.decode(errors="replace")
        return ""

    # --- invocation ------------------------------------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        with self._lock:
            if self._stopped:
                raise LambdaRuntimeException(f"Execution environment {self.id} is stopped")
            if self._process is None or self._process.poll() is not None:
                # The previous process timed out or crashed: this invoke gets a fresh one (a cold start).
                self._spawn()
            return self._invoke(payload)

    def _invoke(self, payload: dict[str, str]) -> InvocationResult:
        assert self._process is not None
        request_id = payload["invoke-id"]
        timeout = float(self.function_version.config.timeout)
        endpoint = self.executor_endpoint
        future: Future[InvocationResult] = Future()
        endpoint.invocation_future = future
        endpoint.logs = None
        started = time.monotonic()
        response = requests.post(
            f"http://127.0.0.1:{endpoint.container_port}/invoke", json=payload, proxies=NO_PROXY, timeout=10
        )
        response.raise_for_status()
        deadline = started + timeout
        result: InvocationResult | None = None
        failure = ""
        while result is None:
            try:
                result = future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                if self._process.poll() is not None:
                    failure = f"Runtime exited with error: {describe_exit(self._process.returncode)}"
                    result = self._error_result(
                        request_id, "Runtime.ExitError", f"RequestId: {request_id} Error: {failure}"
                    )
                elif time.monotonic() >= deadline:
                    self._kill()
                    failure = f"Task timed out after {timeout:.2f} seconds"
                    result = self._error_result(
                        request_id, "Sandbox.Timedout", f"RequestId: {request_id} Error: {failure}"
                    )
        duration_ms = (time.monotonic() - started) * 1000
        logs = self._invocation_log(request_id, duration_ms, failure)
        return dataclasses.replace(result, logs=logs)

    @staticmethod
    def _error_result(request_id: str, error_type: str, message: str) -> InvocationResult:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return InvocationResult(request_id=request_id, payload=body, is_error=True, logs=None)

    def _invocation_log(self, request_id: str, duration_ms: float, failure: str) -> str:
        version = self.function_version.id.qualifier
        output = self._read_new_output()
        if output and not output.endswith("\n"):
            output += "\n"
        memory = self.function_version.config.memory_size
        used = peak_rss_mb(self._process.pid) if self._process and self._process.poll() is None else None
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory} MB"
        )
        if used is not None:
            report += f"\tMax Memory Used: {used} MB"
        lines = [f"START RequestId: {request_id} Version: {version}\n", output]
        if failure:
            lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {request_id} {failure}\n")
        lines += [f"END RequestId: {request_id}\n", report + "\n"]
        return "".join(lines)

    # --- addresses -------------------------------------------------------------------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://127.0.0.1:{port}{self.executor_endpoint.get_endpoint_prefix()}"

    def get_logs(self) -> str:
        with contextlib.suppress(OSError):
            return self._log_path.read_text(errors="replace")
        return ""

    # --- versions --------------------------------------------------------------------------------------------
    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers:
            layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        return

    @classmethod
    def validate_environment(cls) -> bool:
        try:
            lambda_python()
        except LambdaRuntimeException as exc:
            LOG.warning("%s", exc)
            return False
        return True


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "process"

    def load(self, *args: object, **kwargs: object) -> type[RuntimeExecutor]:
        return ProcessRuntimeExecutor
