"""The tools photopipe runs from its own venvs (the SAM CLI, cfn-lint, checkov) get an environment free of the
caller's Python settings: with PYTHONDONTWRITEBYTECODE set, the SAM CLI compiled some 2,000 modules from source on
every `sam build` and every `sam deploy`, about four seconds each on a small machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from photopipe_infra import deploy, venvs


def test_a_tool_environment_keeps_everything_but_the_callers_python_settings() -> None:
    caller = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": "/elsewhere",
        "PYTHONHOME": "/x",
        "HOME": "/root",
        "PATH": "/bin",
    }
    assert venvs.tool_environment(caller) == {"HOME": "/root", "PATH": "/bin"}


def test_a_tool_run_in_that_environment_keeps_its_compiled_modules() -> None:
    caller = {"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    probe = [sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"]
    assert subprocess.run(probe, env=caller, capture_output=True, text=True, check=True).stdout.strip() == "True"
    tool = venvs.tool_environment(caller)
    assert subprocess.run(probe, env=tool, capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_sam_cli_runs_without_the_callers_python_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = deploy.local_environment("http://localhost:4566")
    assert not [name for name in env if name.startswith("PYTHON")]
    assert env["AWS_ENDPOINT_URL"] == "http://localhost:4566"
