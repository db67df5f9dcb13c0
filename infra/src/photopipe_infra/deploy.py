"""Build and deploy the SAM stack to a LocalStack endpoint with the SAM CLI (no container builds)."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from photopipe_infra import venvs
from photopipe_infra.paths import PROJECT_ROOT

LOG = logging.getLogger(__name__)

# What the deployed stack is built from; a change in any of these means build and deploy again.
SOURCES = ("template.yaml", "samconfig.toml", "statemachine", "functions", "layers")
SOURCE_TAG = "photopipe:source"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Deployed:
    stack_name: str
    changed: bool


def source_fingerprint(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        base = root / name
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for path in files:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def local_environment(endpoint: str) -> dict[str, str]:
    """The environment for the SAM CLI and boto3 against LocalStack (aws cloudformation package needs the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "SAM_CLI_TELEMETRY": "0"}


def deployed_fingerprint(endpoint: str, stack_name: str) -> str | None:
    cfn = boto3.client(
        "cloudformation",
        endpoint_url=endpoint,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError:
        return None
    if not stack["StackStatus"].endswith("_COMPLETE") or "ROLLBACK" in stack["StackStatus"]:
        return None
    return next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == SOURCE_TAG), None)


def deploy(endpoint: str, stack_name: str = "photopipe", force: bool = False) -> Deployed:
    """``sam build`` + ``sam deploy`` unless the stack is already deployed from the same sources."""
    fingerprint = source_fingerprint()
    if not force and deployed_fingerprint(endpoint, stack_name) == fingerprint:
        return Deployed(stack_name=stack_name, changed=False)
    sam = venvs.ensure(venvs.SAM)
    env = local_environment(endpoint)
    # SAM's Python builder looks for `python3.13` on PATH; the SAM venv's own interpreter is one.
    env["PATH"] = f"{sam.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    commands = [
        [str(sam.bin("sam")), "build"],
        [
            str(sam.bin("sam")),
            "deploy",
            "--stack-name",
            stack_name,
            "--parameter-overrides",
            f"Target=localstack LocalEndpoint={endpoint}",
            "--tags",
            f"{SOURCE_TAG}={fingerprint}",
            "--no-progressbar",
        ],
    ]
    for command in commands:
        result = subprocess.run(command, check=False, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)  # noqa: S603
        if result.returncode != 0:
            raise DeployError(f"`{' '.join(command[:2])}` failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        LOG.debug("%s", result.stdout)
    return Deployed(stack_name=stack_name, changed=True)
