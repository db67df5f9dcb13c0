"""The photopipe HTTP API: a Chalice app used as the Lambda handler behind API Gateway (REST).

Routes only parse and delegate to ``photopipe_core.api.MediaApi``; errors become
``{"error": {"code", "message"}}`` here and nowhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice import Chalice, Response

from photopipe_core.api import ApiError, MediaApi, parse_media_query, parse_page_query, parse_upload_request
from photopipe_core.inflight import in_flight_slots
from photopipe_core.owners import OwnerCache
from photopipe_core.pipeline import pipeline_starter
from photopipe_core.quotas import quotas
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings
from photopipe_core.storage import object_store, presigner

logger = Logger()
metrics = Metrics()
app = Chalice(app_name="photopipe-api")
JSON = {"Content-Type": "application/json"}
# The upload page: plain files beside this module, served as they are (functions/api/page).
PAGE_DIR = Path(__file__).parent / "page"
PAGE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# Chalice's own routing errors, in the API's error format.
CHALICE_ERRORS = {
    "NotFoundError": "not_found",
    "MethodNotAllowedError": "method_not_allowed",
    "BadRequestError": "invalid_request",
    "UnsupportedMediaType": "unsupported_media_type",
    "InternalServerError": "internal",
}


@lru_cache(maxsize=1)
def media_api() -> MediaApi:
    return MediaApi(
        media_repository(),
        object_store(),
        presigner(),
        pipeline_starter(),
        in_flight_slots(),
        quotas(),
        get_settings(),
    )


@lru_cache(maxsize=1)
def owner_cache() -> OwnerCache:
    return OwnerCache(media_repository().owners)


def caller() -> str:
    """The owner of the request's API key. API Gateway admits only keys of the stage's usage plan and passes the
    key's id; the id must also map to an owner (a key made outside ``photopipe keys`` or revoked maps to none)."""
    identity = app.current_request.context.get("identity") or {}
    key_id = identity.get("apiKeyId")
    owner = owner_cache().owner_of(str(key_id)) if key_id else None
    if owner is None:
        raise ApiError(403, "forbidden", "this request needs a valid API key in the x-api-key header")
    return owner


def respond(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body=body, status_code=status, headers={**JSON, **(headers or {})})


def route(path: str, **options: Any) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """``app.route`` whose view may raise ApiError: it becomes the error's status and body."""

    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def handled(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except ApiError as error:
                return respond(error.body(), error.status, error.headers)

        return app.route(path, **options)(handled)

    return register


@app.middleware("http")
def error_format(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice's own errors (unknown method, unexpected exception …) in the API's error format; the request's
    metrics are published (CloudWatch EMF on stdout) once it is answered."""
    response = _with_request_id(_normalise_error(get_response(event)), _request_id(event))
    metrics.add_metric(name=f"http_{response.status_code // 100}xx", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    return response


def _request_id(event: Any) -> str:
    """API Gateway's id of the request (in its logs and access logs), else this invocation's."""
    request_id = (event.context or {}).get("requestId") if event is not None else None
    lambda_context = app.lambda_context
    return str(request_id or getattr(lambda_context, "aws_request_id", "") or "")


def _with_request_id(response: Response, request_id: str) -> Response:
    """An error names the request it answers (and is logged with it): the caller can quote the id, and the logs
    hold what went wrong inside — the answer never does."""
    if response.status_code >= 400 and isinstance(response.body, dict) and "error" in response.body:
        response.body["error"]["request_id"] = request_id
        response.headers["x-request-id"] = request_id
        log = logger.error if response.status_code >= 500 else logger.info
        log("request refused", extra={"request_id": request_id, "status": response.status_code, **response.body})
    return response


def _normalise_error(response: Response) -> Response:
    if response.status_code < 400 or not isinstance(response.body, dict) or "Code" not in response.body:
        return response
    code = CHALICE_ERRORS.get(str(response.body["Code"]), "error")
    answer = respond({"error": {"code": code, "message": str(response.body.get("Message", ""))}}, response.status_code)
    if response.status_code == 405:  # RFC 9110: a 405 names the methods the resource takes
        answer.headers["Allow"] = ", ".join(sorted(app.routes.get(_resource_path(), {})))
    return answer


def _resource_path() -> str:
    request = app.current_request
    return str(request.context.get("resourcePath", "")) if request is not None else ""


@route("/v1/uploads", methods=["POST"], content_types=["application/json", "text/plain"])
def create_upload() -> Response:
    owner, request = caller(), app.current_request
    upload = parse_upload_request(request.raw_body, get_settings())
    created = media_api().create_upload(owner, upload, request.headers.get("idempotency-key"))
    metrics.add_metric(name=f"uploads_{created['upload']['method'].lower()}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="upload_bytes_declared", unit=MetricUnit.Bytes, value=upload.size)
    return respond(created, 201)


@route("/v1/uploads/{media_id}/complete", methods=["POST"], content_types=["*/*"])  # no body: any type
def complete_upload(media_id: str) -> Response:
    completed = media_api().complete_upload(caller(), media_id)
    metrics.add_metric(name="uploads_completed_multipart", unit=MetricUnit.Count, value=1)
    return respond(completed)


@route("/v1/media/{media_id}", methods=["GET"])
def get_media(media_id: str) -> Response:
    return respond(media_api().get_media(caller(), media_id))


@route("/v1/media", methods=["GET"])
def list_media() -> Response:
    owner = caller()
    return respond(media_api().find(owner, parse_media_query(app.current_request.query_params or {})))


@route("/v1/albums", methods=["GET"])
def list_albums() -> Response:
    owner = caller()
    if app.current_request.query_params:
        raise ApiError(400, "unknown_query", "GET /v1/albums takes no query parameters")
    return respond(media_api().albums(owner))


@route("/v1/albums/{album_id}", methods=["GET"])
def get_album(album_id: str) -> Response:
    owner = caller()
    limit, next_token = parse_page_query(app.current_request.query_params or {})
    return respond(media_api().album(owner, album_id, limit, next_token))


@route("/v1/media/{media_id}/retry", methods=["POST"], content_types=["*/*"])  # no body: any type
def retry_media(media_id: str) -> Response:
    return respond(media_api().retry(caller(), media_id), 202)


def _check(probe: Callable[[], bool]) -> dict[str, Any]:
    try:
        return {"ok": bool(probe())}
    except Exception as error:  # noqa: BLE001 - a health check reports every failure instead of raising it
        logger.warning("health check failed", extra={"error": repr(error)})
        return {"ok": False, "error": type(error).__name__}


@route("/v1/health", methods=["GET"])
def health() -> Response:
    checks = {
        "s3": _check(object_store().is_reachable),
        "dynamodb": _check(media_repository().is_reachable),
        "stepfunctions": _check(pipeline_starter().is_reachable),
    }
    healthy = all(check["ok"] for check in checks.values())
    return respond({"status": "ok" if healthy else "degraded", "checks": checks}, 200 if healthy else 503)


@route("/v1/me", methods=["GET"])
def whoami() -> Response:
    return respond({"owner": caller()})


@functools.cache
def page_files() -> dict[str, tuple[str, str]]:
    """The upload page's files by name: text and content type (read once per container)."""
    return {
        path.name: (path.read_text(encoding="utf-8"), PAGE_TYPES[path.suffix])
        for path in PAGE_DIR.iterdir()
        if path.suffix in PAGE_TYPES and path.is_file()
    }


def page_headers(content_type: str) -> dict[str, str]:
    """The page loads only its own files; it talks to this API and to the storage its presigned URLs name."""
    endpoint = get_settings().presign_endpoint_url
    storage = "{0.scheme}://{0.netloc}".format(urlsplit(endpoint)) if endpoint else "https://*.amazonaws.com"
    policy = (
        f"default-src 'self'; img-src 'self' data: blob: {storage}; connect-src 'self' {storage}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    return {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@route("/", methods=["GET"])
def page() -> Response:
    """The upload page (no key needed to load it; it asks for one). Asked for without the trailing slash (…/prod),
    it is sent there: its files are named relative to it."""
    seen_as = str(app.current_request.context.get("path") or "/")
    if not seen_as.endswith("/"):
        return Response(body="", status_code=301, headers={"Location": f"{seen_as.rsplit('/', 1)[-1]}/"})
    text, content_type = page_files()["index.html"]
    return Response(body=text, status_code=200, headers=page_headers(content_type))


@route("/page/{name}", methods=["GET"])
def page_asset(name: str) -> Response:
    found = page_files().get(name)
    if found is None:
        raise ApiError(404, "not_found", f"the page has no file {name!r}")
    return Response(body=found[0], status_code=200, headers=page_headers(found[1]))


@route("/{proxy+}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def unknown_route(**_: str) -> Response:
    request = app.current_request
    raise ApiError(404, "not_found", f"no such route: {request.method} {request.path}")
