"""Compile each JSONPath of a state machine once, not on every state transition.

LocalStack's Step Functions interpreter parses the JSONPath of every ``.$`` parameter, ResultSelector, ResultPath
and Choice variable each time a state runs, and jsonpath-ng builds a whole new PLY parser (its LALR tables) for
every parse: about 12 ms of CPU each on this kind of machine, some twenty-five of them per photo — more CPU than
the rest of a run costs LocalStack. A parsed expression is never mutated (``find`` and ``update_or_create`` only
read it), so caching it by its text gives the same results. Registered as a LocalStack ``on_infra_start`` hook, the
way LocalStack patches its own libraries.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from localstack.runtime import hooks
from localstack.services.stepfunctions.asl.component.common.path import result_path
from localstack.services.stepfunctions.asl.utils import json_path

LOG = logging.getLogger(__name__)
CACHED_PATHS = 4096


@hooks.on_infra_start()
def cache_jsonpath_parsing() -> None:
    for module in (json_path, result_path):
        parse: Any = module.parse
        if not hasattr(parse, "cache_info"):
            module.parse = functools.lru_cache(maxsize=CACHED_PATHS)(parse)  # type: ignore[attr-defined]
    LOG.debug("Step Functions JSONPath expressions are compiled once and cached")
