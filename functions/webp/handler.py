"""Webp: encode one variant (the state machine maps over them) to media/{media_id}/{variant}.webp."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.models import VariantTask
from photopipe_core.settings import get_settings
from photopipe_core.storage import object_store

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=VariantTask)
def lambda_handler(event: VariantTask, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media_id, step="webp", execution=event.execution_arn, variant=event.variant.name)
    return steps.encode_variant(event.media_id, event.variant, object_store(), get_settings()).model_dump(mode="json")
