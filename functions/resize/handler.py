"""Resize: decode once, render every variant upright in sRGB, write each to media/{media_id}/{variant}.webp."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.models import StepInput
from photopipe_core.settings import get_settings
from photopipe_core.storage import object_store

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=StepInput)
def lambda_handler(event: StepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="resize", execution=event.execution_arn)
    result = steps.resize(event, object_store(), get_settings())
    return result.model_dump(mode="json", include={"variants", "phash", "placeholder", "facts", "rendered_with"})
