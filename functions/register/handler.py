"""Register: the pipeline's first step records the media item as PROCESSING for this execution."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core.models import StepInput
from photopipe_core.repository import media_repository

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=StepInput)
def lambda_handler(event: StepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="register", execution=event.execution_arn)
    item = media_repository().mark_processing(event.media, event.execution_arn)
    logger.info("media registered", extra={"status": item.status})
    return {"media": event.media.model_dump(mode="json"), "status": item.status.value}
