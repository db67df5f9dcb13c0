"""The `photopipe` command line."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

from photopipe import local
from photopipe.config import ClientSettings
from photopipe.demo import Sample, sample_set
from photopipe.failures import Failures
from photopipe.media import MediaReader
from photopipe.stack import Stack, StackNotFound
from photopipe.upload import (
    ApiClient,
    FileResult,
    Uploader,
    UploadFailed,
    collect,
    default_concurrency,
    drop_folder_writer,
)
from photopipe_core.keys import DROP_PREFIX, media_id_for_object

# Wide enough for media ids and keys when the output is a file or a pipe (rich assumes 80 columns there).
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)


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
    """Show a media's status, reason, variants and history."""
    reader = _reader(ctx)
    item = reader.get(media_id)
    if item is None:
        raise _fail(f"no media {media_id}")
    history = reader.history(media_id)
    if as_json:
        click.echo(json.dumps({**item.model_dump(mode="json", exclude_none=True), "history": history}))
        return
    out.print(f"[bold]{item.media_id}[/]  {item.status}  {item.source.key} ({item.source.size} bytes)", soft_wrap=True)
    for label, value in (
        ("reason", item.reason),
        ("detail", item.reason_detail),
        ("error", item.error),
        ("duplicate of", item.duplicate_of),
        ("similar to", ", ".join(item.similar_to)),
        ("size", f"{item.width}×{item.height}" if item.width else None),
        ("taken at", item.taken_at),
        ("sha256", item.sha256),
    ):
        if value:
            out.print(f"  {label:<13} {value}", soft_wrap=True, highlight=False)
    if item.variants:
        table = Table("variant", "key", "size", "bytes")
        for name, variant in item.variants.items():
            table.add_row(name, variant.key, f"{variant.width}×{variant.height}", str(variant.bytes))
        out.print(table)
    table = Table("at", "status", "step", "detail", title="history")
    for entry in history:
        detail = entry.get("reason") or entry.get("error") or entry.get("duplicate_of") or ""
        table.add_row(entry.get("at", ""), entry.get("status", ""), entry.get("step", ""), detail)
    out.print(table)


def _reader(ctx: Context) -> MediaReader:
    try:
        return MediaReader(ctx.stack)
    except StackNotFound as error:
        raise _fail(str(error)) from error


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per failure.")
@pass_context
def failed(ctx: Context, as_json: bool) -> None:
    """List FailedQueue (runs that failed) and IngestDLQ (events that could not start a run)."""
    failures = Failures(ctx.stack, _reader(ctx).repository).pending()
    if as_json:
        for failure in failures:
            click.echo(json.dumps({"queue": failure.queue, "media_id": failure.media_id, "detail": failure.detail}))
        return
    if not failures:
        console.print("Nothing failed: FailedQueue and IngestDLQ are empty")
        return
    table = Table("queue", "media_id", "detail")
    for failure in failures:
        table.add_row(failure.queue, failure.media_id or "?", failure.detail)
    out.print(table)


@main.command()
@click.argument("media_ids", nargs=-1)
@pass_context
def redrive(ctx: Context, media_ids: tuple[str, ...]) -> None:
    """Run failed media again (all of them, or MEDIA_IDS); events in IngestDLQ go back to IngestQueue."""
    results = Failures(ctx.stack, _reader(ctx).repository).redrive(list(media_ids))
    if not results:
        console.print("Nothing to redrive")
    for media_id, outcome in results:
        out.print(f"{media_id}  {outcome}", soft_wrap=True, highlight=False)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--via",
    type=click.Choice(["api", "drop"]),
    default="api",
    show_default=True,
    help="Upload through the API (presigned PUTs) or write into the drop folder.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help=f"Files in flight at once [default: {default_concurrency()}].",
)
@click.option("--wait", is_flag=True, help="Wait until every photo has a final status.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout (and nothing else).")
@pass_context
def upload(ctx: Context, paths: tuple[str, ...], via: str, concurrency: int | None, wait: bool, as_json: bool) -> None:
    """Upload photos (files and folders, recursively); files already READY or DUPLICATE are skipped."""
    try:
        files = collect(paths)
        outputs = ctx.stack.outputs
    except (UploadFailed, StackNotFound) as error:
        raise _fail(str(error)) from error
    drop = None
    if via == "drop":
        drop = drop_folder_writer(ctx.stack.client("s3"), outputs.MediaBucketName, f"upload-{int(time.time())}/")
    uploader = Uploader(ApiClient(outputs.ApiUrl), via=via, concurrency=concurrency, wait=wait, drop=drop)
    total_bytes = sum(path.stat().st_size for path in files)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
        photos = progress.add_task("photos", total=len(files))
        sent = progress.add_task("bytes", total=total_bytes)

        def done(result: FileResult, size: int) -> None:
            progress.advance(photos)
            progress.advance(sent, size)
            if as_json:
                click.echo(json.dumps(result.as_json()))

        results = uploader.run(files, on_done=done)
    if not as_json:
        _summary(results)
    if any(r.status == "FAILED" for r in results):
        sys.exit(1)


def _summary(results: list[FileResult]) -> None:
    table = Table("file", "media_id", "status", "detail")
    for result in results:
        detail = result.reason or (f"of {result.duplicate_of}" if result.duplicate_of else "") or result.error or ""
        if result.skipped:
            detail = f"already uploaded {detail}".strip()
        table.add_row(result.path, result.media_id or "", result.status, detail)
    out.print(table)
    counts = Counter(r.status for r in results)
    console.print("  ".join(f"{status}: {count}" for status, count in sorted(counts.items())))


@main.command()
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for the pipeline.")
@pass_context
def demo(ctx: Context, timeout: float) -> None:
    """The main job end to end: bring the stack up, drop a varied set of photos in, wait, show what happened."""
    _bring_up(ctx)
    stack = ctx.stack
    bucket = stack.outputs.MediaBucketName
    s3 = stack.client("s3")
    run = time.strftime("%Y%m%d-%H%M%S")
    sent: list[tuple[Sample, str, str]] = []
    for sample in sample_set():
        key = f"{DROP_PREFIX}demo-{run}/{sample.name}"
        put = s3.put_object(Bucket=bucket, Key=key, Body=sample.body, ContentType=sample.content_type)
        sent.append((sample, key, media_id_for_object(bucket, key, put["ETag"])))
    console.print(f"Dropped {len(sent)} files into s3://{bucket}/{DROP_PREFIX}demo-{run}/")
    reader = _reader(ctx)
    began = time.monotonic()
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("Processing", total=len(sent))
        items = reader.wait_for_terminal(
            [m for _, _, m in sent], timeout=timeout, progress=lambda done: progress.update(task, completed=done)
        )
    elapsed = time.monotonic() - began
    table = Table("file", "media_id", "status", "detail", "variants", title=f"demo ({elapsed:.1f} s)")
    unexpected = []
    for sample, _, media_id in sent:
        item = items.get(media_id)
        status_text = item.status.value if item else "(not seen)"
        if status_text != sample.expect:
            unexpected.append(f"{sample.name}: {status_text}, expected {sample.expect}")
        detail = ""
        if item is not None:
            detail = item.reason or (f"of {item.duplicate_of}" if item.duplicate_of else "") or item.error or ""
        sizes = " ".join(f"{n}:{v.width}×{v.height}" for n, v in item.variants.items()) if item else ""
        table.add_row(sample.name, media_id, status_text, detail, sizes)
    out.print(table)
    endpoint = ctx.settings.endpoint_url
    console.print(
        f"Outputs are under s3://{bucket}/media/<media_id>/<variant>.webp\n"
        f"  photopipe status <media_id>      # status, variants and history of one photo\n"
        f"  aws --endpoint-url {endpoint} s3 ls s3://{bucket}/media/ --recursive\n"
        f"  aws --endpoint-url {endpoint} stepfunctions list-executions "
        f"--state-machine-arn {stack.outputs.PipelineStateMachineArn}\n"
        "The stack keeps running; stop it with: make down",
        soft_wrap=True,
    )
    if unexpected:
        raise _fail("unexpected outcomes: " + "; ".join(unexpected))
