"""What photos cost on AWS: the usage measured on a run of the stack, priced per 1,000 photos at list prices.

The prices are one dated data file (``photopipe/data/aws-prices.json``), by region. The usage is what the run did,
counted where AWS counts it: the states each run entered (its history), each Lambda invocation's billed duration
times its function's memory (the REPORT lines of its log), the requests the stack's services answered and
DynamoDB's request units (counted by the embedded runtime), the API requests, and the bytes stored per photo. The same
runs are priced as STANDARD and as EXPRESS workflows (EXPRESS: one request per run and its duration at the smallest
memory step, instead of transitions).

Left out, and said so in the report: CloudWatch (logs ingested, custom metrics, alarms), data transfer out, KMS, and
every free tier.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WORKFLOW_TYPES = ("STANDARD", "EXPRESS")
PER = 1000  # photos the bill is given for
NOT_COUNTED = "CloudWatch (logs, metrics, alarms), data transfer out, KMS, free tiers"


class RegionPrices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stepfunctions_standard_per_transition: float
    stepfunctions_express_per_request: float
    stepfunctions_express_per_gb_second: float
    stepfunctions_express_memory_gb: float
    stepfunctions_express_duration_step_s: float
    lambda_per_request: float
    lambda_per_gb_second: dict[str, float]
    s3_tier1_per_request: float
    s3_tier2_per_request: float
    s3_storage_per_gb_month: float
    dynamodb_per_write_unit: float
    dynamodb_per_read_unit: float
    dynamodb_storage_per_gb_month: float
    sqs_per_request: float
    apigateway_rest_per_request: float
    eventbridge_per_custom_event: float


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: str
    source: str
    regions: dict[str, RegionPrices]
    s3_tier1_operations: frozenset[str]
    s3_free_operations: frozenset[str]


class Prices(BaseModel):
    """One region's prices, with the table's date and S3's request classes."""

    model_config = ConfigDict(frozen=True)

    region: str
    as_of: str
    table: RegionPrices
    s3_tier1_operations: frozenset[str]
    s3_free_operations: frozenset[str]


class PricesMissing(ValueError):
    pass


def load_prices(region: str, text: str | None = None) -> Prices:
    """The region's prices from the data file (or from ``text``, the same format)."""
    if text is None:
        text = resources.files("photopipe").joinpath("data/aws-prices.json").read_text()
    table = PriceTable.model_validate(json.loads(text))
    if region not in table.regions:
        known = ", ".join(sorted(table.regions))
        raise PricesMissing(f"no prices for {region} in photopipe/data/aws-prices.json (it has: {known}); add them")
    return Prices(
        region=region,
        as_of=table.as_of,
        table=table.regions[region],
        s3_tier1_operations=table.s3_tier1_operations,
        s3_free_operations=table.s3_free_operations,
    )


class Usage(BaseModel):
    """What a run of ``photos`` photos used, in all."""

    model_config = ConfigDict(frozen=True)

    photos: int = Field(gt=0)
    transitions: int  # states entered by the runs, retries included
    run_seconds: list[float]  # each run's duration, start to stop
    lambda_invocations: int
    lambda_gb_seconds: float
    requests: dict[str, int]  # service.Operation → answered, by clients
    internal: dict[str, int] = Field(default_factory=dict)  # … made by the services themselves
    api_requests: int = 0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    stored_bytes: int = 0  # originals and variants


def counts_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The embedded runtime's request counts (``GET /_photopipe/requests``) of a run: after minus before."""

    def minus(later: dict[str, float], earlier: dict[str, float]) -> dict[str, float]:
        spent = {name: later[name] - earlier.get(name, 0) for name in later}
        return {name: value for name, value in sorted(spent.items()) if value}

    spent: dict[str, Any] = {
        key: minus(after.get(key) or {}, before.get(key) or {})
        for key in ("requests", "internal", "api", "dynamodb_units")
    }
    tables_before = before.get("dynamodb_tables") or {}
    spent["dynamodb_tables"] = {}
    for table, later in sorted((after.get("dynamodb_tables") or {}).items()):
        earlier = tables_before.get(table) or {}
        used = {part: minus(later.get(part) or {}, earlier.get(part) or {}) for part in ("requests", "units")}
        if used["requests"]:
            spent["dynamodb_tables"][table] = used
    return spent


def _by_service(counts: dict[str, int], service: str) -> dict[str, int]:
    prefix = f"{service}."
    return {name[len(prefix) :]: count for name, count in counts.items() if name.startswith(prefix)}


def _merged(usage: Usage) -> dict[str, int]:
    merged = dict(usage.requests)
    for name, count in usage.internal.items():
        merged[name] = merged.get(name, 0) + count
    return merged


def express_gb_seconds(run_seconds: list[float], prices: RegionPrices) -> float:
    """EXPRESS bills each run's duration rounded up to the step, at the memory it used (at least the smallest step)."""
    step = prices.stepfunctions_express_duration_step_s
    return (
        sum(math.ceil(seconds / step - 1e-9) * step for seconds in run_seconds) * prices.stepfunctions_express_memory_gb
    )


def bill(usage: Usage, prices: Prices, workflow: str, architecture: str = "x86_64") -> dict[str, float]:
    """Dollars per 1,000 photos by line item, and their total; ``storage_per_month`` (originals and variants in S3)
    is a monthly cost on top, not part of the total."""
    if workflow not in WORKFLOW_TYPES:
        raise ValueError(f"workflow is one of {', '.join(WORKFLOW_TYPES)}, not {workflow}")
    p = prices.table
    merged = _merged(usage)
    s3 = _by_service(merged, "s3")
    tier1 = sum(n for op, n in s3.items() if op in prices.s3_tier1_operations)
    tier2 = sum(n for op, n in s3.items() if op not in prices.s3_tier1_operations | prices.s3_free_operations)
    if workflow == "STANDARD":
        orchestration = usage.transitions * p.stepfunctions_standard_per_transition
    else:
        orchestration = (
            len(usage.run_seconds) * p.stepfunctions_express_per_request
            + express_gb_seconds(usage.run_seconds, p) * p.stepfunctions_express_per_gb_second
        )
    lines = {
        "stepfunctions": orchestration,
        "lambda_requests": usage.lambda_invocations * p.lambda_per_request,
        "lambda_compute": usage.lambda_gb_seconds * p.lambda_per_gb_second[architecture],
        "s3_requests": tier1 * p.s3_tier1_per_request + tier2 * p.s3_tier2_per_request,
        "dynamodb": usage.dynamodb_read_units * p.dynamodb_per_read_unit
        + usage.dynamodb_write_units * p.dynamodb_per_write_unit,
        "sqs": sum(_by_service(merged, "sqs").values()) * p.sqs_per_request,
        "apigateway": usage.api_requests * p.apigateway_rest_per_request,
        # S3's own notifications to EventBridge are AWS service events (free); the stack's PutEvents are not
        "eventbridge": _by_service(usage.requests, "events").get("PutEvents", 0) * p.eventbridge_per_custom_event,
    }
    scale = PER / usage.photos
    per_thousand = {name: round(value * scale, 5) for name, value in lines.items()}
    per_thousand["total"] = round(sum(lines.values()) * scale, 4)
    per_thousand["storage_per_month"] = round(usage.stored_bytes / 1e9 * p.s3_storage_per_gb_month * scale, 4)
    return per_thousand


def counts_per_thousand(usage: Usage) -> dict[str, Any]:
    """The counts behind the bill, per 1,000 photos (requests by service, both the clients' and the services')."""
    scale = PER / usage.photos
    merged = _merged(usage)
    services = sorted({name.split(".", 1)[0] for name in merged})
    return {
        "transitions": round(usage.transitions * scale, 1),
        "transitions_per_run": round(usage.transitions / len(usage.run_seconds), 2) if usage.run_seconds else None,
        "lambda_invocations": round(usage.lambda_invocations * scale, 1),
        "lambda_gb_seconds": round(usage.lambda_gb_seconds * scale, 2),
        "requests_by_service": {
            service: round(sum(_by_service(merged, service).values()) * scale, 1) for service in services
        },
        "api_requests": round(usage.api_requests * scale, 1),
        "dynamodb_read_units": round(usage.dynamodb_read_units * scale, 1),
        "dynamodb_write_units": round(usage.dynamodb_write_units * scale, 1),
        "stored_mb": round(usage.stored_bytes / 1e6 * scale, 1),
    }


def emulator_requests_per_photo(usage: Usage) -> dict[str, float]:
    """Requests the stack's services answered per photo: in all, and besides the execution itself (its Step
    Functions requests and the Lambda invocations, which are the work)."""
    merged = _merged(usage)
    everything = sum(merged.values())
    execution = sum(_by_service(merged, "stepfunctions").values()) + _by_service(merged, "lambda").get("Invoke", 0)
    return {
        "all": round(everything / usage.photos, 2),
        "besides_the_execution": round((everything - execution) / usage.photos, 2),
    }


def report(usage: Usage, prices: Prices, architecture: str = "x86_64", measured_on: str = "STANDARD") -> dict[str, Any]:
    """The bill for both workflow types, the counts behind it and what it leaves out; ``measured_on``: the workflow
    type of the stack the runs went through (an EXPRESS stack's transitions are counted from its log)."""
    return {
        "measured_on": measured_on,
        "per_1000_photos_usd": {workflow: bill(usage, prices, workflow, architecture) for workflow in WORKFLOW_TYPES},
        "counts_per_1000_photos": counts_per_thousand(usage),
        "emulator_requests_per_photo": emulator_requests_per_photo(usage),
        "prices": {"region": prices.region, "as_of": prices.as_of, "architecture": architecture},
        "not_counted": NOT_COUNTED,
    }
