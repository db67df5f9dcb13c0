"""schemathesis, an external API fuzzer, against the live API with the repository's ``schemathesis.toml``: every
check it has (no 5xx, every status and body as documented, no valid request refused, no invalid one accepted, 405
with Allow for other methods …) over the examples, coverage, fuzzing and stateful phases, with a fixed seed and a
bounded number of examples per operation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from photopipe.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 40  # per operation and phase: ≈ 1,000 requests in all


def test_schemathesis_finds_no_failure_against_the_live_api(stack: Stack, operator_key: str) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        "functions/api/openapi.yaml",
        "--url",
        stack.outputs.ApiUrl,
        "--header",  # the document's security scheme; its ignored_auth check also tries without it and a bad one
        f"x-api-key: {operator_key}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20261129",
        "--request-timeout",
        "60",
        "--no-color",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout
