"""`sam build` runs once per set of sources: a second deploy of the same sources (another stack, `up --fresh`)
deploys the build that is there, a change to any source builds again, and a build that failed is never reused."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from photopipe_infra import deploy, venvs


class FakeSam:
    """Stands in for the SAM CLI's `sam build`: writes what it builds, or fails when told to."""

    def __init__(self) -> None:
        self.builds = 0
        self.fail = False

    def run(self, argv: list[str], cwd: Path, **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1] == "build"
        self.builds += 1
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, "", "Build Failed")
        out = Path(cwd) / deploy.BUILD_DIR
        out.mkdir(parents=True, exist_ok=True)
        (out / "template.yaml").write_text((Path(cwd) / "template.yaml").read_text())
        return subprocess.CompletedProcess(argv, 0, "Build Succeeded", "")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FakeSam]:
    for name in ("statemachine", "functions/api", "layers/common"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / "samconfig.toml").write_text("version = 0.1\n")
    (tmp_path / "functions" / "api" / "app.py").write_text("def handler(event, context): ...\n")
    sam = FakeSam()
    monkeypatch.setattr(deploy.subprocess, "run", sam.run)
    monkeypatch.setattr(deploy.venvs, "ensure", lambda spec: spec)
    return tmp_path, sam


def test_the_same_sources_are_built_once(project: tuple[Path, FakeSam]) -> None:
    root, sam = project
    assert not deploy.is_built(root)
    assert deploy.build("http://localhost:4566", root) > 0
    assert deploy.is_built(root)
    assert deploy.build("http://localhost:4566", root) == 0.0
    assert sam.builds == 1


def test_a_changed_source_is_built_again(project: tuple[Path, FakeSam]) -> None:
    root, sam = project
    deploy.build("http://localhost:4566", root)
    (root / "functions" / "api" / "app.py").write_text("def handler(event, context): return 1\n")
    assert not deploy.is_built(root)
    deploy.build("http://localhost:4566", root)
    assert sam.builds == 2
    assert deploy.is_built(root)


def test_a_new_sam_cli_builds_again(project: tuple[Path, FakeSam], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = project
    deploy.build("http://localhost:4566", root)
    monkeypatch.setattr(venvs.VenvSpec, "fingerprint", lambda self: "another SAM CLI")
    assert not deploy.is_built(root)


def test_a_failed_build_is_not_reused(project: tuple[Path, FakeSam]) -> None:
    root, sam = project
    deploy.build("http://localhost:4566", root)
    (root / "template.yaml").write_text("Resources: {Broken: {}}\n")
    sam.fail = True
    with pytest.raises(deploy.DeployError, match="sam build"):
        deploy.build("http://localhost:4566", root)
    (root / "template.yaml").write_text("Resources: {}\n")  # back to the sources of the first, good build
    assert not deploy.is_built(root)  # its output was overwritten half-way: build again
    sam.fail = False
    deploy.build("http://localhost:4566", root)
    assert sam.builds == 3


def test_the_build_runs_while_the_body_does_and_its_failure_is_raised_where_it_is_awaited(
    project: tuple[Path, FakeSam], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, sam = project
    started = threading.Event()
    release = threading.Event()
    run = sam.run

    def slow_build(argv: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        started.set()
        assert release.wait(5)
        return run(argv, cwd, **kwargs)

    monkeypatch.setattr(deploy.subprocess, "run", slow_build)
    with deploy.building_meanwhile("http://localhost:4566", root) as built:
        assert started.wait(5)  # building while the body (LocalStack's start) has not finished
        release.set()
        assert built() > 0
    assert deploy.is_built(root) and sam.builds == 1
    with deploy.building_meanwhile("http://localhost:4566", root) as built:
        assert built() == 0.0  # nothing to build
    (root / "template.yaml").write_text("Resources: {Broken: {}}\n")
    sam.fail = True
    with pytest.raises(deploy.DeployError), deploy.building_meanwhile("http://localhost:4566", root) as built:
        built()
