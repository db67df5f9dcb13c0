"""Validate: type by content and limits before any decode; the media becomes PROCESSING."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.inflight import in_flight_slots
from photopipe_core.models import StepInput
from photopipe_core.repository import media_repository
from photopipe_core.settings import get_settings
from photopipe_core.storage import object_store

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=StepInput)
def lambda_handler(event: StepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="validate", execution=event.execution_arn)
    result = steps.validate(event, object_store(), media_repository(), get_settings(), in_flight_slots())
    return result.model_dump(mode="json")
