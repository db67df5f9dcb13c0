"""Lambda and SQS metrics, Lambda logs and Step Functions execution logs, sent to CloudWatch in batches instead of one
request each.

For every invocation LocalStack made two more requests through its own gateway: ``PutMetricData`` (the
``AWS/Lambda`` ``Invocations``/``Errors`` data point, from a new thread) and ``PutLogEvents`` (the invocation's log
lines); SQS made one ``PutMetricData`` per message sent, received and deleted and per empty receive. Measured on a
stream of invokes, the two were about two thirds of LocalStack's CPU per invoke (15.6 → 3.3 ms); over 100 photos,
LocalStack — one interpreter, a third of the machine's CPU in a photo batch — spent 75 ms less per photo. The same
data points and the same log events still reach CloudWatch, in order, a fraction of a second later:

- metric data points are collected per account, region and namespace and sent every ``METRIC_FLUSH_SECONDS`` in
  ``PutMetricData`` calls of up to 1,000 points, each with the timestamp of the event it counts;
- a function version's log shipper, once it has an invocation's logs, waits ``LOG_LINGER_SECONDS`` for more and
  sends what it has in one ``PutLogEvents`` per stream (creating the group and stream when missing, as before);
- the metrics a function logs in CloudWatch's embedded metric format (a JSON line with an ``_aws`` member, as
  Powertools' ``Metrics`` prints them) become data points, as CloudWatch Logs extracts them on AWS; LocalStack
  keeps them as log lines only, so the stack's own metrics (``processed``, ``rejected_<reason>``, the
  reconciler's actions…) and the dashboard built on them were empty locally;
- a state machine that logs to a log group (every event of an EXPRESS run, at level ALL: about 24 per photo) made
  one ``PutLogEvents`` per event, from the run's own thread; the events are collected per log stream and sent
  every ``LOG_LINGER_SECONDS`` in one call, oldest first;
- CloudWatch stores a ``PutMetricData`` call in one SQLite transaction. Upstream's
  ``CloudwatchDatabase.add_metric_data`` opened a connection and committed (a synced write) once per data point:
  1.6 ms a point, 1.6 s for a batch of 1,000 on this machine, about a sixth of LocalStack's busy time in a photo
  burst. The rows written are the same.

``UPSTREAM_SHA256`` is the hash of the upstream functions replaced here; a test fails when a LocalStack upgrade
changes them.

Registered as LocalStack ``on_infra_start`` hooks, the way LocalStack patches its own libraries.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from localstack.aws.api.cloudwatch import StandardUnit
from localstack.aws.connect import connect_to
from localstack.runtime import hooks
from localstack.services.cloudwatch.cloudwatch_database_helper import CloudwatchDatabase
from localstack.services.lambda_.invocation import metrics
from localstack.services.lambda_.invocation.logs import LogHandler, LogItem, ShutdownPill
from localstack.services.sqs import provider as sqs_provider
from localstack.services.stepfunctions.asl.eval.event.logging import CloudWatchLoggingSession, HistoryLog
from localstack.services.stepfunctions.asl.utils.encoding import to_json_str
from localstack.utils.aws.client_types import ServicePrincipal
from localstack.utils.bootstrap import is_api_enabled
from localstack.utils.cloudwatch.cloudwatch_util import dimension_lambda

LOG = logging.getLogger(__name__)

# sha256 of the upstream functions replaced here, in localstack-core 4.14.0 (see upstream_sha256).
UPSTREAM_SHA256 = "3e46ce1b483fa6f59b451e02fa7bbd138b7bc727dd9ed7c99084f1ce07b3f044"

METRIC_FLUSH_SECONDS = 1.0
METRICS_PER_CALL = 1000  # PutMetricData's limit
LOG_LINGER_SECONDS = 0.3
EVENTS_PER_CALL = 10_000  # PutLogEvents' limits: events, and bytes (each event counts 26 bytes more)
BYTES_PER_CALL = 1_000_000


class Batcher:
    """Items collected by a key and handed to ``send`` together, by one thread started with the first item, every
    ``interval`` seconds."""

    def __init__(self, name: str, interval: float) -> None:
        self._name, self._interval = name, interval
        self._lock = threading.Lock()
        self._pending: dict[Any, list[dict[str, Any]]] = {}
        self._thread: threading.Thread | None = None

    def collect(self, key: Any, item: dict[str, Any]) -> None:
        with self._lock:
            self._pending.setdefault(key, []).append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, items in pending.items():
            self.send(key, items)

    def send(self, key: Any, items: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class MetricBatcher(Batcher):
    """CloudWatch data points collected per account, region and namespace, sent in batches by one thread."""

    def __init__(self) -> None:
        super().__init__("cloudwatch-metrics", METRIC_FLUSH_SECONDS)

    def add(self, account_id: str | None, region_name: str | None, namespace: str, datum: dict[str, Any]) -> None:
        if is_api_enabled("cloudwatch"):
            self.collect((account_id, region_name, namespace), datum)

    def publish_lambda_metric(
        self,
        metric: str,
        value: float,
        kwargs: dict[str, Any],
        account_id: str | None = None,
        region_name: str | None = None,
    ) -> None:
        """In place of LocalStack's ``publish_lambda_metric`` (the same data point)."""
        datum = {"MetricName": metric, "Dimensions": dimension_lambda(kwargs), "Timestamp": datetime.now(UTC)}
        self.add(account_id, region_name, "AWS/Lambda", {**datum, "Value": value})

    def publish_sqs_metric(
        self, account_id: str, region: str, queue_name: str, metric: str, value: float = 1, unit: str = "Count"
    ) -> None:
        """In place of LocalStack's ``publish_sqs_metric`` (the same data point)."""
        dimensions = [{"Name": "QueueName", "Value": queue_name}]
        datum = {"MetricName": metric, "Dimensions": dimensions, "Unit": unit, "Timestamp": datetime.now(UTC)}
        self.add(account_id, region, "AWS/SQS", {**datum, "Value": value})

    def send(self, key: tuple[str | None, str | None, str], data: list[dict[str, Any]]) -> None:
        account_id, region_name, namespace = key
        cloudwatch = connect_to(aws_access_key_id=account_id, region_name=region_name).cloudwatch
        for start in range(0, len(data), METRICS_PER_CALL):
            chunk = data[start : start + METRICS_PER_CALL]
            try:
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=chunk)
            except Exception as error:  # noqa: BLE001 - metrics must never break the calls they count
                LOG.info("Unable to put %s metric data to CloudWatch: %s", namespace, error)


def embedded_metrics(logs: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ``(namespace, datum)`` of every data point in the embedded-metric-format documents among ``logs``.

    A document is one JSON line: ``_aws.CloudWatchMetrics`` lists directives, each a namespace, dimension sets
    (names of the document's members) and metrics (named members holding a number or a list of numbers). A line
    that is not such a document is skipped, as is a directive naming a dimension the document lacks (CloudWatch
    rejects those) and a metric whose member is missing or not numbers; one bad line costs no other line's data."""
    for line in logs.split("\n"):
        if '"_aws"' not in line:
            continue
        try:
            yield from _document_data(json.loads(line))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            continue


def _document_data(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A document's data points, all or none (built whole before any is given out)."""
    when = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, UTC)
    data = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        namespace = directive["Namespace"]
        dimension_sets = directive.get("Dimensions") or [[]]
        if not isinstance(namespace, str) or any(name not in document for names in dimension_sets for name in names):
            continue
        for names in dimension_sets:
            dimensions = [{"Name": name, "Value": str(document[name])} for name in names]
            for metric in directive.get("Metrics") or []:
                name, value = metric["Name"], document.get(metric["Name"])
                values = [v for v in (value if isinstance(value, list) else [value]) if _is_number(v)]
                if not isinstance(name, str) or not values:
                    continue
                datum: dict[str, Any] = {"MetricName": name, "Dimensions": dimensions, "Timestamp": when}
                datum["Values"] = [float(v) for v in values]
                if metric.get("Unit") in UNITS:
                    datum["Unit"] = metric["Unit"]
                if metric.get("StorageResolution") in (1, 60):
                    datum["StorageResolution"] = metric["StorageResolution"]
                data.append((namespace, datum))
    return data


# CloudWatch's units (a data point with another is refused, and with it the whole PutMetricData call).
UNITS = frozenset(unit.value for unit in StandardUnit)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _drain(handler: LogHandler, first: LogItem) -> tuple[list[tuple[LogItem, int]], bool]:
    """``first`` and whatever else arrives within the linger, each with its time; and whether to stop after."""
    items = [(first, int(time.time() * 1000))]
    deadline = time.monotonic() + LOG_LINGER_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            item = handler.log_queue.get(timeout=remaining)
        except queue.Empty:
            break
        if isinstance(item, ShutdownPill):
            return items, True
        items.append((item, int(time.time() * 1000)))
    return items, False


def _batches(items: list[tuple[LogItem, int]]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Per stream, in arrival order: lists of events within PutLogEvents' limits."""
    streams: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item, timestamp in items:
        events = streams.setdefault((item.log_group, item.log_stream), [])
        # Split by newline, keeping the newlines; empty lines are not accepted by CloudWatch.
        events += [{"timestamp": timestamp, "message": line + "\n"} for line in item.logs.split("\n") if line]
    for (group, stream), events in streams.items():
        for batch in _within_limits(events):
            yield group, stream, batch


def _within_limits(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """``events`` in lists that PutLogEvents accepts (its counts of events and bytes)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = len(event["message"].encode()) + 26
        if batch and (len(batch) == EVENTS_PER_CALL or size + event_size > BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch


def _put_events(logs: Any, group: str, stream: str, events: list[dict[str, Any]], create_group: bool = True) -> None:
    try:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    except logs.exceptions.ResourceNotFoundException:
        if create_group:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def run_batched_log_loop(self: LogHandler, *args: Any, **kwargs: Any) -> None:
    """``LogHandler.run_log_loop``, sending what arrives within ``LOG_LINGER_SECONDS`` together."""
    logs = connect_to.with_assumed_role(
        region_name=self.region, role_arn=self.role_arn, service_principal=ServicePrincipal.lambda_
    ).logs
    stop = False
    while not stop and not self._shutdown_event.is_set():
        first = self.log_queue.get()
        if isinstance(first, ShutdownPill):
            return
        items, stop = _drain(self, first)
        _publish_embedded_metrics(self, items)
        for group, stream, events in _batches(items):
            try:
                _put_events(logs, group, stream, events)
            except Exception as error:  # noqa: BLE001 - logs must never break invocations
                LOG.warning("Error saving logs to group %s in region %s: %s", group, self.region, error)


def _publish_embedded_metrics(handler: LogHandler, items: list[tuple[LogItem, int]]) -> None:
    account_id = handler.role_arn.split(":")[4] if handler.role_arn.count(":") >= 5 else None
    try:
        for item, _ in items:
            for namespace, datum in embedded_metrics(item.logs):
                _metrics.add(account_id, handler.region, namespace, datum)
    except Exception as error:  # noqa: BLE001 - metrics must never break the logs they come from
        LOG.info("Unable to read embedded metrics from a function's logs: %s", error)


class HistoryLogBatcher(Batcher):
    """Step Functions' execution log events, collected per account, region, group and stream and sent by one thread
    every ``LOG_LINGER_SECONDS``, each batch in time order (the events of one run keep their order)."""

    def __init__(self) -> None:
        super().__init__("stepfunctions-logs", LOG_LINGER_SECONDS)

    def add(self, session: CloudWatchLoggingSession, history_log: HistoryLog) -> None:
        event = {
            "timestamp": int(history_log["event_timestamp"].timestamp() * 1000),
            "message": to_json_str(history_log),
        }
        configuration = session.configuration
        stream = (
            configuration.log_account_id,
            configuration.log_region,
            configuration.log_group_name,
            configuration.log_stream_name,
        )
        self.collect(stream, event)

    def send(self, key: tuple[str, str, str, str], events: list[dict[str, Any]]) -> None:
        account_id, region, group, stream = key
        logs = connect_to(aws_access_key_id=account_id, region_name=region).logs
        for batch in _within_limits(sorted(events, key=lambda event: event["timestamp"])):
            try:
                _put_events(logs, group, stream, batch, create_group=False)  # as upstream: the stream only
            except Exception as error:  # noqa: BLE001 - logs must never break executions
                LOG.warning("State machine log events could not be sent to %s: %s", group, error)


def upstream_sha256() -> str:
    """The sha256 of the upstream functions replaced here, to notice a LocalStack upgrade that changes them."""
    replaced = (
        metrics.publish_lambda_metric,
        sqs_provider.publish_sqs_metric,
        LogHandler.run_log_loop,
        CloudwatchDatabase.add_metric_data,
        CloudWatchLoggingSession.publish_history_log,
    )
    return hashlib.sha256("".join(inspect.getsource(function) for function in replaced).encode()).hexdigest()


SINGLE_COLUMNS = "account_id, region, metric_name, namespace, timestamp, dimensions, unit, storage_resolution, value"
AGGREGATED_COLUMNS = (
    "account_id, region, metric_name, namespace, timestamp, dimensions, unit, storage_resolution, "
    "sample_count, sum, min, max"
)


def add_metric_data_at_once(
    self: CloudwatchDatabase, account_id: str, region: str, namespace: str, metric_data: list[dict[str, Any]]
) -> None:
    """``CloudwatchDatabase.add_metric_data``, the same rows written in one transaction instead of one per point."""
    now = int(datetime.now(UTC).timestamp())
    single: list[tuple[Any, ...]] = []
    aggregated: list[tuple[Any, ...]] = []
    for metric in metric_data:
        timestamp = self._convert_timestamp_to_unix(metric["Timestamp"]) if metric.get("Timestamp") else now
        dimensions = self._get_ordered_dimensions_with_separator(metric.get("Dimensions"))
        row = (account_id, region, metric.get("MetricName"), namespace, timestamp, dimensions)
        row += (metric.get("Unit"), metric.get("StorageResolution"))
        if metric.get("Value") is not None:
            single.append((*row, metric["Value"]))
        elif values := metric.get("Values"):
            counts = metric.get("Counts", [1] * len(values))
            for index, value in enumerate(values):
                single += [(*row, value)] * int(counts[index])
        if statistics := metric.get("StatisticValues"):
            aggregated.append((*row, *(statistics.get(k) for k in ("SampleCount", "Sum", "Minimum", "Maximum"))))
    if not single and not aggregated:
        return
    with self.DATABASE_LOCK, contextlib.closing(sqlite3.connect(self.METRICS_DB)) as connection, connection:
        connection.executemany(
            f"INSERT INTO {self.TABLE_SINGLE_METRICS} ({SINGLE_COLUMNS}) VALUES ({', '.join('?' * 9)})", single
        )
        connection.executemany(
            f"INSERT INTO {self.TABLE_AGGREGATED_METRICS} ({AGGREGATED_COLUMNS}) VALUES ({', '.join('?' * 12)})",
            aggregated,
        )


_metrics = MetricBatcher()
_history_logs = HistoryLogBatcher()
_UPSTREAM_AS_IMPORTED = upstream_sha256()  # before the hooks below replace what it hashes


@hooks.on_infra_start()
def store_metric_data_at_once() -> None:
    if _UPSTREAM_AS_IMPORTED != UPSTREAM_SHA256:
        LOG.warning("LocalStack's CloudWatch or Lambda logging differs from what cloudwatch_batching was written for")
    CloudwatchDatabase.add_metric_data = add_metric_data_at_once  # type: ignore[assignment,method-assign]


@hooks.on_infra_start()
def batch_lambda_metrics() -> None:
    metrics.publish_lambda_metric = _metrics.publish_lambda_metric  # type: ignore[assignment]


@hooks.on_infra_start()
def batch_sqs_metrics() -> None:
    sqs_provider.publish_sqs_metric = _metrics.publish_sqs_metric  # type: ignore[assignment]


@hooks.on_infra_start()
def batch_lambda_logs() -> None:
    LogHandler.run_log_loop = run_batched_log_loop  # type: ignore[method-assign]


def publish_history_log_batched(self: CloudWatchLoggingSession, history_log: HistoryLog) -> None:
    """``CloudWatchLoggingSession.publish_history_log``: the same event, sent with others a moment later."""
    _history_logs.add(self, history_log)


@hooks.on_infra_start()
def batch_stepfunctions_logs() -> None:
    CloudWatchLoggingSession.publish_history_log = publish_history_log_batched  # type: ignore[method-assign]
