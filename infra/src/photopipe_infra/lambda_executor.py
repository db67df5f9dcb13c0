"""A LocalStack Lambda runtime executor that runs Python functions as host processes (no Docker engine needed).

Selected with ``LAMBDA_RUNTIME_EXECUTOR=process``; the clean interpreter is ``LAMBDA_PROCESS_PYTHON``.
One execution environment is one process running ``lambda_bootstrap.py``. The executor owns what the
Docker init binary does elsewhere: it enforces the function timeout, notices a crashed process, replaces
a dead process before the next invoke, and turns the process's output into the invocation's log.
"""

from __future__ import annotations

import collections
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
from typing import BinaryIO, ClassVar

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from photopipe_infra.launcher import default_lambda_processes

LOG = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
PYTHON_ENV_VAR = "LAMBDA_PROCESS_PYTHON"
# How many processes one function version may run at once (default: the host's cores, at least 2).
MAX_PROCESSES_ENV_VAR = "LAMBDA_PROCESS_MAX_PER_FUNCTION"
# Seconds between liveness checks of the process while an invocation is in flight.
POLL_SECONDS = 0.02
# Seconds a process gets to exit on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 1.0
# How long an invocation waits at most for a warm process before it starts another (see ProcessPool), and the
# guess of a start's time before one was measured (a photopipe function starts in 0.5-1 s on a busy host).
MAX_PATIENCE_SECONDS = 1.0
# The process reads invocations from, and writes results to, these file descriptors (see lambda_bootstrap.py).
INVOKE_FD_ENV_VAR = "LAMBDA_PROCESS_INVOKE_FD"
RESULT_FD_ENV_VAR = "LAMBDA_PROCESS_RESULT_FD"


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


class LambdaProcess:
    """One runtime process: a warm execution environment, with its two pipes and its own output file.

    Invocations go to the process as JSON lines on one pipe and results come back as JSON lines on another: no
    HTTP server in the process and no trip through LocalStack's gateway for each result (each of those cost
    LocalStack a few milliseconds of its one interpreter per invocation).
    """

    def __init__(self, function_version: FunctionVersion, env: dict[str, str]) -> None:
        self.function_version = function_version
        self.workdir = Path(tempfile.mkdtemp(prefix=f"lambda-{function_version.id.function_name}-"))
        self.log_path = self.workdir / "output.log"
        self._log_offset = 0
        tmp = self.workdir / "tmp"
        tmp.mkdir()
        self.env = {**env, "TMPDIR": str(tmp), "HOME": str(tmp)}
        self.popen: subprocess.Popen[bytes] | None = None
        self._invocations: BinaryIO | None = None
        self._ready: Future[None] = Future()
        self._result: tuple[str, Future[InvocationResult]] | None = None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        """Start the process and wait until it reports ready (or dies trying)."""
        invoke_read, invoke_write = os.pipe()
        result_read, result_write = os.pipe()
        try:
            with self.log_path.open("ab") as log:
                self.popen = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    [str(lambda_python()), "-I", "-u", str(BOOTSTRAP)],
                    env={**self.env, INVOKE_FD_ENV_VAR: str(invoke_read), RESULT_FD_ENV_VAR: str(result_write)},
                    cwd=self.env["LAMBDA_TASK_ROOT"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(invoke_read, result_write),
                    start_new_session=True,  # its own process group, so a timeout kills whatever it started too
                )
        except BaseException:
            os.close(invoke_write)
            os.close(result_read)
            raise
        finally:
            os.close(invoke_read)  # the process's ends: only it holds them now, so its exit is our EOF
            os.close(result_write)
        self._invocations = os.fdopen(invoke_write, "wb")
        results = os.fdopen(result_read, "rb")
        reader = threading.Thread(target=self._read_results, args=(results,), name=f"lambda-{self.popen.pid}")
        reader.daemon = True
        reader.start()
        LOG.debug("Started Lambda process %s for %s", self.popen.pid, self.function_version.qualified_arn)
        while True:
            try:
                self._ready.result(timeout=POLL_SECONDS)
                return
            except FutureTimeout:
                if self.popen.poll() is not None:
                    raise LambdaRuntimeException(
                        f"Runtime process exited during start ({describe_exit(self.popen.returncode)}): "
                        f"{self.read_new_output()[-2000:]}"
                    ) from None

    def _read_results(self, results: BinaryIO) -> None:
        """Hand each line the process writes to whoever waits for it; ends when the process is gone."""
        with results:
            for line in results:
                try:
                    message = json.loads(line)
                except ValueError:
                    LOG.warning("Lambda process %s wrote a line that is not JSON to its result pipe", self.pid)
                    continue
                if message.get("ready"):
                    self._ready.set_result(None)
                    continue
                waiting = self._result
                if waiting is None or waiting[0] != message["request_id"] or waiting[1].done():
                    LOG.warning("Lambda process %s answered an invocation nobody waits for", self.pid)
                    continue
                body = message["body"].encode()
                waiting[1].set_result(InvocationResult(waiting[0], body, is_error=message["error"], logs=None))

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        """Run one invocation; the function's timeout counts from the moment the process receives it."""
        assert self.popen is not None and self._invocations is not None
        request_id = payload["invoke-id"]
        timeout = float(self.function_version.config.timeout)
        future: Future[InvocationResult] = Future()
        self._result = (request_id, future)
        started = time.monotonic()
        with contextlib.suppress(BrokenPipeError):  # the process is gone: noticed just below
            self._invocations.write(json.dumps(payload).encode() + b"\n")
            self._invocations.flush()
        deadline = started + timeout
        result: InvocationResult | None = None
        failure = ""
        while result is None:
            try:
                result = future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                if self.popen.poll() is not None:
                    failure = f"Runtime exited with error: {describe_exit(self.popen.returncode)}"
                    result = error_result(request_id, "Runtime.ExitError", f"RequestId: {request_id} Error: {failure}")
                elif time.monotonic() >= deadline:
                    self.kill()
                    failure = f"Task timed out after {timeout:.2f} seconds"
                    result = error_result(request_id, "Sandbox.Timedout", f"RequestId: {request_id} Error: {failure}")
        self._result = None
        duration_ms = (time.monotonic() - started) * 1000
        return dataclasses.replace(result, logs=self._invocation_log(request_id, duration_ms, failure))

    def _invocation_log(self, request_id: str, duration_ms: float, failure: str) -> str:
        version = self.function_version.id.qualifier
        output = self.read_new_output()
        if output and not output.endswith("\n"):
            output += "\n"
        memory = self.function_version.config.memory_size
        used = peak_rss_mb(self.popen.pid) if self.popen is not None and self.alive else None
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

    def read_new_output(self) -> str:
        with contextlib.suppress(OSError), self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
            self._log_offset += len(data)
            return data.decode(errors="replace")
        return ""

    def output(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def kill(self) -> None:
        process = self.popen
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

    def close(self) -> None:
        self.kill()
        if self._invocations is not None:
            with contextlib.suppress(OSError):
                self._invocations.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def error_result(request_id: str, error_type: str, message: str) -> InvocationResult:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return InvocationResult(request_id=request_id, payload=body, is_error=True, logs=None)


def max_processes() -> int:
    value = os.environ.get(MAX_PROCESSES_ENV_VAR, "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return default_lambda_processes()


@dataclasses.dataclass
class _Waiter:
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    process: LambdaProcess | None = None


class ProcessPool:
    """The runtime processes of one function version: at most ``size`` of them, reused warm, handed out first come
    first served. LocalStack opens an execution environment per concurrent invocation; on a small host that would
    be a new interpreter (and a cold start) for each, all fighting for the same cores. Here the environments share
    the pool, so extra concurrent invocations wait for a warm process instead.

    A free slot is not used at once while the function has a process: the invocation first waits as long as a
    process takes to start (``start_seconds``: the last start measured, at most ``MAX_PATIENCE_SECONDS``, which is
    also the guess while the first process is still starting) for one to come back. Short invocations (most of
    photopipe's steps take 5-50 ms) are then served warm by one or two processes — the demo's eight photos ran on
    10 processes instead of 18 — and each cold start not made saves an interpreter's imports and first clients
    (≈ 0.5 CPU-s on an idle host); long ones (Resize) wait that long once, then get their process.
    """

    _pools: ClassVar[dict[tuple[str, str], ProcessPool]] = {}
    _pools_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: tuple[str, str], size: int) -> None:
        self.key = key
        self.size = size
        self._lock = threading.Lock()
        self._idle: list[LambdaProcess] = []
        self._slots_taken = 0  # processes alive, starting, or in use
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._users = 0
        self._closed = False
        self.start_seconds = MAX_PATIENCE_SECONDS

    @classmethod
    def attach(cls, function_version: FunctionVersion) -> ProcessPool:
        key = (function_version.qualified_arn, function_version.config.revision_id)
        with cls._pools_lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = ProcessPool(key, max_processes())
            pool._users += 1
            return pool

    def detach(self) -> None:
        """One environment fewer; the last one out stops the processes."""
        with self._pools_lock:
            self._users -= 1
            if self._users > 0:
                return
            self._pools.pop(self.key, None)
        self.close()

    def acquire(self) -> LambdaProcess | None:
        """A warm process, or None when the caller holds a free slot and must start a process itself."""
        dead: list[LambdaProcess] = []
        try:
            with self._lock:
                if self._closed:
                    raise LambdaRuntimeException("The function's processes are stopped")
                if not self._waiters:
                    while self._idle:
                        process = self._idle.pop()  # the most recently used: the warmest
                        if process.alive:
                            return process
                        dead.append(process)  # died while idle (killed, out of memory): its slot is free again
                        self._slots_taken -= 1
                    if self._slots_taken == 0:  # no process to wait for
                        self._slots_taken += 1
                        return None
                waiter = _Waiter()
                self._waiters.append(waiter)
        finally:
            for process in dead:
                process.close()
        if not waiter.ready.wait(min(self.start_seconds, MAX_PATIENCE_SECONDS)):
            with self._lock:
                # No process came back in the time one takes to start: take a free slot if there is one, else
                # keep this place in the line (first come, first served: the longest waiting goes first).
                if not waiter.ready.is_set() and self._slots_taken < self.size and not self._closed:
                    self._waiters.remove(waiter)
                    self._slots_taken += 1
                    return None
            waiter.ready.wait()
        if self._closed and waiter.process is None:
            raise LambdaRuntimeException("The function's processes are stopped")
        return waiter.process

    def release(self, process: LambdaProcess | None) -> None:
        """Give back a process (or, with None or a dead process, the slot of one that is gone)."""
        if process is not None and (not process.alive or self._closed):
            process.close()
            process = None
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.process = process  # None: the slot passes on, the waiter starts a process
                waiter.ready.set()
                return
            if process is None:
                self._slots_taken -= 1
            else:
                self._idle.append(process)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            waiters, self._waiters = list(self._waiters), collections.deque()
        for waiter in waiters:
            waiter.ready.set()
        for process in idle:
            process.close()


class ProcessRuntimeExecutor(RuntimeExecutor):
    """One LocalStack execution environment; its invocations run in the function version's process pool."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002 - LocalStack's signature
        super().__init__(id=id, function_version=function_version)
        self._env: dict[str, str] = {}
        self._pool: ProcessPool | None = None
        self._current: LambdaProcess | None = None
        self._last: LambdaProcess | None = None
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, env_vars: dict[str, str]) -> None:
        runtime = self.function_version.config.runtime or ""
        if not runtime.startswith("python"):
            raise LambdaRuntimeException(f"The process executor runs Python functions only, not '{runtime}'")
        self._env = self._process_env(env_vars)
        self._pool = ProcessPool.attach(self.function_version)

    def stop(self) -> None:
        self._stopped = True
        current = self._current
        if current is not None:
            current.kill()  # the invocation in flight ends as a crash; its process is not reused
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.detach()

    def _process_env(self, env_vars: dict[str, str]) -> dict[str, str]:
        code_dir = str(self.function_version.config.code.get_unzipped_code_location())
        paths = [code_dir]
        runtime = self.function_version.config.runtime
        for layer in self.function_version.config.layers:
            root = layer.code.get_unzipped_code_location()
            paths += [str(root / "python" / "lib" / runtime / "site-packages"), str(root / "python")]
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            **{k: str(v) for k, v in env_vars.items()},
            "LAMBDA_TASK_ROOT": code_dir,
            "PYTHONPATH": os.pathsep.join(paths),
        }

    # --- invocation ------------------------------------------------------------------------------------------
    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        pool = self._pool
        if self._stopped or pool is None:
            raise LambdaRuntimeException(f"Execution environment {self.id} is stopped")
        process = pool.acquire()
        try:
            if process is None:  # a free slot: this invocation is a cold start
                process = LambdaProcess(self.function_version, self._env)
                self._last = process
                began = time.monotonic()
                process.start()
                pool.start_seconds = time.monotonic() - began
            self._current = self._last = process
            return process.invoke(payload)
        finally:
            self._current = None
            pool.release(process)

    # --- addresses -------------------------------------------------------------------------------------------
    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        # Processes report through their result pipe; LocalStack only puts this address in their environment.
        port = config.GATEWAY_LISTEN[0].port
        return f"http://127.0.0.1:{port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        return self._last.output() if self._last is not None else ""

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
