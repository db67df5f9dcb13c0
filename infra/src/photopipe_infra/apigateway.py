"""API Gateway in the embedded stack answers as it does on AWS where LocalStack 4.14 does not.

**Gateway responses** (``GatewayResponses`` of ``AWS::Serverless::Api``): the status, headers and body the template
gives them. Upstream drops them twice:

- SAM writes a REST API's gateway responses into its OpenAPI body (``x-amazon-apigateway-gateway-responses``), and
  ``localstack.services.apigateway.helpers.import_api_from_openapi_spec`` (what ``PutRestApi`` runs) reads every
  extension but that one, so the API has none;
- ``GatewayExceptionHandler.create_exception_response`` (``next_gen/execute_api/handlers/gateway_exception.py``) uses
  a gateway response's ``statusCode`` but not its ``responseParameters`` or ``responseTemplates`` (two TODOs there):
  the body is always ``{"message": ...}``.

The ``on_infra_start`` hook wraps both: the import also stores the document's gateway responses, and an error
response gets the gateway response's static headers (``'value'``) and its ``application/json`` template rendered
with LocalStack's own VTL renderer, ``$context.error.messageString`` quoted as AWS quotes it.

**A multipart body without a boundary** (``Content-Type: multipart/form-data`` alone) made every request a 500
before it reached the integration: ``rolo.request.restore_payload`` (which the request parser,
``next_gen/execute_api/handlers/parse.py``, uses to rebuild the body) takes ``content_type.split("=")[1]``. Such a
request's body is passed on as it was sent, as AWS does.

``UPSTREAM_SHA256`` pins the upstream sources; a test fails when an upgrade changes them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
EXTENSION = "x-amazon-apigateway-gateway-responses"
HEADER_PREFIX = "gatewayresponse.header."
# sha256 of import_api_from_openapi_spec, GatewayExceptionHandler and restore_payload in LocalStack 4.14.0.
UPSTREAM_SHA256 = "d7ed807b237d124adfb0c4784bb0c513a1919909743654e91c9ab1f1f84cf440"


def upstream_sha256() -> str:
    from localstack.services.apigateway import helpers  # noqa: PLC0415 - loaded with the service
    from localstack.services.apigateway.next_gen.execute_api.handlers import gateway_exception, parse  # noqa: PLC0415

    digest = hashlib.sha256(inspect.getsource(helpers.import_api_from_openapi_spec).encode())
    digest.update(inspect.getsource(gateway_exception.GatewayExceptionHandler).encode())
    digest.update(inspect.getsource(parse.restore_payload).encode())
    return digest.hexdigest()


def store_gateway_responses(container: Any, document: dict[str, Any]) -> None:
    """Put the document's gateway responses on the REST API, as ``PutGatewayResponse`` would."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (  # noqa: PLC0415
        build_gateway_response,
    )

    for response_type, spec in (document.get(EXTENSION) or {}).items():
        container.gateway_responses[response_type] = build_gateway_response(
            response_type=response_type,
            status_code=str(spec["statusCode"]) if spec.get("statusCode") else None,
            response_parameters=spec.get("responseParameters"),
            response_templates=spec.get("responseTemplates"),
            default_response=False,
        )


def static_headers(parameters: dict[str, str]) -> dict[str, str]:
    """The headers a gateway response sets to fixed values (``'…'``); mapped values are not supported here."""
    headers = {}
    for name, value in parameters.items():
        if name.startswith(HEADER_PREFIX) and len(value) >= 2 and value[0] == value[-1] == "'":  # noqa: PLR2004
            headers[name.removeprefix(HEADER_PREFIX)] = value[1:-1]
        else:
            LOG.debug("gateway response parameter %s=%s is not a fixed header; not applied", name, value)
    return headers


def render_body(template: str, context_variables: dict[str, Any], stage_variables: dict[str, Any] | None) -> str:
    """The template rendered as API Gateway renders it: ``$context.error.messageString`` is a quoted JSON string."""
    from localstack.services.apigateway.next_gen.execute_api.template_mapping import (  # noqa: PLC0415
        ApiGatewayVtlTemplate,
    )

    variables = json.loads(json.dumps(context_variables, default=str))
    error = variables.get("error") or {}
    if "messageString" in error:
        error["messageString"] = json.dumps(error.get("message") or "")
    return str(ApiGatewayVtlTemplate().render_vtl(template, {"context": variables, "stageVariables": stage_variables}))


@functools.cache
def _wrap_import() -> None:
    from localstack.services.apigateway.helpers import get_rest_api_container  # noqa: PLC0415
    from localstack.services.apigateway.legacy import provider  # noqa: PLC0415

    original = provider.import_api_from_openapi_spec

    @functools.wraps(original)
    def import_api_from_openapi_spec(rest_api: Any, context: Any, open_api_spec: dict[str, Any], mode: Any) -> Any:
        result = original(rest_api, context, open_api_spec, mode)
        store_gateway_responses(get_rest_api_container(context, rest_api.id), open_api_spec)
        return result

    provider.import_api_from_openapi_spec = import_api_from_openapi_spec


@functools.cache
def _wrap_error_responses() -> None:
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (  # noqa: PLC0415
        get_gateway_response_or_default,
    )
    from localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception import (  # noqa: PLC0415
        GatewayExceptionHandler,
    )

    original = GatewayExceptionHandler.create_exception_response

    @functools.wraps(original)
    def create_exception_response(self: Any, exception: Any, context: Any) -> Any:
        response = original(self, exception, context)
        gateway_response = get_gateway_response_or_default(
            exception.type, context.deployment.rest_api.gateway_responses
        )
        for name, value in static_headers(gateway_response.get("responseParameters") or {}).items():
            response.headers[name] = value
        template = (gateway_response.get("responseTemplates") or {}).get("application/json")
        if template:
            response.set_data(render_body(template, context.context_variables, context.stage_variables))
        return response

    GatewayExceptionHandler.create_exception_response = create_exception_response  # type: ignore[method-assign]


@functools.cache
def _wrap_restore_payload() -> None:
    from localstack.services.apigateway.next_gen.execute_api.handlers import parse  # noqa: PLC0415

    original = parse.restore_payload

    @functools.wraps(original)
    def restore_payload(request: Any) -> bytes:
        if request.mimetype == "multipart/form-data" and "boundary=" not in (request.content_type or ""):
            return bytes(request.get_data())  # not a form anyone could parse: the bytes as sent
        return bytes(original(request))

    parse.restore_payload = restore_payload


@hooks.on_infra_start()
def apigateway_as_on_aws() -> None:
    _wrap_import()
    _wrap_error_responses()
    _wrap_restore_payload()
    LOG.debug("API Gateway applies gateway responses and passes boundary-less multipart bodies on")
