"""Dedupe: claim the original's sha256; byte-identical media become DUPLICATE of the first owner."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from photopipe_core import steps
from photopipe_core.models import StepInput
from photopipe_core.repository import media_repository

logger = Logger()


@logger.inject_lambda_context
@event_parser(model=StepInput)
def lambda_handler(event: StepInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(media_id=event.media.media_id, step="dedupe", execution=event.execution_arn)
    return {"duplicate_of": steps.dedupe(event, media_repository())}
