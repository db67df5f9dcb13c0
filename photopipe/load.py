"""How busy the pipeline is: photos waiting in IngestQueue and photos in flight (holding a slot)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from photopipe.stack import Stack
from photopipe_core.inflight import InFlightSlots

QUEUE_ATTRIBUTES = [
    "ApproximateNumberOfMessages",  # waiting
    "ApproximateNumberOfMessagesDelayed",  # waited for a slot, back in a moment
    "ApproximateNumberOfMessagesNotVisible",  # being taken in by ingest
]


@dataclass(frozen=True)
class PipelineLoad:
    queued: int
    in_flight: int
    limit: int

    def describe(self) -> str:
        return f"pipeline: {self.queued} waiting in the queue, {self.in_flight}/{self.limit} in flight"


def stack_slots(stack: Stack) -> InFlightSlots:
    """The deployed stack's in-flight slots, with the limit it was deployed with (its MaxInFlight parameter)."""
    table = stack.resource("dynamodb").Table(stack.outputs.MediaTableName)
    described = stack.client("cloudformation").describe_stacks(StackName=stack.settings.stack_name)
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Stacks"][0].get("Parameters", [])}
    return InFlightSlots(table, int(parameters.get("MaxInFlight", 1)))


class LoadReader:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._sqs = stack.client("sqs")
        self._slots = stack_slots(stack)

    def read(self) -> PipelineLoad:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._stack.outputs.IngestQueueUrl, AttributeNames=QUEUE_ATTRIBUTES
        )["Attributes"]
        return PipelineLoad(sum(int(v) for v in attributes.values()), self._slots.held(), self._slots.limit)


class LoadWatch(threading.Thread):
    """Reports the pipeline's load every ``interval`` seconds until stopped (errors are reported, not raised)."""

    def __init__(self, reader: LoadReader, report: Callable[[str], None], interval: float = 2.0) -> None:
        super().__init__(name="photopipe-load", daemon=True)
        self._reader = reader
        self._report = report
        self._interval = interval
        self._stop = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self._report(self._reader.read().describe())
            except Exception as error:  # noqa: BLE001 - a status line must not end the upload
                self._report(f"pipeline: load unknown ({type(error).__name__})")
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self.join(timeout=5)
