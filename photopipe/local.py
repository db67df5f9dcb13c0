"""Bringing the stack up and down on this machine: embedded LocalStack (default) or the Docker image."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from photopipe.config import ClientSettings
from photopipe.media import reconcile_stack
from photopipe.stack import Stack, StackOutputs
from photopipe_core.reconcile import PROCESSING_MAX_AGE, Reconciled
from photopipe_infra.deploy import Deployed, building_meanwhile, deploy
from photopipe_infra.launcher import DEFAULT_PORT, EmbeddedLocalStack, LauncherError, Started
from photopipe_infra.paths import INFRA_DIR

COMPOSE_FILE = INFRA_DIR / "docker-compose.yml"


class DockerUnavailable(LauncherError):
    pass


@dataclass(frozen=True)
class UpResult:
    runtime: str
    started: Started | None
    deployed: Deployed
    outputs: StackOutputs
    seconds: float
    set_aside: Path | None = None  # where `--fresh` moved the saved state
    reconciled: Reconciled | None = None  # what the reconciler did after an unclean stop
    built_alongside: bool = False  # `sam build` ran while LocalStack started


def launcher(settings: ClientSettings) -> EmbeddedLocalStack:
    return EmbeddedLocalStack(port=urlsplit(settings.endpoint_url).port or DEFAULT_PORT)


def docker_engine_error() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        result = subprocess.run(["docker", "info"], check=False, capture_output=True, text=True, timeout=15)  # noqa: S607
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 15 s"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"`docker info` exited with {result.returncode}"
    return None


def up(
    settings: ClientSettings, docker: bool = False, fresh: bool = False, parameters: dict[str, str] | None = None
) -> UpResult:
    """Start LocalStack (or reuse the one running) and deploy the stack; safe to run again. The embedded one
    loads the state it saved when it stopped; ``fresh`` sets that aside first and starts empty. ``parameters``
    (template parameters by name) are deployed with the stack, and kept by later deploys."""
    began = time.monotonic()
    started: Started | None = None
    set_aside: Path | None = None
    # `sam build` needs no LocalStack: when the sources changed since the last build, it runs while LocalStack
    # starts (a fresh clone's first `up` waited for one, then the other), and the deploy finds it done.
    with building_meanwhile(settings.endpoint_url) as built:
        if docker:
            reason = docker_engine_error()
            if reason is not None:
                raise DockerUnavailable(f"--docker needs a Docker engine, and none can be used: {reason}")
            subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "up", "-d", "--wait"], check=True)  # noqa: S607
            runtime = "docker"
        else:
            embedded = launcher(settings)
            if fresh:
                set_aside = embedded.set_saved_state_aside()
            started = embedded.start()
            runtime = "embedded"
        build_seconds = built()
    deployed = deploy(settings.endpoint_url, settings.stack_name, parameters=parameters)
    if build_seconds and deployed.changed:
        deployed = replace(deployed, build_seconds=build_seconds)
    stack = Stack(settings)
    reconciled = None
    if started is not None and started.recovered:
        # LocalStack was killed: what its last snapshot missed is found from the originals, which S3's journal kept
        # (runs it had going were started again as it loaded).
        reconciled = reconcile_stack(stack, grace=timedelta(0), stuck_after=PROCESSING_MAX_AGE)
    return UpResult(
        runtime,
        started,
        deployed,
        stack.outputs,
        time.monotonic() - began,
        set_aside,
        reconciled,
        built_alongside=build_seconds > 0,
    )


def down(settings: ClientSettings, docker: bool = False) -> list[int]:
    """Stop what `up` started; returns the PIDs stopped (embedded) or [] (Docker)."""
    if docker:
        subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "down"], check=True)  # noqa: S607
        return []
    return launcher(settings).stop()
