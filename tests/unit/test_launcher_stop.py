"""Stopping processes survives psutil's pidfd wait failing for a process that has just ended."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psutil
import pytest

from photopipe_infra import launcher


def test_waiting_for_processes_to_end_falls_back_to_polling_when_psutil_cannot_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])  # noqa: S603
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # noqa: S603
    try:

        def failing_wait(*args: Any, **kwargs: Any) -> Any:
            raise FileNotFoundError(2, "No such file or directory")  # as pidfd_open raised in a CI run

        monkeypatch.setattr(psutil, "wait_procs", failing_wait)
        processes = [psutil.Process(quick.pid), psutil.Process(slow.pid)]
        alive = launcher.wait_gone(processes, 3)
        assert [p.pid for p in alive] == [slow.pid]
    finally:
        slow.kill()
        quick.wait()
        slow.wait()
