"""The `photopipe` command line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

from photopipe import apikeys, bill, local
from photopipe import backup as backups
from photopipe import bench as benchmark
from photopipe import soak as soak_run
from photopipe import stats as stats_figures
from photopipe.config import ClientSettings
from photopipe.demo import API, DROP, contact_sheet, sample_set, unexpected, write_samples
from photopipe.failures import Failures
from photopipe.load import LoadReader, LoadWatch
from photopipe.media import MediaReader, reconcile_stack
from photopipe.progress import phase_bars, transfer_bars
from photopipe.reprocess import Progress as ReprocessProgress
from photopipe.reprocess import Reprocessing
from photopipe.samples import camera_roll
from photopipe.stack import Stack, StackNotFound
from photopipe.upload import (
    TERMINAL,
    ApiClient,
    FileResult,
    Uploader,
    UploadFailed,
    collect,
    default_concurrency,
    drop_folder_writer,
    drop_object,
)
from photopipe_core.models import WebhookState
from photopipe_core.owners import OwnerExists, drop_folder
from photopipe_infra.deploy import BadParameter, parse_parameters, template_parameters

# Wide enough for media ids and keys when the output is a file or a pipe (rich assumes 80 columns there).
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=True, width=_WIDTH)
out = Console(width=_WIDTH)


class Context:
    def __init__(self, settings: ClientSettings, api_key: str | None = None) -> None:
        self.settings = settings
        self.stack = Stack(settings)
        self.key_file = apikeys.KeyFile()
        self._api_key = api_key

    def key_owner(self) -> str:
        """The owner of the key the CLI sends: what it writes into the drop folder goes to their folder."""
        api_url = self.stack.outputs.ApiUrl
        if not self._api_key and (kept := self.key_file.owner(api_url)):
            return kept
        try:
            key = apikeys.resolve_key(self._api_key, api_url, self.key_file)
        except apikeys.NoApiKey as error:
            raise _fail(str(error)) from error
        owner = apikeys.ApiKeys(self.stack).owner_of_value(key)
        if owner is None:
            raise _fail(f"the API key given is not one of this stack's ({api_url}); see `photopipe keys list`")
        return owner

    def api(self) -> ApiClient:
        """The API with the key to send: --api-key / PHOTOPIPE_API_KEY, else the key file's for this stack."""
        try:
            api_url = self.stack.outputs.ApiUrl
            return ApiClient(api_url, apikeys.resolve_key(self._api_key, api_url, self.key_file))
        except (StackNotFound, apikeys.NoApiKey) as error:
            raise _fail(str(error)) from error


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--endpoint-url",
    envvar="AWS_ENDPOINT_URL",
    default=None,
    help="LocalStack's endpoint [default: http://localhost:4566], or `aws` for the stack on AWS.",
)
@click.option("--stack-name", default="photopipe", show_default=True, help="CloudFormation stack name.")
@click.option(
    "--api-key",
    envvar=apikeys.ENV_VAR,
    default=None,
    help=f"The API key to send [env {apikeys.ENV_VAR}; default: the one `photopipe keys create --save` kept].",
)
@click.version_option(package_name="photopipe")
@click.pass_context
def main(ctx: click.Context, endpoint_url: str | None, stack_name: str, api_key: str | None) -> None:
    """photopipe: drop in hundreds of photos; get them validated, deduplicated and converted to WebP."""
    overrides: dict[str, Any] = {"stack_name": stack_name}
    if endpoint_url:
        overrides["endpoint_url"] = endpoint_url
    ctx.obj = Context(ClientSettings(**overrides), api_key)


def out_option(default: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--out DIR`` (as ``out_dir``), for commands that write files."""
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help_text,
    )


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@main.command()
@click.option("--docker", is_flag=True, help="Use the LocalStack Docker image instead of the embedded runtime.")
@click.option(
    "--fresh", is_flag=True, help="Set the saved state aside (in a dated folder) and start with an empty stack."
)
@click.option(
    "--parameter",
    "parameters",
    metavar="NAME=VALUE",
    multiple=True,
    help="Deploy with this template parameter (Variants, WebpQuality, MaxInFlight…); kept by later `up`s.",
)
@pass_context
def up(ctx: Context, docker: bool, fresh: bool, parameters: tuple[str, ...]) -> None:
    """Start LocalStack with the state it saved, and deploy the stack if needed (idempotent); print the endpoints.
    `--parameter Variants=thumb:256,medium:1024,xl:3000` updates the stack in place, keeping the library."""
    try:
        given = parse_parameters(list(parameters), template_parameters())
    except BadParameter as error:
        raise click.BadParameter(str(error), param_hint="--parameter") from error
    _bring_up(ctx, docker, fresh=fresh, parameters=given)


def _bring_up(
    ctx: Context,
    docker: bool = False,
    outputs_to: Console = out,
    fresh: bool = False,
    parameters: dict[str, str] | None = None,
) -> None:
    """Start LocalStack and deploy if needed; the stack outputs go to stdout unless another console is named."""
    try:
        with console.status("Starting LocalStack and deploying the stack ..."):
            result = local.up(ctx.settings, docker=docker, fresh=fresh, parameters=parameters)
    except RuntimeError as error:
        raise _fail(str(error)) from error
    if result.set_aside is not None:
        console.print(f"The saved state was set aside in {result.set_aside}")
    if result.reconciled is not None:
        console.print(
            "LocalStack had stopped without saving all of its state (killed, or the machine stopped): any runs it "
            f"had going were started again, and the reconciler sent {len(result.reconciled.resent)} original(s) "
            "again"
        )
    started = result.started
    how = "reused" if started and started.reused else "started"
    pid = f" (PID {started.pid})" if started else ""
    deployed = result.deployed
    phases = [f"LocalStack {started.seconds:.1f} s"] if started and not started.reused else []
    if deployed.changed:
        alongside = " while LocalStack started" if result.built_alongside and phases else ""
        built = f"sam build {deployed.build_seconds:.1f} s{alongside}" if deployed.build_seconds else "sam build reused"
        phases += [built, f"sam deploy {deployed.deploy_seconds:.1f} s"]
    console.print(
        f"LocalStack {result.runtime} {how}{pid}; stack "
        f"{'deployed' if deployed.changed else 'already up to date'} in {result.seconds:.1f} s"
        + (f" ({', '.join(phases)})" if phases else "")
    )
    for key, value in result.outputs.model_dump().items():
        outputs_to.print(f"{key:<24} {value}", soft_wrap=True, highlight=False)
    console.print(f"Upload page: {page_url(result.outputs.ApiUrl)} (`photopipe keys show` prints the key it asks for)")
    made = apikeys.ensure_local_key(ctx.stack, ctx.key_file)
    if made is not None:
        console.print(
            f"Made the API key of the owner {made.owner!r} (id {made.key_id}) and kept it in {ctx.key_file.path} "
            "for the CLI; `photopipe keys create NAME` makes keys for other owners"
        )


def page_url(api_url: str) -> str:
    """The upload page the API serves."""
    return f"{api_url.rstrip('/')}/"


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
        ("callback", item.callback_url),
        ("webhook", _webhook_line(item.webhook) if item.webhook else None),
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


def _webhook_line(state: WebhookState) -> str:
    answer = f"HTTP {state.status_code}" if state.status_code else "no answer"
    line = f"{state.state} (version {state.version}, attempt {state.attempts}, {answer}, {state.at})"
    return f"{line}: {state.error}" if state.error and state.state != "delivered" else line


STATUSES = ["PENDING_UPLOAD", "PROCESSING", "READY", "DUPLICATE", "REJECTED", "FAILED"]


@main.command(name="ls")
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES, case_sensitive=False),
    multiple=True,
    help="Only media with this status (repeatable) [default: all].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per media on stdout (the API's media shape).")
@pass_context
def list_media(ctx: Context, statuses: tuple[str, ...], as_json: bool) -> None:
    """List media with their status and variants (through the API)."""
    try:
        api = ctx.api()
        media = [item for status in (statuses or STATUSES) for item in api.listing(status.upper())]
    except (UploadFailed, StackNotFound) as error:
        raise _fail(str(error)) from error
    media.sort(key=lambda item: (item["created_at"], item["media_id"]))
    if as_json:
        for item in media:
            click.echo(json.dumps(item))
        return
    table = Table("media_id", "status", "file", "size", "variants", "detail", "created")
    for item in media:
        size = f"{item['width']}×{item['height']}" if item.get("width") else ""
        detail = item.get("reason") or item.get("duplicate_of") or item.get("error") or ""
        table.add_row(
            item["media_id"],
            item["status"],
            item["source"].get("filename", item["source"]["key"]),
            size,
            " ".join(sorted(item["variants"])),
            detail,
            item["created_at"],
        )
    out.print(table)
    console.print("  ".join(f"{s}: {n}" for s, n in sorted(Counter(i["status"] for i in media).items())) or "No media")


def _reader(ctx: Context) -> MediaReader:
    try:
        return MediaReader(ctx.stack)
    except StackNotFound as error:
        raise _fail(str(error)) from error


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per failure.")
@pass_context
def failed(ctx: Context, as_json: bool) -> None:
    """List FailedQueue (runs that failed), IngestDLQ (events that could not start a run), WebhookDLQ (events
    not delivered to their callback_url) and ReprocessDLQ (media `photopipe reprocess` could not render again)."""
    failures = Failures(ctx.stack, _reader(ctx).repository).pending()
    if as_json:
        for failure in failures:
            click.echo(json.dumps({"queue": failure.queue, "media_id": failure.media_id, "detail": failure.detail}))
        return
    if not failures:
        console.print("Nothing failed: FailedQueue, IngestDLQ, WebhookDLQ and ReprocessDLQ are empty")
        return
    table = Table("queue", "media_id", "detail")
    for failure in failures:
        table.add_row(failure.queue, failure.media_id or "?", failure.detail)
    out.print(table)


@main.command()
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=120.0,
    show_default=True,
    help="Seconds an original may wait for its event before it is sent again.",
)
@click.option(
    "--stuck-after",
    type=click.FloatRange(0),
    default=900.0,
    show_default=True,
    help="Seconds a run may keep a media PROCESSING before a closed run is looked for.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@pass_context
def reconcile(ctx: Context, grace: float, stuck_after: float, as_json: bool) -> None:
    """Tie off loose ends: originals whose event never became a run are sent again, and media whose run ended without
    a final status are marked FAILED (then `photopipe redrive` runs them again). The stack runs it every 10 min, over
    the last day's originals and sending none again while events wait in the ingest queue; this command looks at
    every original."""
    done = reconcile_stack(ctx.stack, timedelta(seconds=grace), timedelta(seconds=stuck_after))
    if as_json:
        click.echo(json.dumps({"resent": done.resent, "failed": done.failed}))
        return
    for key in done.resent:
        out.print(f"sent again  {key}", soft_wrap=True, highlight=False)
    for media_id in done.failed:
        out.print(f"failed      {media_id}", soft_wrap=True, highlight=False)
    console.print("Nothing to reconcile" if not done.total else f"{done.total} loose ends tied off")


@main.command()
@click.option(
    "--since", "since_text", metavar="DURATION", help="Only photos uploaded in the last DURATION (30m, 1h, 7d)."
)
@click.option("--owner", help="Only this owner's photos (the queues and the reconciler's work are the stack's).")
@click.option(
    "--sample",
    type=click.IntRange(0),
    default=stats_figures.DEFAULT_SAMPLE,
    show_default=True,
    help="Latest finished runs whose histories give the time per step.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@pass_context
def stats(ctx: Context, since_text: str | None, owner: str | None, sample: int, as_json: bool) -> None:
    """How the pipeline is doing: photos by status and reject reason; success, retry and failure rates; time from
    upload to final status and per step (p50/p95); queues and dead-letter queues; the oldest photo still
    processing; what the reconciler did. The stack's CloudWatch dashboard (output DashboardName) charts them."""
    try:
        since = stats_figures.parse_since(since_text) if since_text else None
    except stats_figures.BadDuration as error:
        raise click.BadParameter(str(error), param_hint="--since") from error
    with console.status("reading the table, the queues and CloudWatch…"):
        figures = stats_figures.StatsReader(ctx.stack).read(since, owner, sample)
    if as_json:
        click.echo(figures.model_dump_json(indent=2))
        return
    _print_stats(figures)


def _print_stats(figures: stats_figures.Stats) -> None:
    window = f"uploaded since {figures.since}" if figures.since else "all photos"
    who = f", owner {figures.owner}" if figures.owner else ""
    out.print(f"[bold]{figures.media} photos[/bold] ({window}{who}), {figures.finished} finished", highlight=False)
    outcomes = Table("status", "photos", "share of finished", title="Outcomes", title_justify="left")
    for status, count in figures.by_status.items():
        rate = figures.rates.get(status.lower())
        outcomes.add_row(status, str(count), _percent(rate))
    for reason, count in figures.rejected_by_reason.items():
        outcomes.add_row(f"  rejected: {reason}", str(count), "")
    outcomes.add_row("retried (ran again)", "", _percent(figures.rates.get("retried")))
    out.print(outcomes)
    times = Table("from … to", "p50 s", "p95 s", "runs", title="Time", title_justify="left")
    e2e = figures.end_to_end_seconds
    times.add_row("upload → final status", _seconds(e2e.p50), _seconds(e2e.p95), str(e2e.count))
    for step, took in figures.step_seconds.items():
        times.add_row(f"step {step}", _seconds(took.p50), _seconds(took.p95), str(took.count))
    out.print(times)
    queues = Table("queue", "waiting", "being handled", title="Queues", title_justify="left")
    for name, depth in figures.queues.items():
        queues.add_row(name, str(depth.waiting), str(depth.in_flight))
    out.print(queues)
    out.print(f"in flight: {figures.in_flight}/{figures.max_in_flight}", highlight=False)
    oldest = figures.oldest_unfinished
    if oldest is not None:
        out.print(
            f"oldest still processing: {oldest.media_id}, uploaded {oldest.age_seconds:.0f} s ago", highlight=False
        )
    errors = ", ".join(f"{step} {count}" for step, count in figures.step_errors.items())
    out.print(f"step errors (caught, then retried, rejected or failed): {errors}", highlight=False)
    done = figures.reconciler
    out.print(
        f"reconciler: {done['resent']} originals sent again, {done['failed']} lost runs marked FAILED, "
        f"{done['slots_swept']} in-flight slots freed",
        highlight=False,
    )


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f} %"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


@main.command()
@click.argument("dest")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON object.")
@pass_context
def backup(ctx: Context, dest: str, as_json: bool) -> None:
    """Copy every object of the bucket and every item of the table to DEST (a folder or s3://bucket/prefix), with
    a manifest of their sha256; run again, an interrupted backup goes on where it stopped."""
    _copy(ctx, backups.backup, dest, "kept", as_json)


@main.command()
@click.argument("src")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON object.")
@pass_context
def restore(ctx: Context, src: str, as_json: bool) -> None:
    """Put a backup back into the stack (an empty one, or the one it came from), after checking every sha256: a
    damaged backup is refused, naming what is wrong."""
    _copy(ctx, backups.restore, src, "restored", as_json)


def _copy(ctx: Context, run: Callable[..., backups.Summary], location: str, verb: str, as_json: bool) -> None:
    """Run a backup or a restore against ``location`` with progress bars; print what it did."""
    try:
        place = backups.place_for(location, lambda: ctx.stack.client("s3"))
        with phase_bars(console) as bars:
            summary = run(ctx.stack, place, bars)
    except (backups.BackupError, StackNotFound) as error:
        raise _fail(str(error)) from error
    if as_json:
        click.echo(json.dumps(summary.as_json()))
        return
    console.print(
        f"{verb} {summary.objects} objects ({summary.bytes / 1e6:.1f} MB; {summary.skipped} already there) and "
        f"{summary.items} table items: {summary.location}"
    )


@main.command()
@click.argument("media_ids", nargs=-1)
@pass_context
def redrive(ctx: Context, media_ids: tuple[str, ...]) -> None:
    """Run failed media again (all of them, or MEDIA_IDS); events in IngestDLQ go back to IngestQueue, in
    WebhookDLQ to WebhookQueue (delivered again from a first attempt), and media ids in ReprocessDLQ to
    ReprocessQueue."""
    with console.status("redriving…") as shown:
        results = Failures(ctx.stack, _reader(ctx).repository).redrive(list(media_ids), shown.update)
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
@click.option(
    "--callback-url",
    metavar="URL",
    help='POST each photo\'s final-status event to URL, signed (README, "Webhooks"; API uploads only).',
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout (and nothing else).")
@pass_context
def upload(
    ctx: Context,
    paths: tuple[str, ...],
    via: str,
    concurrency: int | None,
    wait: bool,
    callback_url: str | None,
    as_json: bool,
) -> None:
    """Upload photos (files and folders, recursively); files already READY or DUPLICATE are skipped."""
    if callback_url and via != "api":
        raise _fail("--callback-url goes with --via api: a drop-folder object has no upload request to name it in")
    try:
        files = collect(paths)
        outputs = ctx.stack.outputs
    except (UploadFailed, StackNotFound) as error:
        raise _fail(str(error)) from error
    drop = None
    if via == "drop":
        prefix = f"{drop_folder(ctx.key_owner())}upload-{int(time.time())}/"
        drop = drop_folder_writer(ctx.stack.client("s3"), outputs.MediaBucketName, prefix)
    total_bytes = sum(path.stat().st_size for path in files)
    with transfer_bars(console, len(files), total_bytes) as bars:
        uploader = Uploader(
            ctx.api(), via=via, concurrency=concurrency, wait=wait, drop=drop, progress=bars, callback_url=callback_url
        )

        def done(result: FileResult, size: int) -> None:
            bars.finished(Path(result.path), size)
            if as_json:
                click.echo(json.dumps(result.as_json()))

        watch = LoadWatch(LoadReader(ctx.stack), bars.status) if wait else None
        if watch is not None:
            watch.start()
        try:
            results = uploader.run(files, on_done=done)
        finally:
            if watch is not None:
                watch.stop()
    if not as_json:
        _summary(results)
    if any(r.status == "FAILED" or (wait and r.status not in TERMINAL) for r in results):
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
@click.option(
    "--photos", type=click.IntRange(1, 5000), default=100, show_default=True, help="Photos through the stack."
)
@click.option(
    "--kernel-photos", type=click.IntRange(1, 200), default=8, show_default=True, help="Photos per kernel row."
)
@click.option("--kernel-only", is_flag=True, help="Only the one-core kernel comparison (no stack needed).")
@click.option(
    "--soak",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Instead: N small photos through the API in bursts, sampling the stack's threads and memory.",
)
@click.option(
    "--soak-burst", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="Photos per soak burst."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object (DESIGN §10).")
@out_option("photopipe-bench", "Where the report (JSON) and its chart (PNG) are written.")
@pass_context
def bench(
    ctx: Context,
    photos: int,
    kernel_photos: int,
    kernel_only: bool,
    soak: int | None,
    soak_burst: int,
    as_json: bool,
    out_dir: Path,
) -> None:
    """Measure the imaging kernel against naive Pillow, pyvips and the floor (one core), then photos through the
    deployed stack via the API (all cores). With --soak N: a long run of small photos instead (memory, threads)."""
    run = time.strftime("%Y%m%d-%H%M%S")
    if soak is not None:
        _soak(ctx, soak, soak_burst, as_json, out_dir / f"soak-{run}")
        return
    corpus_size = kernel_photos if kernel_only else max(kernel_photos, photos)
    with console.status(f"Making the corpus: {corpus_size} × 12 MP JPEG (cached in {benchmark.corpus_folder()}) ..."):
        corpus = benchmark.write_corpus(benchmark.corpus_folder(), corpus_size, seed=1)
    names = ["photopipe", "naive_pillow", "floor"] + (["pyvips"] if benchmark.pyvips_available() else [])
    with console.status(f"Kernel, one core: {', '.join(names)} over {kernel_photos} photos ..."):
        kernel = benchmark.run_kernels(corpus[:kernel_photos], names)
        ssim = benchmark.ssim_of_medium(corpus[0].read_bytes())
        bomb = benchmark.bomb_check()
        placeholder = benchmark.placeholder_cost()
    report: dict[str, Any] = {
        "kernel": {
            f"{name}_img_s": round(kernel[name]["img_s"], 3) if name in kernel else None
            for name in ("photopipe", "naive_pillow", "pyvips", "floor")
        },
        "pipeline": None,
        "bill": None,
        "rss_mb": {f"kernel_{name}": round(row["peak_rss_mb"], 1) for name, row in kernel.items()},
        "quality": {"ssim_medium_vs_naive": round(ssim, 4)},
        "bomb_400mp": {k: round(v, 3) if isinstance(v, float) else v for k, v in bomb.items()},
        "placeholder_ms": {k: round(v, 3) for k, v in placeholder.items()},
        "machine": benchmark.machine(),
    }
    ours = kernel["photopipe"]["img_s"]
    report["kernel"]["ratios"] = {
        f"vs_{name}": round(ours / row["img_s"], 3) for name, row in kernel.items() if name != "photopipe"
    }
    if not kernel_only:
        _bring_up(ctx, outputs_to=console if as_json else out)  # with --json, stdout carries the JSON alone
        folder = out_dir / run / "photos"  # the uploaded copies (5 MB each), removed once they are sent
        folder.mkdir(parents=True, exist_ok=True)
        try:
            paths = benchmark.stamped_copies(corpus[:photos], folder, run)
            singles = benchmark.stamped_copies(corpus[: benchmark.ONE_AT_A_TIME], folder, f"{run} single", "single-")
            processes = local.launcher(ctx.settings).processes
            meter = benchmark.Meter(ctx.stack) if processes() else None  # the runtime's counts: embedded only
            with console.status(f"Pipeline: {photos} photos through the API and the stack ..."):
                report["pipeline"] = benchmark.run_pipeline(
                    ctx.stack, ctx.api(), paths, None, max(600.0, photos * 3.0), processes, meter
                )
            with console.status(f"Pipeline: {len(singles)} photos one at a time on the warm stack ..."):
                report["pipeline"]["one_at_a_time"] = benchmark.run_one_at_a_time(
                    ctx.stack, ctx.api(), singles, timeout=120.0
                )
            if meter is not None:  # after the photos one at a time: the batch's logs are shipped by then
                with console.status("Bill: what the batch would cost on AWS ..."):
                    prices = bill.load_prices(ctx.settings.region)
                    report["bill"] = bill.report(
                        meter.usage(), prices, meter.architecture(), measured_on=ctx.stack.workflow_type
                    )
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
        report["rss_mb"]["stack"] = benchmark.stack_rss_mb(ctx.settings)
        pipeline = report["pipeline"]
        if pipeline["img_s"]:
            report["pipeline"]["vs_two_cores_kernel"] = round(pipeline["img_s"] / ((os.cpu_count() or 1) * ours), 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"bench-{run}.json").write_text(benchmark.dumps(report))
    chart = benchmark.chart(report, out_dir / f"bench-{run}.png")
    if as_json:
        click.echo(json.dumps(report))
        return
    table = Table("measure", "value", title="photopipe bench")
    for section in ("kernel", "pipeline", "bill", "rss_mb", "quality", "bomb_400mp", "placeholder_ms"):
        for key, value in (report[section] or {}).items():
            table.add_row(f"{section}.{key}", json.dumps(value))
    out.print(table)
    console.print(f"Report: {out_dir / f'bench-{run}.json'}  chart: {chart}")


def _soak(ctx: Context, photos: int, burst: int, as_json: bool, out_dir: Path) -> None:
    _bring_up(ctx, outputs_to=console if as_json else out)
    processes = local.launcher(ctx.settings).processes
    if not processes():
        raise click.ClickException("--soak samples the embedded stack's processes: run it against `photopipe up`")
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = (
        "photos",
        "seconds",
        "img_s",
        "localstack_threads",
        "localstack_mappings",
        "localstack_rss_mb",
        "localstack_cpu_ms_per_photo",
        "localstack_gc_ms_per_photo",
        "machine_cpu_ms_per_photo",
        "machine_busy",
        "lambda_processes",
        "lambdas_rss_mb",
        "statuses",
    )
    table = Table(*columns, title=f"photopipe bench --soak {photos}")
    samples: list[soak_run.Sample] = []
    with console.status(f"Soak: {photos} photos in bursts of {burst} ...") as status:
        for sample in soak_run.run(ctx.stack, ctx.api(), photos, burst, processes):
            samples.append(sample)
            row = [str(getattr(sample, c)) if c != "statuses" else json.dumps(sample.statuses) for c in columns]
            table.add_row(*row)
            console.print("  ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True)))
            status.update(f"Soak: {sample.photos} of {photos} photos processed ...")
    report = soak_run.summary(samples, photos)
    (out_dir / "soak.json").write_text(json.dumps(report, indent=2))
    chart = soak_run.chart(samples, out_dir / "soak.png")
    if as_json:
        click.echo(json.dumps(report))
        return
    out.print(table)
    for key, value in report.items():
        if key != "samples":
            out.print(f"{key}: {json.dumps(value)}")
    console.print(f"Report: {out_dir / 'soak.json'}  chart: {chart}")


@main.command()
@click.argument("media_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every READY media.")
@click.option("--status", type=click.Choice(["READY"]), help="Every media with this status (only READY has variants).")
@click.option("--dry-run", is_flag=True, help="Say what would be rendered; send nothing.")
@click.option("--no-wait", is_flag=True, help="Send the media to ReprocessQueue and return.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for the renders.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (the plan and, unless --no-wait, the end)."
)
@pass_context
def reprocess(
    ctx: Context,
    media_ids: tuple[str, ...],
    everything: bool,
    status: str | None,
    dry_run: bool,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Render READY media again with the stack's current variant and WebP settings (after changing Variants,
    WebpQuality or WebpMethod): their variants replaced, those no longer in the set removed, a history entry each.
    Media already rendered with these settings are skipped, so running it again does nothing."""
    if bool(media_ids) == bool(everything or status):
        raise _fail("name MEDIA_IDs, or give --all (or --status READY)")
    reprocessing = Reprocessing(ctx.stack, _reader(ctx).repository)
    plan = reprocessing.plan(list(media_ids) if media_ids else None)
    settings = plan.settings
    summary = {
        "variants": settings.variants,
        "webp_quality": settings.webp_quality,
        "webp_method": settings.webp_method,
        "fingerprint": settings.fingerprint,
        "to_render": len(plan.to_render),
        "up_to_date": len(plan.up_to_date),
        "not_ready": dict(plan.not_ready),
    }
    if not as_json:
        console.print(
            f"{len(plan.to_render)} to render with {settings.variants} (WebP quality {settings.webp_quality}, "
            f"method {settings.webp_method}); {len(plan.up_to_date)} already up to date"
            + (f"; {len(plan.not_ready)} not READY (left as they are)" if plan.not_ready else ""),
            soft_wrap=True,
        )
    if dry_run or not plan.to_render:
        if as_json:
            click.echo(json.dumps({**summary, "sent": 0}))
        return
    reprocessing.send(plan.to_render)
    if no_wait:
        if as_json:
            click.echo(json.dumps({**summary, "sent": len(plan.to_render)}))
        else:
            console.print(f"Sent {len(plan.to_render)} to ReprocessQueue")
        return
    began = time.monotonic()
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console, disable=as_json) as bars:
        task = bars.add_task("rendering", total=len(plan.to_render))

        def shown(now: ReprocessProgress) -> None:
            bars.update(task, completed=now.rendered, description=f"rendering ({now.queued} in the queue)")

        end = reprocessing.wait(plan.to_render, settings.fingerprint, timeout, shown)
    seconds = round(time.monotonic() - began, 1)
    if as_json:
        click.echo(json.dumps({**summary, "sent": len(plan.to_render), "rendered": end.rendered, "seconds": seconds}))
    else:
        console.print(f"Rendered {end.rendered} of {len(plan.to_render)} in {seconds} s", soft_wrap=True)
    if end.rendered < len(plan.to_render):
        raise _fail(
            f"{len(plan.to_render) - end.rendered} not rendered: still queued ({end.queued}), or in ReprocessDLQ "
            "after three tries (the Reprocess function's log says why); run the same command again"
        )


@main.command()
@click.argument("album_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per album (or per media of ALBUM_ID).")
@pass_context
def albums(ctx: Context, album_id: str | None, as_json: bool) -> None:
    """Your READY photos grouped by the day and place they were taken (most recent first); with ALBUM_ID, its
    photos in the order they were taken."""
    api = ctx.api()
    try:
        if album_id is None:
            listed = api.albums()
        else:
            album, media = api.album(album_id)
    except (UploadFailed, requests.RequestException) as error:
        raise _fail(str(error)) from error
    if album_id is None:
        if as_json:
            for album in listed:
                click.echo(json.dumps(album))
            return
        table = Table("album", "title", "photos", "taken (UTC)")
        for album in listed:
            table.add_row(album["album_id"], album["title"], str(album["count"]), _span(album))
        out.print(table)
        return
    if as_json:
        for item in media:
            click.echo(json.dumps(item))
        return
    out.print(f"[bold]{album['title']}[/]  {album['count']} photo(s), {_span(album)}", soft_wrap=True)
    table = Table("media_id", "taken", "file", "size")
    for item in media:
        size = f"{item['width']}×{item['height']}" if item.get("width") else ""
        table.add_row(item["media_id"], item.get("taken_at", ""), item["source"]["filename"], size)
    out.print(table)


def _span(album: dict[str, Any]) -> str:
    start, end = album["start"].replace("T", " ").rstrip("Z"), album["end"].replace("T", " ").rstrip("Z")
    return start if start == end else f"{start} – {end[11:] if end[:10] == start[:10] else end}"


@main.group()
def keys() -> None:
    """API keys: each key is an owner's, who sees only their own media through the API."""


@keys.command(name="create")
@click.argument("name")
@click.option("--save", is_flag=True, help="Keep the key in the CLI's key file, as the key it sends to this stack.")
@click.option("--replace", is_flag=True, help="If NAME has a key already, revoke it and make a new one.")
@click.option(
    "--daily-uploads", type=click.IntRange(0), help="Uploads per UTC day [default: the stack's; 0: no limit]."
)
@click.option("--daily-bytes", type=click.IntRange(0), help="Bytes per UTC day [default: the stack's; 0: no limit].")
@click.option("--open-uploads", type=click.IntRange(0), help="Uploads not yet finished at once [default: the stack's].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (owner, key_id, key).")
@pass_context
def keys_create(
    ctx: Context,
    name: str,
    save: bool,
    replace: bool,
    daily_uploads: int | None,
    daily_bytes: int | None,
    open_uploads: int | None,
    as_json: bool,
) -> None:
    """Make an API key for the owner NAME (a new owner, or one whose key was revoked); the key is shown only now."""
    limits = {"daily_uploads": daily_uploads, "daily_bytes": daily_bytes, "open_uploads": open_uploads}
    try:
        if replace:
            _revoke(ctx, name)
        created = apikeys.ApiKeys(ctx.stack).create(name, {k: v for k, v in limits.items() if v is not None})
    except (ValueError, OwnerExists, StackNotFound) as error:
        raise _fail(str(error)) from error
    if save:
        ctx.key_file.save(ctx.stack.outputs.ApiUrl, created.owner, created.value)
    if as_json:
        click.echo(json.dumps({"owner": created.owner, "key_id": created.key_id, "key": created.value}))
    else:
        click.echo(created.value)
    kept = f"; kept in {ctx.key_file.path} for this stack" if save else "; it is not shown again"
    console.print(f"API key of {created.owner!r} (id {created.key_id}){kept}", soft_wrap=True)


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per owner.")
@pass_context
def keys_list(ctx: Context, as_json: bool) -> None:
    """Owners and their keys' ids (never the keys themselves)."""
    try:
        listed = apikeys.ApiKeys(ctx.stack).listing()
    except StackNotFound as error:
        raise _fail(str(error)) from error
    if as_json:
        for info in listed:
            click.echo(json.dumps(dataclasses.asdict(info)))
        return
    table = Table("owner", "key id", "enabled", "own limits", "key made", "owner since")
    for info in listed:
        enabled = "revoked" if info.key_id is None else {True: "yes", False: "no", None: "missing"}[info.enabled]
        limits = " ".join(f"{name}={value or 'none'}" for name, value in info.limits.items())
        table.add_row(info.owner, info.key_id or "", enabled, limits, info.key_created_at or "", info.created_at)
    out.print(table)


@keys.command(name="show")
@pass_context
def keys_show(ctx: Context) -> None:
    """The API key the CLI sends to this stack, and its owner (to paste into the upload page)."""
    try:
        api_url = ctx.stack.outputs.ApiUrl
    except StackNotFound as error:
        raise _fail(str(error)) from error
    value = ctx.key_file.get(api_url)
    if value is None:
        raise _fail(f"no key is kept for {api_url}; `photopipe keys create NAME --save` makes and keeps one")
    click.echo(value)  # alone on stdout: `KEY=$(photopipe keys show)`, or paste it as printed
    owner = ctx.key_file.owner(api_url)
    console.print(f"API key of {owner!r} for {api_url}" if owner else f"API key kept for {api_url}", soft_wrap=True)


@keys.command(name="revoke")
@click.argument("name")
@pass_context
def keys_revoke(ctx: Context, name: str) -> None:
    """Take the owner NAME's key away at once (their media stay theirs; a new key can be made for them)."""
    try:
        key_id = _revoke(ctx, name)
    except StackNotFound as error:
        raise _fail(str(error)) from error
    if key_id is None:
        raise _fail(f"owner {name!r} has no API key")
    console.print(f"Revoked the API key {key_id} of {name!r}")


@keys.command(name="secret")
@click.argument("name")
@click.option("--rotate", is_flag=True, help="Replace the secret (deliveries use the new one within a minute).")
@pass_context
def keys_secret(ctx: Context, name: str, rotate: bool) -> None:
    """The webhook secret of the owner NAME: the deliveries to its media's callback_url are signed with it
    (README, "Webhooks"). Made at the first ask."""
    try:
        secret = apikeys.ApiKeys(ctx.stack).webhook_secret(name, rotate)
    except (ValueError, StackNotFound) as error:
        raise _fail(str(error)) from error
    click.echo(secret)  # alone on stdout: `SECRET=$(photopipe keys secret NAME)`
    console.print(f"Webhook secret of {name!r}{' (new)' if rotate else ''}", soft_wrap=True)


def _revoke(ctx: Context, name: str) -> str | None:
    """Revoke the owner's key, and forget it in the key file if it is the one the CLI sends to this stack."""
    key_id = apikeys.ApiKeys(ctx.stack).revoke(name)
    api_url = ctx.stack.outputs.ApiUrl
    if key_id is not None and ctx.key_file.owner(api_url) == name:
        ctx.key_file.forget(api_url)
    return key_id


@main.command(name="samples")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many photos.")
@click.option("--seed", type=int, default=None, help="Same seed, same photos [default: new ones each time].")
def make_samples(folder: Path, count: int, seed: int | None) -> None:
    """Write photo-like sample JPEGs (12 MP and smaller, with EXIF; some stored sideways) into FOLDER."""
    seed = seed if seed is not None else time.time_ns() % 1_000_000
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    with Progress(*Progress.get_default_columns(), console=console) as progress:
        for name, body in progress.track(camera_roll(count, seed), total=count, description="Making photos"):
            (folder / name).write_bytes(body)
            total += len(body)
    console.print(f"Wrote {count} photos ({total / 1e6:.1f} MB, seed {seed}) to {folder}")


@main.command()
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for the pipeline.")
@out_option("photopipe-demo", "Where the sample photos and the contact sheet are written.")
@pass_context
def demo(ctx: Context, timeout: float, out_dir: Path) -> None:
    """The main job end to end: bring the stack up, send a varied set of photos half through the API and half
    into the drop folder, wait, show what happened and write a contact sheet."""
    _bring_up(ctx)
    outputs = ctx.stack.outputs
    run = time.strftime("%Y%m%d-%H%M%S")
    folder = out_dir / run
    paths = write_samples(folder / "photos")
    chosen = {sample.name: sample for sample in sample_set()}
    began = time.monotonic()

    api = ctx.api()
    via_api = [paths[name] for name, sample in chosen.items() if sample.via == API]
    with transfer_bars(console, len(via_api), sum(p.stat().st_size for p in via_api)) as bars:
        sent = Uploader(api, progress=bars).run(via_api, on_done=lambda r, size: bars.finished(Path(r.path), size))
    media_ids = {Path(result.path).name: result.media_id for result in sent}
    console.print(f"Uploaded {len(via_api)} photos through the API ({outputs.ApiUrl})", soft_wrap=True)

    # into the folder of the owner whose key sent the others: all the demo's photos are one library
    s3, bucket, prefix = ctx.stack.client("s3"), outputs.MediaBucketName, f"{drop_folder(ctx.key_owner())}demo-{run}/"
    for name, sample in chosen.items():
        if sample.via == DROP:  # what `aws s3 cp --recursive photos/drop s3://…/drop/…/` does: no local checks
            media_ids[name] = drop_object(
                s3, bucket, f"{prefix}{name}", paths[name], sample.content_type, lambda _: None
            )
    console.print(f"Dropped {len(chosen) - len(via_api)} files into s3://{bucket}/{prefix}", soft_wrap=True)

    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("Processing", total=len(media_ids))
        found = api.wait_for([m for m in media_ids.values() if m], timeout, finished=lambda *_: progress.advance(task))
    for media_id, media in found.items():
        if media and media["status"] == "DUPLICATE":  # seen before its original was READY: show the variants now
            found[media_id] = api.media(media_id)
    outcomes = {name: found.get(media_id) if media_id else None for name, media_id in media_ids.items()}
    elapsed = time.monotonic() - began

    table = Table("file", "via", "media_id", "status", "detail", "variants", title=f"demo ({elapsed:.1f} s)")
    for name, media in outcomes.items():
        detail = sizes = ""
        if media is not None:
            detail = media.get("reason") or (f"of {media['duplicate_of']}" if media.get("duplicate_of") else "")
            sizes = " ".join(f"{n}:{v['width']}×{v['height']}" for n, v in media["variants"].items())
        status_text = media["status"] if media else "(not seen)"
        table.add_row(name, chosen[name].via, media_ids[name] or "", status_text, detail, sizes)
    out.print(table)
    sheet = contact_sheet(folder / "contact-sheet", outcomes, f"photopipe demo {run}")
    endpoint = ctx.settings.endpoint_url
    runs = (  # an EXPRESS pipeline keeps no run list: its runs' events are in its log group
        f"  aws --endpoint-url {endpoint} logs filter-log-events --log-group-name {outputs.PipelineLogGroupName}\n"
        if ctx.stack.workflow_type == "EXPRESS"
        else f"  aws --endpoint-url {endpoint} stepfunctions list-executions "
        f"--state-machine-arn {outputs.PipelineStateMachineArn}\n"
    )
    console.print(
        f"Contact sheet: {sheet.resolve()}\n"
        f"Upload page: {page_url(outputs.ApiUrl)} (open it in a browser; `photopipe keys show` prints the key)\n"
        f"Outputs are under s3://{bucket}/media/<media_id>/<variant>.webp\n"
        "Inspect:\n"
        "  photopipe ls                     # every media of this key's owner, with its status\n"
        "  photopipe status <media_id>      # one photo: variants and history\n"
        f"  aws --endpoint-url {endpoint} s3 ls s3://{bucket}/media/ --recursive\n"
        f"{runs}"
        "The stack keeps running; stop it with: make down",
        soft_wrap=True,
    )
    problems = unexpected(outcomes)
    if problems:
        raise _fail("unexpected outcomes: " + "; ".join(problems))
