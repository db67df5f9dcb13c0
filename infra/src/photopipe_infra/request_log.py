"""LocalStack's log keeps the requests that failed, not a line for every request that succeeded.

Upstream: ``localstack.aws.handlers.logging.ResponseLogger`` logs every response at INFO on the
``localstack.request.aws`` and ``localstack.request.http`` loggers ("AWS dynamodb.PutItem => 200"). A photo makes
some thirty requests, so the log grew by about 2.5 KB a photo (24 MB in a 5,000-photo soak), and formatting and
writing those lines took about 8 % of LocalStack's busy time (py-spy, mid-soak). A filter on both loggers drops the
records of answers below 400; errors (4xx, 5xx) are logged as before. ``PHOTOPIPE_REQUEST_LOG=1`` in LocalStack's
environment keeps every line (the launcher's ``request_log``, from the same variable in ``photopipe up``'s).
"""

from __future__ import annotations

import logging
import os

from localstack.runtime import hooks

LOGGERS = ("localstack.request.aws", "localstack.request.http")
KEEP_ALL_VARIABLE = "PHOTOPIPE_REQUEST_LOG"  # launcher.REQUEST_LOG_ENV (this module runs in LocalStack's venv)


class FailedRequestsOnly(logging.Filter):
    """Passes a response record whose status code (its third argument, after the service or method and the
    operation or path) is 400 or more, and any other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        status = args[2] if len(args) >= 3 else None  # noqa: PLR2004
        try:
            return int(status) >= 400  # type: ignore[arg-type]  # noqa: PLR2004
        except (TypeError, ValueError):
            return True


@hooks.on_infra_start()
def log_failed_requests_only() -> None:
    if os.environ.get(KEEP_ALL_VARIABLE, "").strip() in ("1", "true", "yes"):
        return
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, FailedRequestsOnly) for existing in logger.filters):
            logger.addFilter(FailedRequestsOnly())
