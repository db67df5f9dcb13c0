"""The `photopipe` command line."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from photopipe import local, samples
from photopipe.config import ClientSettings
from photopipe.media import MediaReader, WaitTimeout
from photopipe.stack import Stack, StackNotFound
from photopipe_core.keys import DROP_PREFIX, media_id_for_object

console = Console(stderr=True)
out = Console()


class Context:
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.stack = Stack(settings)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="AWS or LocalStack endpoint.")
@click.option("--stack-name", default="photopipe", show_default=True, help="CloudFormation stack name.")
@click.version_option(package_name="photopipe")
@click.pass_context
def main(ctx: click.Context, endpoint_url: str | None, stack_name: str) -> None:
    """photopipe: drop in hundreds of photos; get them validated, deduplicated and converted to WebP."""
    overrides: dict[str, Any] = {"stack_name": stack_name}
    if endpoint_url:
        overrides["endpoint_url"] = endpoint_url
    ctx.obj = Context(ClientSettings(**overrides))


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@main.command()
@click.option("--docker", is_flag=True, help="Use the LocalStack Docker image instead of the embedded runtime.")
@pass_context
def up(ctx: Context, docker: bool) -> None:
    """Start LocalStack and deploy the stack (idempotent); print the endpoints."""
    _bring_up(ctx, docker)


def _bring_up(ctx: Context, docker: bool = False) -> None:
    try:
        with console.status("Starting LocalStack and deploying the stack ..."):
            result = local.up(ctx.settings, docker=docker)
    except RuntimeError as error:
        raise _fail(str(error)) from error
    started = result.started
    how = "reused" if started and started.reused else "started"
    pid = f" (PID {started.pid})" if started else ""
    console.print(
        f"LocalStack {result.runtime} {how}{pid}; stack "
        f"{'deployed' if result.deployed.changed else 'already up to date'} in {result.seconds:.1f} s"
    )
    for key, value in result.outputs.model_dump().items():
        out.print(f"{key:<24} {value}", soft_wrap=True, highlight=False)


@main.command()
@click.option("--docker", is_flag=True, help="Stop the LocalStack Docker container instead.")
@pass_context
def down(ctx: Context, docker: bool) -> None:
    """Stop what `photopipe up` started."""
    pids = local.down(ctx.settings, docker=docker)
    if docker:
        console.print("LocalStack container stopped")
    elif pids:
        console.print(f"Stopped LocalStack and {len(pids) - 1} Lambda process(es): PIDs {' '.join(map(str, pids))}")
    else:
        console.print("Nothing to stop: no LocalStack started by photopipe is running")


@main.command()
@click.argument("media_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_context
def status(ctx: Context, media_id: str, as_json: bool) -> None:
    """Show a media's status and history."""
    reader = _reader(ctx)
    item = reader.get(media_id)
    if item is None:
        raise _fail(f"no media {media_id}")
    history = reader.history(media_id)
    if as_json:
        out.print_json(json.dumps({**item.model_dump(mode="json"), "history": history}, default=str))
        return
    out.print(f"[bold]{item.media_id}[/]  {item.status}  ({item.source.key}, {item.source.size} bytes)")
    table = Table("at", "status", "step", "execution")
    for entry in history:
        table.add_row(
            entry.get("at", ""), entry.get("status", ""), entry.get("step", ""), entry.get("execution_arn", "")
        )
    out.print(table)


def _reader(ctx: Context) -> MediaReader:
    try:
        return MediaReader(ctx.stack)
    except StackNotFound as error:
        raise _fail(str(error)) from error


@main.command()
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for the pipeline.")
@pass_context
def demo(ctx: Context, timeout: float) -> None:
    """The main job end to end: bring the stack up, drop a photo in, wait, show what happened."""
    _bring_up(ctx)
    stack = ctx.stack
    key = f"{DROP_PREFIX}demo/photo-{int(time.time())}.jpg"
    body = samples.jpeg_bytes(samples.photo(1600, 1200, seed=7))
    put = stack.client("s3").put_object(
        Bucket=stack.outputs.MediaBucketName, Key=key, Body=body, ContentType="image/jpeg"
    )
    media_id = media_id_for_object(stack.outputs.MediaBucketName, key, put["ETag"])
    console.print(f"Dropped s3://{stack.outputs.MediaBucketName}/{key} ({len(body)} bytes) → media {media_id}")
    reader = _reader(ctx)
    try:
        with console.status("Waiting for the pipeline ..."):
            execution = reader.wait_for_execution(media_id, timeout=timeout)
    except WaitTimeout as error:
        raise _fail(str(error)) from error
    item = reader.get(media_id)
    table = Table("media_id", "execution", "took", "status", "source", title="demo")
    took = f"{execution.seconds:.2f} s" if execution.seconds is not None else "?"
    table.add_row(media_id, execution.status, took, item.status if item else "(no item)", key)
    out.print(table)
    console.print(
        "Inspect it with the AWS CLI:\n"
        f"  aws --endpoint-url {ctx.settings.endpoint_url} stepfunctions describe-execution "
        f"--execution-arn {stack.outputs.execution_arn(media_id)}\n"
        f"  aws --endpoint-url {ctx.settings.endpoint_url} dynamodb get-item --table-name "
        f'{stack.outputs.MediaTableName} --key \'{{"pk":{{"S":"MEDIA#{media_id}"}},"sk":{{"S":"META"}}}}\'\n'
        "Stop everything with: make down"
    )
    if execution.status != "SUCCEEDED" or item is None:
        raise _fail(f"the pipeline ended {execution.status} for media {media_id}")
