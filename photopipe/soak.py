"""`photopipe bench --soak N`: many small photos through the API in bursts, watching the stack's memory and threads.

Each burst of ``burst`` photos is uploaded by ``clients`` threads at once (POST /v1/uploads, then the presigned PUT),
then followed until every photo has a final status. After each burst the embedded LocalStack's live threads, memory
mappings and resident memory and the Lambda processes' resident memory are sampled, with the burst's throughput (its
photos over the time from its first upload to its last final status). A stack that leaks shows it as growing
mappings or RSS, or as throughput falling from burst to burst.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from PIL import Image, ImageDraw

from photopipe.media import MediaReader
from photopipe.stack import Stack
from photopipe.upload import ApiClient, UploadFailed, describe
from photopipe_core.models import Status

CLIENTS = 32
GC_PATH = "/_photopipe/gc"  # the embedded runtime's garbage collection clock (photopipe_infra.gc_tuning)
TERMINAL_NAMES = frozenset(status.value for status in Status if status.is_terminal)


def tiny_photo(index: int, run: str) -> bytes:
    """A small JPEG (96×64) whose pixels carry ``index`` and ``run``: distinct bytes for every photo of every run."""
    digest = hashlib.sha256(f"{run}/{index}".encode()).digest()
    image = Image.new("RGB", (96, 64), tuple(digest[:3]))
    draw = ImageDraw.Draw(image)
    for n, byte in enumerate(digest[3:27]):
        draw.rectangle((4 * n, 0, 4 * n + 3, 63), fill=(byte, 255 - byte, digest[n % 32]))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def upload_bytes(api: ApiClient, name: str, data: bytes) -> str:
    """One photo through the API: ask for an upload (with its sha256), PUT exactly the headers given; its media id."""
    body = {
        "filename": name,
        "content_type": "image/jpeg",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    response = api.request("POST", "/v1/uploads", json=body)
    if response.status_code != 201:
        raise UploadFailed(f"{name}: {describe(response)}")
    grant = response.json()
    put = api.session.put(grant["upload"]["url"], data=data, headers=grant["upload"]["headers"], timeout=60)
    if put.status_code != 200:
        raise UploadFailed(f"{name}: PUT answered {put.status_code}")
    return str(grant["media_id"])


def send_burst(api: ApiClient, photos: list[tuple[str, bytes]], clients: int = CLIENTS) -> list[str]:
    """Upload every (name, bytes) from ``clients`` threads at once; the media ids in the same order."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda photo: upload_bytes(api, *photo), photos))


def follow(reader: MediaReader, media_ids: list[str], timeout: float) -> dict[str, Status | None]:
    """Each media's status once all are final or the deadline passed (None: no media item yet).

    Media finish about in the order sent, so each round reads the oldest unfinished ones until one is still
    running, then waits a second: about one read per photo in all, which leaves the stack to the photos (reading
    every unfinished photo each round cost it more than the pipeline's own requests)."""
    statuses: dict[str, Status | None] = dict.fromkeys(media_ids)
    pending = list(media_ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for media_id in list(pending):
            item = reader.get(media_id)
            statuses[media_id] = item.status if item else None
            if item is None or not item.status.is_terminal:
                break
            pending.remove(media_id)
        if pending:
            time.sleep(1.0)
    return statuses


@dataclass
class Sample:
    photos: int  # processed so far
    seconds: float  # the burst's, first upload to last final status
    img_s: float
    localstack_threads: int
    localstack_mappings: int
    localstack_rss_mb: float
    localstack_cpu_ms_per_photo: float  # the burst's CPU time in LocalStack's own process, per photo
    machine_cpu_ms_per_photo: float  # every process's (LocalStack, its Lambda processes, this client, the rest)
    machine_busy: float  # the share of the machine's cores busy during the burst (1.0: every core, all the time)
    localstack_gc_ms_per_photo: float  # LocalStack's Python collecting cyclic garbage (wall time of the collections)
    lambda_processes: int
    lambdas_rss_mb: float
    lambda_max_rss_mb: float
    statuses: dict[str, int] = field(default_factory=dict)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, everything but idle and waiting for I/O; Linux
    counts a guest's time in ``user`` as well, so it is not added twice)."""
    times = psutil.cpu_times()
    not_busy = ("idle", "iowait", "guest", "guest_nice")
    return float(sum(times) - sum(getattr(times, name, 0.0) for name in not_busy))


def sample_stack(processes: list[psutil.Process]) -> dict[str, Any]:
    """LocalStack's (the first process) threads, mappings and RSS; its Lambda processes' RSS."""
    root, *children = processes
    lambdas = []
    for child in children:
        try:
            if child.environ().get("AWS_LAMBDA_FUNCTION_NAME"):
                lambdas.append(child.memory_info().rss / 2**20)
        except psutil.Error:
            continue  # ended between listing and reading
    return {
        "localstack_threads": root.num_threads(),
        "localstack_mappings": len(Path(f"/proc/{root.pid}/maps").read_text().splitlines()),
        "localstack_rss_mb": round(root.memory_info().rss / 2**20, 1),
        "lambda_processes": len(lambdas),
        "lambdas_rss_mb": round(sum(lambdas), 1),
        "lambda_max_rss_mb": round(max(lambdas, default=0.0), 1),
    }


def collected_seconds(endpoint: str) -> float:
    """Seconds LocalStack's Python has spent in collections of cyclic garbage since it started, as wall time (a
    finalizer run by a collection may let other threads run meanwhile); 0 when it cannot say."""
    try:
        response = requests.get(f"{endpoint.rstrip('/')}{GC_PATH}", timeout=10)
        response.raise_for_status()
        return float(sum(response.json()["seconds"]))
    except (requests.RequestException, KeyError, TypeError, ValueError):
        return 0.0


def run(
    stack: Stack,
    api: ApiClient,
    photos: int,
    burst: int,
    stack_processes: Callable[[], list[psutil.Process]],
    timeout_per_burst: float = 1800.0,
    clients: int = CLIENTS,
) -> Iterator[Sample]:
    """Send ``photos`` in bursts of ``burst``; yield a sample after each burst (a stack that stops answering ends
    the run with an exception, after the samples so far)."""
    reader = MediaReader(stack)
    run_id = f"{time.time_ns()}"
    done = 0
    while done < photos:
        count = min(burst, photos - done)
        batch = [(f"soak-{done + n:06d}.jpg", tiny_photo(done + n, run_id)) for n in range(count)]
        began = time.monotonic()
        cpu_before, machine_before = cpu_seconds(stack_processes()[0]), machine_busy_seconds()
        gc_before = collected_seconds(stack.settings.endpoint_url)
        media_ids = send_burst(api, batch, clients)
        statuses = follow(reader, media_ids, timeout_per_burst)
        seconds = time.monotonic() - began
        processes = stack_processes()
        cpu_ms = (cpu_seconds(processes[0]) - cpu_before) * 1000 / count
        machine_seconds = machine_busy_seconds() - machine_before
        gc_ms = (collected_seconds(stack.settings.endpoint_url) - gc_before) * 1000 / count
        done += count
        counts: dict[str, int] = {}
        for status in statuses.values():
            name = status.value if status else "MISSING"
            counts[name] = counts.get(name, 0) + 1
        yield Sample(
            photos=done,
            seconds=round(seconds, 1),
            img_s=round(count / seconds, 2),
            statuses=counts,
            localstack_cpu_ms_per_photo=round(cpu_ms, 1),
            machine_cpu_ms_per_photo=round(machine_seconds * 1000 / count, 1),
            machine_busy=round(machine_seconds / (seconds * (psutil.cpu_count() or 1)), 2),
            localstack_gc_ms_per_photo=round(gc_ms, 1),
            **sample_stack(processes),
        )


def summary(samples: list[Sample], sent: int) -> dict[str, Any]:
    """What the acceptance asks of a soak: nothing lost, mappings flat, RSS growth per 1,000 photos after the first
    burst, throughput of the last burst against the first."""
    finished = sum(n for s in samples for name, n in s.statuses.items() if name in TERMINAL_NAMES)
    first, last = samples[0], samples[-1]
    later_photos = last.photos - first.photos
    per_thousand = (last.localstack_rss_mb - first.localstack_rss_mb) / later_photos * 1000 if later_photos else 0.0
    return {
        "photos": sent,
        "terminal": finished,
        "lost": sent - finished,
        "localstack_threads_max": max(s.localstack_threads for s in samples),
        "mappings_first_last": [first.localstack_mappings, last.localstack_mappings],
        "rss_mb_first_last": [first.localstack_rss_mb, last.localstack_rss_mb],
        "rss_growth_mb_per_1000_after_first": round(per_thousand, 1),
        "throughput_last_vs_first": round(last.img_s / first.img_s, 3) if first.img_s else None,
        "localstack_cpu_ms_per_photo_first_last": [first.localstack_cpu_ms_per_photo, last.localstack_cpu_ms_per_photo],
        "machine_cpu_ms_per_photo_first_last": [first.machine_cpu_ms_per_photo, last.machine_cpu_ms_per_photo],
        "localstack_gc_ms_per_photo_first_last": [first.localstack_gc_ms_per_photo, last.localstack_gc_ms_per_photo],
        "samples": [asdict(s) for s in samples],
    }


def chart(samples: list[Sample], path: Path) -> Path:
    """Throughput and memory against photos processed, one panel each, drawn with Pillow."""
    width, panel, left, top = 900, 220, 70, 40
    image = Image.new("RGB", (width, top + 2 * (panel + 40)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), "photopipe soak: throughput and memory against photos processed", fill="black")
    series = [
        ("img/s per burst", [(s.photos, s.img_s) for s in samples], "#2b7bb9"),
        ("LocalStack RSS (MB)", [(s.photos, s.localstack_rss_mb) for s in samples], "#c33"),
        ("Lambda processes RSS (MB)", [(s.photos, s.lambdas_rss_mb) for s in samples], "#6a6"),
        ("LocalStack mappings / 10", [(s.photos, s.localstack_mappings / 10) for s in samples], "#999"),
    ]
    most = max(s.photos for s in samples) or 1
    for index, group in enumerate((series[:1], series[1:])):
        y0 = top + index * (panel + 40)
        peak = max((v for _, points, _ in group for _, v in points), default=1.0) or 1.0
        draw.rectangle((left, y0, width - 20, y0 + panel), outline="#ccc")
        draw.text((5, y0), f"{peak:.0f}", fill="black")
        draw.text((5, y0 + panel - 10), "0", fill="black")
        for n, (label, points, colour) in enumerate(group):
            xy = [(left + (width - 20 - left) * x / most, y0 + panel - panel * v / peak) for x, v in points]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            for x, y in xy:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
            draw.text((left + 10 + 220 * n, y0 + panel + 8), label, fill=colour)
    draw.text((width - 160, top + 2 * (panel + 40) - 18), f"photos processed (max {most})", fill="black")
    image.save(path)
    return path
