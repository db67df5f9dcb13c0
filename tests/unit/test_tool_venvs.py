"""The tools photopipe runs from its own venvs (the SAM CLI, cfn-lint, checkov) get an environment free of the
caller's Python settings: with PYTHONDONTWRITEBYTECODE set, the SAM CLI compiled some 2,000 modules from source on
every `sam build` and every `sam deploy`, about four seconds each on a small machine."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def test_threads_that_ensure_one_venv_at_once_make_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOPIPE_STATE_DIR", str(tmp_path))
    spec = venvs.VenvSpec(name="tool-venv", requirements=("some-tool==1.0",), inputs=())
    made: list[str] = []

    def make(spec: venvs.VenvSpec) -> None:
        made.append(spec.name)
        time.sleep(0.3)  # long enough for the other threads to find the venv missing
        spec.python.parent.mkdir(parents=True)
        spec.python.write_text("")
        (spec.path / venvs.STAMP).write_text(spec.fingerprint())

    monkeypatch.setattr(venvs, "_make", make)
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda _: venvs.ensure(spec), range(4)))
    assert made == ["tool-venv"]
    assert all(venvs.is_current(result) for result in done)


def test_a_venv_is_installed_from_uvs_cache_and_from_the_index_only_when_the_cache_lacks_something(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOPIPE_STATE_DIR", str(tmp_path))
    spec = venvs.VenvSpec(name="tool-venv", requirements=("some-tool==1.0",), inputs=())
    calls: list[list[str]] = []
    cached = {"some-tool==1.0"}

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        missing = "--offline" in argv and not set(argv) & cached
        return subprocess.CompletedProcess(argv, 2 if missing else 0)

    monkeypatch.setattr(venvs, "uv", lambda: "/usr/bin/uv")
    monkeypatch.setattr(venvs.subprocess, "run", run)
    venvs._install(spec, "some-tool==1.0")
    assert [call[-2:] for call in calls] == [["--offline", "some-tool==1.0"]]
    calls.clear()
    venvs._install(spec, "another-tool==2.0")
    assert [call[-2:] for call in calls] == [
        ["--offline", "another-tool==2.0"],
        [str(spec.python), "another-tool==2.0"],
    ]


def test_sam_deploy_asks_localstack_about_the_stack_every_half_second() -> None:
    env = deploy.sam_environment("http://localhost:4566")
    assert float(env["SAM_CLI_POLL_DELAY"]) <= 0.5  # noqa: PLR2004 - its default is 5 s, for AWS's API limits
    assert env["PATH"].startswith(str(venvs.SAM.path / "bin"))


def test_a_venv_is_made_with_pip_from_uvs_cache_and_made_again_online_when_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOPIPE_STATE_DIR", str(tmp_path))
    spec = venvs.VenvSpec(name="tool-venv", requirements=(), inputs=())
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        spec.path.mkdir(exist_ok=True)
        if "--offline" in argv:
            (spec.path / "half-made").write_text("")
            return subprocess.CompletedProcess(argv, 2)
        assert not (spec.path / "half-made").exists()  # what the offline try left was removed first
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(venvs, "uv", lambda: "/usr/bin/uv")
    monkeypatch.setattr(venvs, "find_python", lambda: "/usr/bin/python3.13")
    monkeypatch.setattr(venvs.subprocess, "run", run)
    venvs._create(spec)
    assert [("--offline" in call, "--seed" in call) for call in calls] == [(True, True), (False, True)]
