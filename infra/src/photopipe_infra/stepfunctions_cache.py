"""Work LocalStack's Step Functions interpreter does once instead of on every execution or state.

Three ``on_infra_start`` hooks (the way LocalStack patches its own libraries), each found with py-spy on a batch of
photos, where LocalStack — one interpreter, one GIL — is half of the machine's CPU:

- **JSONPath compiled once.** The interpreter parses the JSONPath of every ``.$`` parameter, ResultSelector,
  ResultPath and Choice variable each time a state runs, and jsonpath-ng builds a whole new PLY parser (its LALR
  tables) for every parse: about 12 ms of CPU each, some twenty-five per photo. A parsed expression is never mutated
  (``find`` and ``update_or_create`` only read it), so it is cached by its text.
- **A state machine definition parsed once.** Every execution ran the ANTLR parser and the preprocessor over the
  whole definition (≈ 9 % of LocalStack's CPU). The evaluation tree keeps per-execution state in the execution's
  own ``env.heap``, never in the components; the one thing a component writes is its ``heap_key``, a random id
  made on first use, which is made here under a lock so two executions sharing a tree agree on it.
- **One Lambda client per role and region for Task states.** Each Task called STS AssumeRole and built a new boto
  client (≈ 10 % of LocalStack's CPU). Clients are kept for a few minutes per (service, region, role); botocore
  clients are thread-safe, and the pool is sized for the executions that wait on a Lambda at once.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from localstack.runtime import hooks
from localstack.services.stepfunctions.asl.component.common.path import result_path
from localstack.services.stepfunctions.asl.component.eval_component import EvalComponent
from localstack.services.stepfunctions.asl.parse.asl_parser import AmazonStateLanguageParser
from localstack.services.stepfunctions.asl.utils import boto_client, json_path
from localstack.services.stepfunctions.backend.execution_worker import ExecutionWorker
from localstack.utils.strings import long_uid

LOG = logging.getLogger(__name__)
CACHED_PATHS = 4096
CACHED_DEFINITIONS = 64
CLIENT_SECONDS = 300.0  # well inside the assumed role's one-hour credentials
CLIENT_POOL = 500  # connections kept per cached client: one per execution waiting on its Task at once


@hooks.on_infra_start()
def cache_jsonpath_parsing() -> None:
    for module in (json_path, result_path):
        parse: Any = module.parse
        if not hasattr(parse, "cache_info"):
            module.parse = functools.lru_cache(maxsize=CACHED_PATHS)(parse)  # type: ignore[attr-defined]
    LOG.debug("Step Functions JSONPath expressions are compiled once and cached")


_heap_key_lock = threading.Lock()


def _heap_key(component: EvalComponent) -> str:
    key: str | None = component._EvalComponent__heap_key  # type: ignore[attr-defined]
    if key is None:
        with _heap_key_lock:
            key = component._EvalComponent__heap_key  # type: ignore[attr-defined]
            if key is None:
                key = long_uid()
                component._EvalComponent__heap_key = key  # type: ignore[attr-defined]
    return key


@functools.lru_cache(maxsize=CACHED_DEFINITIONS)
def _program(definition: str) -> EvalComponent:
    return AmazonStateLanguageParser.parse(definition)[0]


def _cached_entrypoint(worker: ExecutionWorker) -> EvalComponent:
    return _program(worker._evaluation_details.state_machine_details.definition)


@hooks.on_infra_start()
def cache_parsed_definitions() -> None:
    EvalComponent.heap_key = property(_heap_key)  # type: ignore[assignment,method-assign]
    ExecutionWorker._get_evaluation_entrypoint = _cached_entrypoint  # type: ignore[method-assign]
    LOG.debug("Step Functions definitions are parsed once per definition")


class _TaskClients:
    """``boto_client_for`` with its clients kept per (service, region, role) for ``CLIENT_SECONDS``."""

    def __init__(self, create: Callable[..., Any]) -> None:
        self._create = create
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str], tuple[float, Any]] = {}

    def __call__(self, service: str, region: str, state_credentials: Any) -> Any:
        key = (service, region, state_credentials.role_arn)
        now = time.monotonic()
        with self._lock:
            made, client = self._clients.get(key, (0.0, None))
        if client is not None and now - made < CLIENT_SECONDS:
            return client
        client = self._create(service=service, region=region, state_credentials=state_credentials)
        with self._lock:
            self._clients[key] = (now, client)
        return client


@hooks.on_infra_start()
def reuse_task_clients() -> None:
    original = boto_client.boto_client_for
    if isinstance(original, _TaskClients):
        return
    boto_client._BOTO_CLIENT_CONFIG = boto_client._BOTO_CLIENT_CONFIG.merge(Config(max_pool_connections=CLIENT_POOL))
    cached = _TaskClients(original)
    boto_client.boto_client_for = cached  # type: ignore[assignment]
    # Modules that imported the function by name before this hook ran keep their own reference: rebind it.
    for name, module in list(sys.modules.items()):
        imported_it = getattr(module, "boto_client_for", None) is original
        if imported_it and name.startswith("localstack.services.stepfunctions"):
            module.boto_client_for = cached
    LOG.debug("Step Functions Task clients are reused per service, region and role")
