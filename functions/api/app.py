"""The photopipe HTTP API: a Chalice app used as the Lambda handler behind API Gateway (REST)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from chalice import Chalice, Response

from photopipe_core.pipeline import pipeline_starter
from photopipe_core.repository import media_repository
from photopipe_core.storage import object_store

logger = Logger()
app = Chalice(app_name="photopipe-api")


def _check(probe: Callable[[], bool]) -> dict[str, Any]:
    try:
        return {"ok": bool(probe())}
    except Exception as error:  # noqa: BLE001 - a health check reports every failure instead of raising it
        logger.warning("health check failed", extra={"error": repr(error)})
        return {"ok": False, "error": type(error).__name__}


@app.route("/v1/health", methods=["GET"])
def health() -> Response:
    checks = {
        "s3": _check(object_store().is_reachable),
        "dynamodb": _check(media_repository().is_reachable),
        "stepfunctions": _check(pipeline_starter().is_reachable),
    }
    healthy = all(check["ok"] for check in checks.values())
    return Response(
        body={"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
        headers={"Content-Type": "application/json"},
    )
