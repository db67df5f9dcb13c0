"""CloudFormation asks a resource still being created again after a tenth of a second, not after a whole one.

LocalStack's CloudFormation deploys a resource through its provider's handler and, while the handler answers
IN_PROGRESS, asks again: ``CFN_NO_WAIT_ITERATIONS`` times (5) at once, then once a second
(``ResourceProviderExecutor.deploy_loop``'s ``sleep_time``). A Lambda function is IN_PROGRESS until its state is
Active, which on this machine takes a few hundred milliseconds, so each function waited a full second after its
five quick asks: 11 of a stack's 18 seconds of resources were those pauses. Asking every 0.1 s keeps the wait close
to the function's own; the asking itself (a GetFunction inside the process) costs less than a millisecond.

Only the default changes: a caller that passes ``sleep_time`` keeps its own. ``UPSTREAM_SHA256`` is the hash of the
upstream method; a test fails when a LocalStack upgrade changes it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from typing import Any

from localstack.runtime import hooks
from localstack.services.cloudformation.resource_provider import ResourceProviderExecutor

LOG = logging.getLogger(__name__)
SLEEP_SECONDS = 0.1
UPSTREAM_SHA256 = "56edc28d15f012444c4fa88a084238c2470e31c39af56805c784360381babc22"


def upstream_sha256() -> str:
    """The sha256 of the upstream method whose default pause this shortens."""
    original = getattr(ResourceProviderExecutor.deploy_loop, "__wrapped__", ResourceProviderExecutor.deploy_loop)
    return hashlib.sha256(inspect.getsource(original).encode()).hexdigest()


@hooks.on_infra_start()
def poll_resources_in_progress_often() -> None:
    deploy_loop = ResourceProviderExecutor.deploy_loop
    if hasattr(deploy_loop, "__wrapped__"):
        return
    if upstream_sha256() != UPSTREAM_SHA256:
        LOG.warning("ResourceProviderExecutor.deploy_loop differs from the version %s was written for", __name__)

    @functools.wraps(deploy_loop)
    def polling_often(self: ResourceProviderExecutor, *args: Any, **kwargs: Any) -> Any:
        if len(args) < 5:  # noqa: PLR2004 - provider, resource, payload, max_timeout, then sleep_time
            kwargs.setdefault("sleep_time", SLEEP_SECONDS)
        return deploy_loop(self, *args, **kwargs)

    ResourceProviderExecutor.deploy_loop = polling_often  # type: ignore[method-assign]
    LOG.debug("CloudFormation asks a resource in progress again every %.1f s", SLEEP_SECONDS)
