"""Start and stop the embedded LocalStack: the real LocalStack runtime as a host process.

Used by ``photopipe up/down`` and by the integration-test fixture. It starts LocalStack in the background
with the settings that make it work offline and without Docker, keeps its log and PID file in the state
folder, waits for health with a deadline, reuses a healthy instance it started, and stops exactly what it
started (by PID, Lambda processes included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from photopipe_infra import venvs
from photopipe_infra.paths import state_dir
from photopipe_infra.snapshot import SNAPSHOT_ENV, SnapshotError, check_header, read_header, stopped_without_saving

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 4566
START_TIMEOUT_SECONDS = 120.0
# Long enough for the state to be saved at shutdown (seconds for thousands of photos); then it is killed.
STOP_TIMEOUT_SECONDS = 60.0
PERSIST_ENV = "PHOTOPIPE_PERSIST"  # "0": the state lives in memory only, as in LocalStack's own default
REQUEST_LOG_ENV = "PHOTOPIPE_REQUEST_LOG"  # "1": every request in the log (photopipe_infra.request_log)


def default_lambda_processes() -> int:
    """One process per core, plus one (at least three): Lambda work here is CPU-bound and shares the host with
    LocalStack, and the extra process computes while another waits for its S3 reads and writes (measured on
    2 cores, 100-photo batches: 51.4 s with three Resize processes, 56.2 s with two)."""
    return max(2, os.cpu_count() or 2) + 1


class LauncherError(RuntimeError):
    """Something stops LocalStack from starting; the message says what and what to do."""


class PortInUse(LauncherError):
    pass


@dataclass(frozen=True)
class Started:
    pid: int
    reused: bool
    seconds: float
    # It loaded a state whose LocalStack did not stop cleanly: what the last snapshot missed needs the reconciler.
    recovered: bool = False


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for the processes to end; those still running.

    ``psutil.wait_procs`` waits with ``pidfd_open``, which can fail with an OSError (ENOENT was seen) for a process
    that ended at that moment: then the processes are polled instead."""
    try:
        return list(psutil.wait_procs(processes, timeout=timeout)[1])
    except OSError:
        deadline = time.monotonic() + timeout
        alive = [p for p in processes if _running(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in alive if _running(p)]
        return alive


@dataclass
class EmbeddedLocalStack:
    """One embedded LocalStack instance, owned through the PID file in ``folder``."""

    port: int = DEFAULT_PORT
    folder: Path = field(default_factory=lambda: state_dir() / "localstack")
    # Runtime processes per Lambda function version; more concurrent invocations wait for a warm one.
    lambda_processes: int = field(default_factory=default_lambda_processes)
    # Keep the state across restarts (photopipe_infra.persistence) in ``saved_dir``.
    persist: bool = field(default_factory=lambda: os.environ.get(PERSIST_ENV, "1") != "0")
    # Every request in the log, not only failed ones (photopipe_infra.request_log; PHOTOPIPE_REQUEST_LOG=1).
    request_log: bool = field(default_factory=lambda: os.environ.get(REQUEST_LOG_ENV, "") in ("1", "true", "yes"))

    @property
    def pid_file(self) -> Path:
        return self.folder / "localstack.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "localstack.log"

    @property
    def tmp_dir(self) -> Path:
        """LocalStack's TMPDIR: every deploy unzips each function and layer here (≈ 36 MB for photopipe). Nothing
        in it outlives the process (its state is in memory), so it is emptied when an instance starts or stops."""
        return self.folder / "tmp"

    @property
    def saved_dir(self) -> Path:
        """The saved state: the snapshot, S3 objects' bytes, closed executions' histories."""
        return self.folder / "saved"

    @property
    def files_dir(self) -> Path:
        """Where LocalStack keeps the files of its state (S3 objects' bytes, closed runs' histories)."""
        return self.saved_dir if self.persist else self.tmp_dir

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    # --- queries ---------------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """LocalStack's settings: offline, no Docker, Lambdas as host processes, DynamoDB from moto."""
        volume = self.folder / "volume"
        tmp = self.tmp_dir
        for path in (volume, tmp):
            path.mkdir(parents=True, exist_ok=True)
        inherited = {
            key: value
            for key, value in venvs.tool_environment().items()
            if not key.startswith(("AWS_", "VIRTUAL_ENV", "LOCALSTACK_", "LAMBDA_"))
        }
        return {
            **inherited,
            REQUEST_LOG_ENV: "1" if self.request_log else "0",
            "GATEWAY_LISTEN": f"{HOST}:{self.port}",
            "LOCALSTACK_HOST": f"localhost:{self.port}",
            "SQS_ENDPOINT_STRATEGY": "path",
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "S3_SKIP_SIGNATURE_VALIDATION": "0",
            "LOCALSTACK_VOLUME_DIR": str(volume),
            "TMPDIR": str(tmp),
            "LAMBDA_RUNTIME_EXECUTOR": "process",
            "LAMBDA_PROCESS_PYTHON": str(venvs.LAMBDA_PYTHON.python),
            "LAMBDA_PROCESS_MAX_PER_FUNCTION": str(self.lambda_processes),
            "PROVIDER_OVERRIDE_DYNAMODB": "moto",
            "PROVIDER_OVERRIDE_DYNAMODBSTREAMS": "moto",
            # SQS event sources long-poll (photopipe_infra.event_source_polling) and ask again at once after a
            # batch (LocalStack waits 1 s by default: photos sent back to back waited for it); an empty long poll
            # is followed by a short pause only.
            "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC": "0.2",
            "LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC": "0",
            # LocalStack's own calls between services (S3 → EventBridge → SQS, the SQS poller, Step Functions →
            # Lambda, Lambda metrics and logs) go straight into its request pipeline instead of over HTTP to itself:
            # a fifth of its CPU per photo.
            "IN_MEMORY_CLIENT": "1",
            **({SNAPSHOT_ENV: str(self.saved_dir)} if self.persist else {}),
        }

    def owned_pid(self) -> int | None:
        """The PID of the LocalStack this launcher started, if it is still that process (a stale file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            process = psutil.Process(pid)
            if "localstack.runtime.main" in " ".join(process.cmdline()) and process.status() != psutil.STATUS_ZOMBIE:
                return pid
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def is_healthy(self) -> bool:
        """LocalStack answers and has run its start-up hooks to the end (a saved state is loaded and its services
        running again: init's READY stage completes after them)."""
        health = self._get_json("/_localstack/health")
        ready = self._get_json("/_localstack/init/ready")
        return bool(health and "services" in health and ready and ready.get("completed") is True)

    def _get_json(self, path: str) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=2) as response:
                body = json.loads(response.read())
                return body if response.status == 200 and isinstance(body, dict) else None
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def check_saved_state(self) -> None:
        """Refuse a saved state this version cannot load, before anything starts (never half-load one)."""
        if not self.persist:
            return
        try:
            header = read_header(self.saved_dir)
            if header is not None:
                check_header(header, self.saved_dir, venvs.LOCALSTACK_VERSION)
        except SnapshotError as error:
            raise LauncherError(str(error)) from error

    def set_saved_state_aside(self) -> Path | None:
        """Move the saved state aside (``up --fresh``); returns where it went, or None when there was none."""
        if self.owned_pid() is not None:
            raise LauncherError("LocalStack is running: `photopipe down` first, then start it fresh")
        if not self.saved_dir.exists():
            return None
        aside = self.folder / f"saved.{time.strftime('%Y%m%d-%H%M%S')}"
        self.saved_dir.rename(aside)
        return aside

    def port_holder(self) -> str | None:
        """Who listens on the port, as 'PID n (name)', or None when nothing does."""
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((HOST, self.port)) != 0:
                return None
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections("tcp"):
                if conn.laddr and conn.laddr.port == self.port and conn.status == psutil.CONN_LISTEN and conn.pid:
                    return f"PID {conn.pid} ({psutil.Process(conn.pid).name()})"
        return "an unknown process"

    def processes(self) -> list[psutil.Process]:
        """The LocalStack process and everything it started (Lambda runtimes included)."""
        pid = self.owned_pid()
        if pid is None:
            return []
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> Started:
        """Start LocalStack (or reuse the healthy one this launcher started) and wait until it is healthy."""
        began = time.monotonic()
        pid = self.owned_pid()
        if pid is not None and self.is_healthy():
            return Started(pid=pid, reused=True, seconds=time.monotonic() - began)
        if pid is not None:
            LOG.info("LocalStack (PID %s) is not healthy; restarting it", pid)
            self.stop()
        self.pid_file.unlink(missing_ok=True)
        self.check_saved_state()
        recovered = self.persist and stopped_without_saving(self.saved_dir)
        holder = self.port_holder()
        if holder is not None:
            raise PortInUse(
                f"Port {self.port} is already taken by {holder}, which photopipe did not start. "
                f"Stop it (or point photopipe at it with --endpoint-url) and run again."
            )
        # the deploy's SAM venv too: a first start sets them all up at once
        venvs.ensure_all(venvs.LOCALSTACK, venvs.LAMBDA_PYTHON, venvs.SAM)
        localstack = venvs.LOCALSTACK
        # The deadline is for LocalStack's start, not for a first set-up of its venvs (minutes of downloads).
        began = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clear_previous_run()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv
                [str(localstack.python), "-m", "localstack.runtime.main"],
                env=self.environment(),
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed by the terminal's Ctrl-C; stopped by `down`
            )
        self.pid_file.write_text(f"{process.pid}\n")
        deadline = began + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise LauncherError(f"LocalStack exited during start (code {process.returncode}):\n{self.log_tail()}")
            if self.is_healthy():
                return Started(process.pid, reused=False, seconds=time.monotonic() - began, recovered=recovered)
            time.sleep(0.2)
        self.stop()
        raise LauncherError(f"LocalStack was not healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> list[int]:
        """Stop the LocalStack this launcher started and every process it started; return their PIDs."""
        processes = self.processes()
        if not processes:
            self.pid_file.unlink(missing_ok=True)
            return []
        root, *children = processes
        with contextlib.suppress(psutil.Error):
            root.send_signal(signal.SIGTERM)
        alive = wait_gone([root], timeout)
        # Lambda runtimes run in their own sessions; they exit with LocalStack, and whatever is left is killed.
        alive_children = wait_gone(children, 2)
        for process in [*alive, *alive_children]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        wait_gone([*alive, *alive_children], 5)
        self.pid_file.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        return [p.pid for p in processes]

    def _clear_previous_run(self) -> None:
        """Empty what a previous instance left (after a crash, its temporary files too) and keep its log once, as
        ``localstack.log.1``: without this, each start added its unzipped code and its log to the state folder."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""
