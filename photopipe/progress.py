"""Progress bars for uploads: photos and bytes overall, plus one bar per file while it is being sent (rich)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from photopipe.backup import Tracker

BYTES = "bytes"


class AmountColumn(ProgressColumn):
    """``12/20`` for counts, ``3.4/10.0 MB`` for bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("unit") == BYTES:
            return self._bytes.render(task)
        return Text(f"{int(task.completed)}/{int(task.total or 0)}", style="progress.download")


class SpeedColumn(ProgressColumn):
    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        return self._speed.render(task) if task.fields.get("unit") == BYTES else Text("")


class TransferBars:
    """Implements the uploader's progress hooks on a rich Progress."""

    def __init__(self, progress: Progress, files: int, total_bytes: int) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._tasks: dict[Path, object] = {}
        self._sent: dict[Path, int] = {}
        self.photos = progress.add_task("photos", total=files)
        self.bytes = progress.add_task("bytes", total=total_bytes, unit=BYTES)
        self._status: object | None = None

    def begin(self, path: Path, size: int) -> Callable[[int], None]:
        task = self._progress.add_task(f"  {path.name}", total=size, unit=BYTES)
        with self._lock:
            self._tasks[path] = task

        def sent(count: int) -> None:
            with self._lock:
                self._sent[path] = self._sent.get(path, 0) + count
            self._progress.advance(task, count)
            self._progress.advance(self.bytes, count)

        return sent

    def end(self, path: Path) -> None:
        with self._lock:
            task = self._tasks.pop(path, None)
        if task is not None:
            self._progress.remove_task(task)  # type: ignore[arg-type]

    def status(self, text: str) -> None:
        """A line of its own under the bars (how busy the pipeline is, while waiting)."""
        with self._lock:
            if self._status is None:
                self._status = self._progress.add_task(text, total=None)
        self._progress.update(self._status, description=text)  # type: ignore[arg-type]

    def finished(self, path: Path, size: int) -> None:
        """A file is done; its bytes that were not sent (skipped, refused locally) count towards the overall bar."""
        with self._lock:
            unsent = size - self._sent.pop(path, 0)
        self._progress.advance(self.photos)
        self._progress.advance(self.bytes, unsent)


def _columns() -> tuple[ProgressColumn, ...]:
    return (
        SpinnerColumn(),
        TextColumn("{task.description}", style="progress.description"),
        BarColumn(),
        TaskProgressColumn(),
        AmountColumn(),
        SpeedColumn(),
        TimeElapsedColumn(),
    )


@contextmanager
def transfer_bars(console: Console, files: int, total_bytes: int) -> Iterator[TransferBars]:
    with Progress(*_columns(), console=console) as progress:
        yield TransferBars(progress, files, total_bytes)


@contextmanager
def phase_bars(console: Console) -> Iterator[Callable[[str, int, int], Tracker]]:
    """A bar for each phase of a long copy (backup, check, restore): bytes, with the objects done in its name."""
    with Progress(*_columns(), console=console) as progress:

        def start(label: str, objects: int, total_bytes: int) -> Tracker:
            task = progress.add_task(f"{label} 0/{objects}", total=total_bytes, unit=BYTES)
            done = 0

            def advance(more_objects: int, more_bytes: int) -> None:
                nonlocal done
                done += more_objects
                progress.update(task, advance=more_bytes, description=f"{label} {done}/{objects}")

            return Tracker(objects, total_bytes, advance)

        yield start
