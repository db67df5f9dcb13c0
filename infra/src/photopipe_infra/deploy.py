"""Build and deploy the SAM stack to a LocalStack endpoint with the SAM CLI (no container builds)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import ClientError, WaiterError

from photopipe_infra import venvs
from photopipe_infra.paths import PROJECT_ROOT

LOG = logging.getLogger(__name__)

# What the deployed stack is built from; a change in any of these means build and deploy again.
# samconfig.toml's environment for LocalStack; it has no [default], so a bare `sam deploy` goes nowhere.
SAM_CONFIG_ENV = "local"
SOURCES = ("template.yaml", "samconfig.toml", "statemachine", "functions", "layers")
SOURCE_TAG = "photopipe:source"
# The template parameters set with `photopipe up --parameter NAME=VALUE`, by name: they are kept on later deploys.
PARAMETERS_TAG = "photopipe:parameters"
# Set by the deploy itself for this machine (the endpoint, the page's origins…), never by a --parameter.
MANAGED_PARAMETERS = frozenset({"Target", "LocalEndpoint", "PresignEndpoint", "PageOrigins", "WebhookPrivateNetworks"})
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


GOOD_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
FAILED_STATES = frozenset(
    {
        "ROLLBACK_COMPLETE",
        "ROLLBACK_FAILED",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_ROLLBACK_FAILED",
        "CREATE_FAILED",
        "UPDATE_FAILED",
        "DELETE_FAILED",
    }
)
BUILD_TIMEOUT_SECONDS = 1800
DEPLOY_TIMEOUT_SECONDS = 900
# Where `sam deploy` uploads the built code. samconfig's `resolve_s3` would have the SAM CLI create its managed stack
# for a bucket first, and it waits for that stack in steps of 15 s: 15 s of every first deploy to a fresh LocalStack.
ARTIFACTS_BUCKET = "photopipe-deploy-artifacts"
# Where `sam build` puts its output (samconfig's default), and the file that says which sources it is of.
BUILD_DIR = Path(".aws-sam") / "build"
BUILD_MARKER = ".photopipe-build"
SAM_POLL_SECONDS = 0.5


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Deployed:
    stack_name: str
    changed: bool
    build_seconds: float = 0.0  # `sam build`
    deploy_seconds: float = 0.0  # `sam deploy`: the change set and CloudFormation's resources


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


class BadParameter(DeployError):
    pass


def template_parameters(root: Path = PROJECT_ROOT) -> list[str]:
    """The names of the template's parameters (the ``Parameters:`` section's keys, in order)."""
    names: list[str] = []
    inside = False
    for line in (root / "template.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == "Parameters:"
        elif inside and (match := re.match(r"^  ([A-Za-z0-9]+):\s*$", line)):
            names.append(match.group(1))
    return names


def parse_parameters(assignments: list[str], allowed: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` assignments of the template's parameters (those the deploy sets itself excepted)."""
    parameters: dict[str, str] = {}
    settable = [name for name in allowed if name not in MANAGED_PARAMETERS]
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            raise BadParameter(f"{assignment!r} is not NAME=VALUE (as in Variants=thumb:256,medium:1024,xl:3000)")
        if name not in settable:
            raise BadParameter(f"{name!r} is not a parameter that can be set here; these can: {', '.join(settable)}")
        if not value or any(c.isspace() or c in "\"'" for c in value):
            raise BadParameter(f"the value of {name} must be given, without spaces or quotes: {value!r}")
        parameters[name] = value
    return parameters


def kept_parameters(stack: dict[str, Any] | None) -> dict[str, str]:
    """The parameters a deployed stack was given with --parameter (named in its tag; values as deployed)."""
    if stack is None:
        return {}
    named = next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == PARAMETERS_TAG), "")
    values = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return {name: values[name] for name in named.split(",") if name in values}


def deploy_fingerprint(sources: str, parameters: dict[str, str]) -> str:
    """What a deployed stack is tagged with: its sources' fingerprint, and the parameters it was given."""
    if not parameters:
        return sources
    given = "&".join(f"{name}={value}" for name, value in sorted(parameters.items()))
    return f"{sources}-{hashlib.sha256(given.encode()).hexdigest()[:12]}"


def local_environment(endpoint: str) -> dict[str, str]:
    """The environment for the SAM CLI against LocalStack (aws cloudformation package needs the variable)."""
    env = {k: v for k, v in venvs.tool_environment().items() if not k.startswith("AWS_")}
    return {**env, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "SAM_CLI_TELEMETRY": "0"}


def cloudformation(endpoint: str) -> Any:
    return boto3.client(
        "cloudformation",
        endpoint_url=endpoint,
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def describe(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    try:
        return dict(cfn.describe_stacks(StackName=stack_name)["Stacks"][0])
    except ClientError:
        return None


def deployed_fingerprint(endpoint: str, stack_name: str) -> str | None:
    stack = describe(cloudformation(endpoint), stack_name)
    if stack is None or stack["StackStatus"] not in GOOD_STATES:
        return None
    return next((t["Value"] for t in stack.get("Tags", []) if t["Key"] == SOURCE_TAG), None)


def local_parameters(endpoint: str) -> dict[str, str]:
    """The parameters every local deploy has: LocalStack's endpoint, the page's origins, this machine's limit."""
    return {
        "Target": "localstack",
        "LocalEndpoint": endpoint,
        "PresignEndpoint": endpoint,
        "MaxInFlight": str(local_max_in_flight()),
        "PageOrigins": ",".join(page_origins(endpoint)),
        "WebhookPrivateNetworks": "allow",
    }


def local_max_in_flight() -> int:
    """Photos in the pipeline at once on this machine: four per core (at least eight), enough to keep every Lambda
    process busy while others wait on S3 or DynamoDB; more only wait inside LocalStack, each holding threads."""
    return max(8, 4 * (os.cpu_count() or 2))


def page_origins(endpoint: str) -> list[str]:
    """Where the upload page may be opened from (the bucket's CORS): the gateway's origin, by the name given and,
    for this machine, by its other name (localhost and 127.0.0.1 are two origins to a browser)."""
    parts = urlsplit(endpoint)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    twin = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}.get(parts.hostname or "")
    if twin:
        origins.append(f"{parts.scheme}://{twin}" + (f":{parts.port}" if parts.port else ""))
    return origins


def sam_environment(endpoint: str) -> dict[str, str]:
    """The SAM CLI's environment: LocalStack's, its own venv first on PATH, and uv for the layer's packages."""
    env = local_environment(endpoint)
    # SAM's Python builder looks for `python3.13` on PATH; the SAM venv's own interpreter is one.
    env["PATH"] = f"{venvs.SAM.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    fast = venvs.uv()
    if fast is not None:
        env["UV"] = fast  # layers/common/Makefile installs the layer's packages with it
    # `sam deploy` asks about the change set and the stack every 5 s by default (AWS's API limits); LocalStack
    # creates this stack in about 8 s, so a deploy waited up to 5 s for each answer it was already given.
    env["SAM_CLI_POLL_DELAY"] = str(SAM_POLL_SECONDS)
    return env


def build_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """What `sam build`'s output is made from: the sources, and the SAM CLI that built them."""
    return f"{source_fingerprint(root)}-{hashlib.sha256(venvs.SAM.fingerprint().encode()).hexdigest()[:12]}"


def is_built(root: Path = PROJECT_ROOT) -> bool:
    """``.aws-sam/build`` holds a complete `sam build` of these very sources."""
    marker = root / BUILD_DIR / BUILD_MARKER
    return marker.exists() and marker.read_text() == build_fingerprint(root)


def build(endpoint: str, root: Path = PROJECT_ROOT) -> float:
    """``sam build`` unless ``.aws-sam/build`` already holds a build of these sources; returns the seconds it took.

    The build needs no LocalStack, so ``photopipe up`` runs it while LocalStack starts. A stack deployed afresh
    from unchanged sources (``up --fresh``, a second stack) deploys the build that is there."""
    if is_built(root):
        return 0.0
    sam = venvs.ensure(venvs.SAM)
    began = time.monotonic()
    marker = root / BUILD_DIR / BUILD_MARKER
    marker.unlink(missing_ok=True)  # a build that fails half-way is not one of anything
    fingerprint = build_fingerprint(root)
    result = subprocess.run(  # noqa: S603
        [str(sam.bin("sam")), "build", "--config-env", SAM_CONFIG_ENV],
        check=False,
        cwd=root,
        env=sam_environment(endpoint),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    if result.returncode != 0:
        raise DeployError(f"`sam build` failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    marker.write_text(fingerprint)
    return time.monotonic() - began


@contextlib.contextmanager
def building_meanwhile(endpoint: str, root: Path = PROJECT_ROOT) -> Iterator[Callable[[], float]]:
    """Run ``build`` on a thread of its own while the body runs (LocalStack's start: the build needs no LocalStack).
    The body calls what this yields to wait for the build; it returns the seconds the build took, 0.0 when the
    sources were built already. A failed build raises there."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam-build") as pool:
        building = None if is_built(root) else pool.submit(build, endpoint, root)
        yield lambda: building.result() if building is not None else 0.0


def deploy(
    endpoint: str, stack_name: str = "photopipe", force: bool = False, parameters: dict[str, str] | None = None
) -> Deployed:
    """``sam build`` + ``sam deploy`` unless the stack is already deployed from the same sources and parameters.

    ``parameters`` (template parameters by name) are added to those the stack was given before, which it keeps.
    LocalStack cannot update some resources in place (an API Gateway stage, notably); when an update rolls
    back, a stack whose bucket is empty is deleted and created afresh. One that holds a library is never deleted
    (that would take the photos with it): the deploy fails, saying how to move the library to the new version.
    """
    current = describe(cloudformation(endpoint), stack_name)
    given = {**kept_parameters(current), **(parameters or {})}
    fingerprint = deploy_fingerprint(source_fingerprint(), given)
    if not force and deployed_fingerprint(endpoint, stack_name) == fingerprint:
        return Deployed(stack_name=stack_name, changed=False)
    build_seconds = build(endpoint)
    sam = venvs.ensure(venvs.SAM)
    env = sam_environment(endpoint)
    began = time.monotonic()
    command = [
        str(sam.bin("sam")),
        "deploy",
        "--config-env",
        SAM_CONFIG_ENV,
        "--stack-name",
        stack_name,
        "--parameter-overrides",
        " ".join(f"{name}={value}" for name, value in {**local_parameters(endpoint), **given}.items()),
        "--tags",
        f"{SOURCE_TAG}={fingerprint}",
        *([f"{PARAMETERS_TAG}={','.join(sorted(given))}"] if given else []),
        "--no-resolve-s3",
        "--s3-bucket",
        artifacts_bucket(endpoint),
        "--s3-prefix",
        stack_name,
        "--no-progressbar",
    ]
    cfn = cloudformation(endpoint)
    existing = describe(cfn, stack_name)
    if existing is not None and existing["StackStatus"] not in GOOD_STATES:
        keep_library(cfn, endpoint, stack_name, f"the stack is {existing['StackStatus']}")
        delete_stack(cfn, endpoint, stack_name)
    failure = _sam_deploy(command, env, cfn, stack_name)
    if failure and describe(cfn, stack_name) is not None:
        keep_library(cfn, endpoint, stack_name, f"updating it in place failed: {failure[-1000:]}")
        LOG.warning("Updating stack %s in place failed (%s); creating it afresh", stack_name, failure)
        delete_stack(cfn, endpoint, stack_name)
        failure = _sam_deploy(command, env, cfn, stack_name)
    if failure:
        raise DeployError(failure)
    return Deployed(stack_name, True, build_seconds, time.monotonic() - began)


def _sam_deploy(command: list[str], env: dict[str, str], cfn: Any, stack_name: str) -> str | None:
    """Run ``sam deploy``, watching the stack: a rollback ends the wait at once (the SAM CLI would keep waiting on
    LocalStack's ROLLBACK_COMPLETE after a failed update). Returns why it failed, or None."""
    with subprocess.Popen(  # noqa: S603
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
        while process.poll() is None:
            stack = describe(cfn, stack_name)
            # The stack was absent or in a good state when this began, so a failed state is this deploy's.
            rolled_back = stack is not None and stack["StackStatus"] in FAILED_STATES
            if rolled_back or time.monotonic() > deadline:
                process.kill()
                process.wait()
                reason = stack["StackStatus"] if stack else "timeout"
                return f"`sam deploy` did not complete ({reason}): {stack_failure(cfn, stack_name)}"
            with contextlib.suppress(subprocess.TimeoutExpired):  # back at once when it ends
                process.wait(timeout=2)
        output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        return f"`sam deploy` failed:\n{output[-4000:]}\n{stack_failure(cfn, stack_name)}"
    return None


def stack_failure(cfn: Any, stack_name: str) -> str:
    """The first resource failure CloudFormation reported for the stack, if any."""
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return ""
    failed = [
        e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED") and e.get("ResourceStatusReason")
    ]
    return f"{failed[-1]['LogicalResourceId']}: {failed[-1]['ResourceStatusReason']}" if failed else ""


def keep_library(cfn: Any, endpoint: str, stack_name: str, why: str) -> None:
    """Raise DeployError instead of deleting a stack that holds a library: objects in its bucket or items in its
    table (keys and owners before any photo). A store that cannot be read counts as holding one."""
    held = library_held(cfn, endpoint, stack_name)
    if held:
        raise DeployError(
            f"The stack {stack_name} cannot be deployed from these sources ({why}). It holds a library "
            f"({held}), so it was not deleted and its photos and table are untouched (its API "
            "may not answer after LocalStack's rollback). To move the library to this version: "
            "`photopipe backup DIR`, `photopipe down`, `photopipe up --fresh`, `photopipe restore DIR`."
        )


def library_held(cfn: Any, endpoint: str, stack_name: str) -> str:
    """What of the stack's holds data ("bucket X", "table Y"), or "" when its buckets and tables are empty."""
    try:
        resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError as error:
        return f"its resources could not be listed: {error}"
    session = local_session()
    s3, dynamodb = session.client("s3", endpoint_url=endpoint), session.client("dynamodb", endpoint_url=endpoint)
    for resource in resources:
        name, kind = resource.get("PhysicalResourceId"), resource["ResourceType"]
        try:
            if kind == "AWS::S3::Bucket" and name and s3.list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount"):
                return f"bucket {name}"
            if kind == "AWS::DynamoDB::Table" and name and dynamodb.scan(TableName=name, Limit=1).get("Count"):
                return f"table {name}"
        except ClientError as error:
            if error.response["Error"]["Code"] not in {"NoSuchBucket", "ResourceNotFoundException"}:
                return f"{name}, which could not be read: {error}"
    return ""


def stack_buckets(cfn: Any, stack_name: str) -> list[str]:
    try:
        resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError:
        return []
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::S3::Bucket" and r.get("PhysicalResourceId")
    ]


def local_session() -> boto3.Session:
    return boto3.Session(
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def local_s3(endpoint: str) -> Any:
    return local_session().resource("s3", endpoint_url=endpoint)


def artifacts_bucket(endpoint: str) -> str:
    """The bucket `sam deploy` uploads the built code to, made if it is not there yet."""
    bucket = local_s3(endpoint).Bucket(ARTIFACTS_BUCKET)
    try:
        bucket.create()
    except ClientError as error:
        if error.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    return ARTIFACTS_BUCKET


def delete_stack(cfn: Any, endpoint: str, stack_name: str) -> None:
    """Delete the stack (emptying its bucket first, as CloudFormation requires) and wait until it is gone."""
    s3 = local_s3(endpoint)
    for bucket in stack_buckets(cfn, stack_name):
        with contextlib.suppress(ClientError):
            s3.Bucket(bucket).objects.all().delete()
    cfn.delete_stack(StackName=stack_name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 2, "MaxAttempts": 150}
        )
    except WaiterError as error:
        # LocalStack can report DELETE_FAILED for a stack that a failed update left behind, then drop it anyway.
        if describe(cfn, stack_name) is not None:
            raise DeployError(
                f"could not delete stack {stack_name}: {stack_failure(cfn, stack_name) or error}"
            ) from error
