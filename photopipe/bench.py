"""`photopipe bench`: the imaging kernel against its peers on one core, and the deployed pipeline on all cores.

Kernel rows (12 MP photo-like JPEGs → 2048/1024/256 WebP at the stack's quality and method, one pinned core, each in a
fresh process so its peak RSS is its own, started with the Resize function's malloc settings for all rows alike):
- photopipe: the pipeline's own path (inspect, one decode with draft, one resize then a cascade, orientation and
  colour on the reduced image, three encodes) — imaging code shared with the Lambdas;
- naive Pillow: open, ``ImageOps.exif_transpose``, three LANCZOS resizes from full size, three encodes;
- pyvips (when installed): shrink-on-load thumbnail then a cascade, three encodes;
- floor: the decode and the three encodes alone (resizes done outside the clock).
Pipeline: photos uploaded through the API (as `photopipe upload`) and followed to READY.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import platform
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import PIL
import psutil
import requests
from PIL import Image, ImageDraw, ImageOps

from photopipe import bill, samples
from photopipe.config import ClientSettings
from photopipe.local import launcher
from photopipe.runs import RunEvents
from photopipe.soak import cpu_seconds
from photopipe.stack import Stack
from photopipe.upload import ApiClient, Uploader
from photopipe_core import imaging
from photopipe_core.errors import TooManyPixels
from photopipe_core.placeholder import placeholder
from photopipe_core.repository import BATCH_GET, MediaRepository
from photopipe_core.rules import Limits, VariantSpec, WebpSettings

VARIANTS = [VariantSpec("large", 2048), VariantSpec("medium", 1024), VariantSpec("thumb", 256)]
WEBP = WebpSettings(quality=80, method=4)
# Photos sent one at a time after the batch, for the single-photo latency on a warm stack.
ONE_AT_A_TIME = 5
SETTLE_SECONDS = 10.0
KERNEL_ROUNDS = 2  # each kernel row runs this many times, taking turns with the others; its best counts
LIMITS = Limits(max_bytes=200 * 1024 * 1024, max_pixels=100_000_000, max_frames=100)


def bench_photo(index: int, seed: int) -> bytes:
    """A 12 MP photo-like JPEG with camera-like detail (grain and texture, ~3–4 MB), every third stored sideways."""
    rng_seed = seed * 1000 + index
    base = samples.photo(4000, 3000, seed=rng_seed)
    texture = Image.effect_noise((4000, 3000), 64).convert("RGB")
    image = Image.blend(base, texture, 0.18)
    exif = Image.Exif()
    if index % 3 == 2:
        exif[0x0112] = 6
        image = image.transpose(Image.Transpose.ROTATE_90)
    return samples.jpeg_bytes(image, quality=92, exif=exif)


def stamped(data: bytes, run: str) -> bytes:
    """The same JPEG with a comment segment naming the run: same pixels, new bytes (so a second benchmark run
    is processed again instead of being recognised as already uploaded)."""
    comment = f"photopipe bench {run}".encode()
    return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]


def stamped_copies(paths: list[Path], folder: Path, run: str, prefix: str = "") -> list[Path]:
    """Copies of corpus photos in ``folder``, stamped for this run (see ``stamped``)."""
    copies = []
    for path in paths:
        copy = folder / f"{prefix}{path.name}"
        copy.write_bytes(stamped(path.read_bytes(), run))
        copies.append(copy)
    return copies


def write_corpus(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"bench-{seed}-{index:03d}.jpg"
        if not path.exists():
            path.write_bytes(bench_photo(index, seed))
        paths.append(path)
    return paths


# --- kernels (each takes a photo, returns the WebP bytes it produced) ----------------------------------------------
@dataclass(frozen=True)
class BenchPhoto:
    data: bytes
    info: imaging.SourceInfo  # what Validate learnt: the Resize step gets it in its input

    @classmethod
    def of(cls, data: bytes) -> BenchPhoto:
        """Validation (sniffing, header limits, sha256: ~17 ms for a 5 MB JPEG) is the Validate step's work, done
        before Resize; like the naive row, no row times it."""
        return cls(data, imaging.inspect(data, LIMITS, "image/jpeg"))


def kernel_photopipe(photo: BenchPhoto) -> list[bytes]:
    """What the Resize step does to the pixels: one decode, the variants upright in sRGB, the three encodes."""
    rendered = imaging.render(photo.data, photo.info, VARIANTS)
    return [imaging.encode_webp(image, WEBP) for image in rendered.variants.values()]


def kernel_naive(photo: BenchPhoto) -> list[bytes]:
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(photo.data)))
    assert image is not None
    outputs = []
    for spec in VARIANTS:
        size = imaging.target_size(image.width, image.height, spec.long_edge)
        buffer = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(buffer, "WEBP", quality=WEBP.quality, method=WEBP.method)
        outputs.append(buffer.getvalue())
    return outputs


def kernel_pyvips(photo: BenchPhoto) -> list[bytes]:
    import pyvips  # noqa: PLC0415 - the optional extra, only when measured

    edge = VARIANTS[0].long_edge
    # Shrink-on-load to the largest variant (EXIF-rotated), held in memory so the cascade can read it again.
    previous = pyvips.Image.thumbnail_buffer(photo.data, edge, height=edge).copy_memory()
    outputs = []
    for spec in VARIANTS:
        image = previous if spec is VARIANTS[0] else previous.thumbnail_image(spec.long_edge, height=spec.long_edge)
        outputs.append(image.webpsave_buffer(Q=WEBP.quality, effort=WEBP.method, strip=True))
        previous = image.copy_memory()
    return outputs


def floor_seconds(data: bytes) -> float:
    """Seconds for the decode plus the three encodes alone; the resizes happen off the clock."""
    started = time.perf_counter()
    image = Image.open(io.BytesIO(data))
    image.load()
    decoded = time.perf_counter() - started
    resized = [image.resize(imaging.target_size(image.width, image.height, s.long_edge)) for s in VARIANTS]
    started = time.perf_counter()
    for variant in resized:
        variant.save(io.BytesIO(), "WEBP", quality=WEBP.quality, method=WEBP.method)
    return decoded + time.perf_counter() - started


KERNELS: dict[str, Callable[[BenchPhoto], list[bytes]]] = {
    "photopipe": kernel_photopipe,
    "naive_pillow": kernel_naive,
    "pyvips": kernel_pyvips,
}


def pyvips_available() -> bool:
    try:
        import pyvips  # noqa: F401, PLC0415 - the optional extra

        return True
    except (ImportError, OSError):
        return False


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the closest measure


def _run_kernel(name: str, paths: list[str], core: int) -> dict[str, float]:
    """In a fresh process pinned to one core: img/s over the corpus (after one warm-up photo) and peak RSS."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    photos = [Path(p).read_bytes() for p in paths]
    if name == "floor":
        floor_seconds(photos[0])
        seconds = sum(floor_seconds(data) for data in photos)
    else:
        kernel, inputs = KERNELS[name], [BenchPhoto.of(data) for data in photos]
        kernel(inputs[0])
        started = time.perf_counter()
        for photo in inputs:
            kernel(photo)
        seconds = time.perf_counter() - started
    return {"img_s": len(photos) / seconds, "peak_rss_mb": peak_rss_mb()}


def run_kernels(paths: list[Path], names: list[str], rounds: int = KERNEL_ROUNDS) -> dict[str, dict[str, float]]:
    """Each row in its own process, every one started with the Resize function's malloc settings; the rows take
    turns for ``rounds`` rounds and each keeps its best round, so that a slow spell of a shared machine during
    one row does not decide a ratio (the peak RSS is the highest of its rounds)."""
    core = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    context = multiprocessing.get_context("spawn")
    results: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name in names:
            # glibc reads its tunables when a process starts: set for the spawned process, restored after.
            with mock.patch.dict(os.environ, imaging.RENDER_PROCESS_ENV), context.Pool(1) as pool:
                row = pool.apply(_run_kernel, (name, [str(p) for p in paths], core))
            results[name] = best_round(results.get(name), row)
    return results


def best_round(best: dict[str, float] | None, row: dict[str, float]) -> dict[str, float]:
    """A kernel row over its rounds so far: the best throughput and the highest peak RSS."""
    if best is None:
        return row
    return {"img_s": max(best["img_s"], row["img_s"]), "peak_rss_mb": max(best["peak_rss_mb"], row["peak_rss_mb"])}


def ssim_of_medium(data: bytes) -> float:
    """Structural similarity of photopipe's 1024 variant to the naive path's (greyscale, 8×8 windows)."""
    photo = BenchPhoto.of(data)
    ours = Image.open(io.BytesIO(kernel_photopipe(photo)[1])).convert("L")
    theirs = Image.open(io.BytesIO(kernel_naive(photo)[1])).convert("L")
    return _ssim(ours, theirs.resize(ours.size))


def _ssim(a: Image.Image, b: Image.Image, window: int = 8) -> float:
    pa, pb = a.tobytes(), b.tobytes()
    width, height = a.size
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for top in range(0, height - window + 1, window):
        for left in range(0, width - window + 1, window):
            xs = [pa[(top + y) * width + left + x] for y in range(window) for x in range(window)]
            ys = [pb[(top + y) * width + left + x] for y in range(window) for x in range(window)]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            vx = statistics.fmean((v - mx) ** 2 for v in xs)
            vy = statistics.fmean((v - my) ** 2 for v in ys)
            cov = statistics.fmean((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            scores.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return statistics.fmean(scores)


def _bomb() -> dict[str, float]:
    bomb = samples.png_bomb(20000, 20000)  # 400 MP
    before = peak_rss_mb()
    started = time.perf_counter()
    try:
        imaging.inspect(bomb, Limits(max_bytes=50 * 2**20, max_pixels=50_000_000, max_frames=100), "image/png")
        rejected = False
    except TooManyPixels:
        rejected = True
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    return {"rejected": rejected, "seconds": seconds, "peak_rss_mb": peak, "growth_mb": peak - before}


def placeholder_cost(rounds: int = 200) -> dict[str, float]:
    """What a READY photo's placeholder (ThumbHash and dominant colour) costs Resize, from a thumb-sized variant: the
    median of ``rounds`` in milliseconds."""
    thumb = samples.photo(256, 192, seed=7)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        placeholder(thumb)
        times.append(time.perf_counter() - started)
    return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}


def bomb_check() -> dict[str, float]:
    """A 400 MP PNG bomb through validation, in a fresh process: rejected? how fast, how much memory."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return dict(pool.apply(_bomb))


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def chart(report: dict[str, Any], path: Path) -> Path:
    """A horizontal bar chart of kernel img/s (and the pipeline's), drawn with Pillow."""
    rows = [(name, value) for name, value in report["kernel"].items() if name.endswith("_img_s") and value]
    if report.get("pipeline"):
        rows.append(("pipeline_img_s (all cores)", report["pipeline"]["img_s"]))
    width, bar_height, left = 900, 34, 300
    image = Image.new("RGB", (width, 60 + bar_height * len(rows)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), "photopipe bench: 12 MP JPEG to 2048/1024/256 WebP q80 m4 (images per second)", fill="black")
    top = max(value for _, value in rows)
    for index, (name, value) in enumerate(rows):
        y = 40 + index * bar_height
        length = int((width - left - 80) * value / top)
        colour = "#2b7bb9" if name.startswith("photopipe") else ("#6a6" if name.startswith("pipeline") else "#999")
        draw.text((10, y + 8), name, fill="black")
        draw.rectangle((left, y + 4, left + length, y + bar_height - 6), fill=colour)
        draw.text((left + length + 6, y + 8), f"{value:.2f}", fill="black")
    image.save(path)
    return path


def corpus_folder() -> Path:
    return Path(tempfile.gettempdir()) / "photopipe-bench-corpus"


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


# --- the pipeline ---------------------------------------------------------------------------------------------
def run_pipeline(
    stack: Stack,
    api: ApiClient,
    paths: list[Path],
    concurrency: int | None,
    timeout: float,
    stack_processes: Callable[[], list[psutil.Process]] | None = None,
    meter: Meter | None = None,
) -> dict[str, Any]:
    """Upload through the API and follow every photo to a final status; latency is PUT accepted → READY.
    Given what lists the embedded stack's processes (LocalStack first), also where the CPU went meanwhile, per
    photo and by process role (listed again at the end: a Lambda pool that grew during the run counts too).
    Given a meter, what the run used is metered (``Meter.usage``, once the logs are shipped)."""
    list_processes = stack_processes or list
    processes = list_processes()
    cpu_before, host_before = cpu_snapshot(processes), psutil.cpu_times()
    if meter is not None:
        meter.start()
    started = time.time()
    results = Uploader(api, concurrency=concurrency, wait=True, wait_timeout=timeout).run(paths)
    if meter is not None:
        meter.stop([r.media_id for r in results if r.media_id], sum(path.stat().st_size for path in paths))
    cpu = {}
    if processes:  # an embedded stack (none to list when the stack is elsewhere)
        after = cpu_snapshot(list_processes())
        per_photo = cpu_per_photo(cpu_before, after, len(paths), psutil.cpu_count() or 1)
        cpu = {
            "cpu_s_per_photo": per_photo,
            # the imaging kernel runs in Resize: its share of all the CPU the pipeline spent
            "kernel_share": round(per_photo.get("ResizeFunction", 0.0) / per_photo["total"], 3)
            if per_photo["total"]
            else None,
            "host_busy": host_busy(host_before, psutil.cpu_times()),
        }
    finished = [r for r in results if r.status == "READY" and r.sent_at and r.updated_at]
    ends = [datetime.fromisoformat(r.updated_at.replace("Z", "+00:00")).timestamp() for r in finished]  # type: ignore[union-attr]
    latencies = sorted(end - r.sent_at for end, r in zip(ends, finished, strict=True))  # type: ignore[operator]
    seconds = (max(ends) if ends else time.time()) - started
    return {
        "photos": len(paths),
        "ready": len(finished),
        "other": {r.status: sum(1 for x in results if x.status == r.status) for r in results if r.status != "READY"},
        "seconds": round(seconds, 2),
        "img_s": round(len(finished) / seconds, 3) if seconds > 0 else None,
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "steps_s": step_durations(stack, [r.media_id for r in finished[:20] if r.media_id]),
        **cpu,
    }


def run_one_at_a_time(stack: Stack, api: ApiClient, paths: list[Path], timeout: float) -> dict[str, Any]:
    """Photos sent one at a time to the warm stack, each followed to READY before the next: the latency a single
    photo sees (PUT accepted → READY) and where it goes, state by state. Starts once the batch before it has
    settled (LocalStack ships that batch's Lambda logs and metrics for a few seconds afterwards)."""
    time.sleep(SETTLE_SECONDS)
    runs = [run_pipeline(stack, api, [path], 1, timeout) for path in paths]
    latencies = [run["p50_s"] for run in runs if run["p50_s"] is not None]
    steps: dict[str, list[float]] = {}
    for run in runs:
        for name, seconds in run["steps_s"].items():
            steps.setdefault(name, []).append(seconds)
    return {
        "photos": len(paths),
        "ready": sum(run["ready"] for run in runs),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "max_s": max(latencies, default=None),
        "steps_s": {name: round(statistics.median(values), 3) for name, values in steps.items()},
    }


def step_durations(stack: Stack, media_ids: list[str]) -> dict[str, float]:
    """Mean seconds per state (entered → exited) over these photos' runs."""
    spans: dict[str, list[float]] = {}
    for events in runs_of(stack, media_ids).values():
        entered: dict[str, datetime] = {}
        for event in events:
            kind = event["type"]
            details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
            if details is None or not kind.endswith(("StateEntered", "StateExited")):
                continue
            if kind.endswith("Entered"):
                entered[details["name"]] = event["timestamp"]
            elif details["name"] in entered:
                spans.setdefault(details["name"], []).append(
                    (event["timestamp"] - entered.pop(details["name"])).total_seconds()
                )
    return {name: round(statistics.fmean(values), 3) for name, values in spans.items()}


def runs_of(stack: Stack, media_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The events of each photo's last run (from its media item: an EXPRESS run's ARN is known only there)."""
    repository = MediaRepository(stack.resource("dynamodb").Table(stack.outputs.MediaTableName))
    items = [
        item
        for start in range(0, len(media_ids), BATCH_GET)
        for item in repository.get_many(media_ids[start : start + BATCH_GET]).values()
    ]
    arns = [item.execution_arn for item in items if item.execution_arn]
    # a drop-folder media's item is made by its run's first step; an EXPRESS run lasts five minutes at most
    made = [datetime.fromisoformat(item.created_at.replace("Z", "+00:00")) for item in items]
    return RunEvents(stack).of_many(arns, since=min(made) - timedelta(minutes=5) if made else None)


# --- where the CPU goes -----------------------------------------------------------------------------------------
CpuSnapshot = dict[int, tuple[str, float]]  # PID → (role, CPU seconds so far)


def cpu_snapshot(stack_processes: list[psutil.Process]) -> CpuSnapshot:
    """CPU seconds (user + system) so far of this process (the uploading client) and of the embedded stack's:
    LocalStack itself (the first) and each Lambda runtime process, named by its function's logical id."""
    snapshot = {os.getpid(): ("client", cpu_seconds(psutil.Process()))}
    for index, process in enumerate(stack_processes):
        with contextlib.suppress(psutil.Error):  # a process may end between listing and reading
            role = "localstack" if index == 0 else lambda_function(process) or "other"
            snapshot[process.pid] = (role, cpu_seconds(process))
    return snapshot


def lambda_function(process: psutil.Process) -> str | None:
    """The function a Lambda runtime process serves, as the template names it (photopipe-ResizeFunction-1a2b →
    ResizeFunction); None for any other process."""
    function: str | None = process.environ().get("AWS_LAMBDA_FUNCTION_NAME")
    if not function:
        return None
    return function.rsplit("-", 2)[-2] if function.count("-") >= 2 else function


def cpu_per_photo(before: CpuSnapshot, after: CpuSnapshot, photos: int, cores: int) -> dict[str, float]:
    """CPU seconds per photo by role between two snapshots (a process started meanwhile counts from zero; one
    that ended meanwhile is not counted), their total, and the throughput that total allows on ``cores``."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        spent[role] = spent.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    per_photo = {role: round(value / photos, 3) for role, value in sorted(spent.items(), key=lambda kv: -kv[1])}
    total = sum(spent.values()) / photos
    return {**per_photo, "total": round(total, 3), "cpu_bound_img_s": round(cores / total, 3) if total else 0.0}


def host_busy(before: Any, after: Any) -> float:
    """Share of all cores' time that was not idle between two ``psutil.cpu_times()`` (guest time is already part
    of user time, so it is not added twice)."""
    guest = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("guest", "guest_nice"))
    total = sum(after) - sum(before) - guest
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return round(1 - idle / total, 3) if total > 0 else 0.0


def stack_rss_mb(settings: ClientSettings) -> dict[str, float]:
    """Resident memory of the embedded LocalStack and of its Lambda processes (empty when not embedded)."""
    processes = launcher(settings).processes()
    if not processes:
        return {}
    lambdas = [p.memory_info().rss / 2**20 for p in processes[1:] if lambda_function(p)]
    return {
        "localstack": round(processes[0].memory_info().rss / 2**20, 1),
        "lambda_processes": len(lambdas),
        "lambdas_total": round(sum(lambdas), 1),
        "lambda_max": round(max(lambdas, default=0.0), 1),
    }


# --- what it costs on AWS -----------------------------------------------------------------------------------------
REPORT_LINE = re.compile(r"Billed Duration: (\d+) ms\s+Memory Size: (\d+) MB")
COUNTS_PATH = "/_photopipe/requests"


class Meter:
    """What a run used, counted where AWS counts it: the requests the embedded runtime answered (its counts before
    and after), the states each run entered and how long it ran (their histories), each Lambda invocation's billed
    duration and memory (the REPORT lines its function logged during the run), the bytes stored per photo."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._before: dict[str, Any] = {}
        self._counts: dict[str, Any] = {}
        self._window = (0.0, 0.0)
        self._media_ids: list[str] = []
        self._original_bytes = 0

    def counts(self) -> dict[str, Any]:
        url = f"{self._stack.settings.endpoint_url.rstrip('/')}{COUNTS_PATH}"
        response = requests.get(url, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def start(self) -> None:
        self._before = self.counts()
        self._window = (time.time(), 0.0)

    def stop(self, media_ids: list[str], original_bytes: int) -> None:
        self._counts = bill.counts_between(self._before, self.counts())
        self._window = (self._window[0], time.time())
        self._media_ids, self._original_bytes = media_ids, original_bytes

    def usage(self) -> bill.Usage:
        transitions, run_seconds = self._runs()
        invocations, gb_seconds = self._invocations()
        units = self._counts.get("dynamodb_units") or {}
        return bill.Usage(
            photos=len(self._media_ids),
            transitions=transitions,
            run_seconds=run_seconds,
            lambda_invocations=invocations,
            lambda_gb_seconds=gb_seconds,
            requests=self._counts.get("requests") or {},
            internal=self._counts.get("internal") or {},
            api_requests=int((self._counts.get("api") or {}).get("requests", 0)),
            dynamodb_read_units=float(units.get("read", 0.0)),
            dynamodb_write_units=float(units.get("write", 0.0)),
            stored_bytes=self._original_bytes + self._variant_bytes(),
        )

    def architecture(self) -> str:
        """The stack's Lambda architecture (its functions share one)."""
        name = next(iter(self._functions()), None)
        if name is None:
            return "x86_64"
        return str(self._stack.client("lambda").get_function_configuration(FunctionName=name)["Architectures"][0])

    def _runs(self) -> tuple[int, list[float]]:
        transitions, seconds = 0, []
        for events in runs_of(self._stack, self._media_ids).values():
            transitions += sum(1 for event in events if event["type"].endswith("StateEntered"))
            seconds.append((events[-1]["timestamp"] - events[0]["timestamp"]).total_seconds())
        return transitions, seconds

    def _functions(self) -> list[str]:
        pages = (
            self._stack.client("cloudformation")
            .get_paginator("list_stack_resources")
            .paginate(StackName=self._stack.settings.stack_name)
        )
        return [
            resource["PhysicalResourceId"]
            for page in pages
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] == "AWS::Lambda::Function"
        ]

    def _invocations(self) -> tuple[int, float]:
        logs = self._stack.client("logs")
        start, end = (int(moment * 1000) for moment in self._window)
        count, gb_seconds = 0, 0.0
        for name in self._functions():
            try:
                pages = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=f"/aws/lambda/{name}", startTime=start, endTime=end, filterPattern="REPORT"
                )
                lines = [event["message"] for page in pages for event in page["events"]]
            except logs.exceptions.ResourceNotFoundException:  # a function not invoked yet has no log group
                continue
            for match in filter(None, (REPORT_LINE.search(line) for line in lines)):
                count += 1
                gb_seconds += int(match[1]) / 1000 * int(match[2]) / 1024
        return count, gb_seconds

    def _variant_bytes(self) -> int:
        s3 = self._stack.client("s3")
        total = 0
        for media_id in self._media_ids:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._stack.outputs.MediaBucketName, Prefix=f"media/{media_id}/"
            )
            total += sum(item["Size"] for page in pages for item in page.get("Contents", []))
        return total
