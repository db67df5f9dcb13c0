"""Each function's role allows exactly what its code calls: every AWS request the functional tests saw a handler make
is allowed by the deployed template (SAM-transformed), and every permission the template grants a function was used
by one. A new boto3 call without its permission fails here, and so does a permission nothing uses any more.

The calls are recorded by tests/functional/calls.py during the other functional tests, so this module runs last
(conftest orders it) and judges "unused" only when the whole functional suite ran.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from photopipe_infra.sam_transform import transformed
from tests.functional.calls import RECORDER, Call

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.after_every_handler

# The functional stack's names (conftest `stack`) → the template's resources, in the test's resource spelling.
QUEUES = {"ingest": "IngestQueue", "failed": "FailedQueue", "webhook": "WebhookQueue"}
BUSES = {"media-events": "MediaEventBus"}


@dataclass(frozen=True)
class Grant:
    """One (action, resource pattern) of a role, in the spelling of calls.Call (``object:uploads/*``)."""

    action: str
    resource: str

    def allows(self, call: Call) -> bool:
        return self.action == call.action and fnmatch.fnmatchcase(call.resource, self.resource)


def _resource(value: Any) -> str:
    """A policy Resource of the transformed template in the test's spelling."""
    if value == {"Fn::GetAtt": ["MediaBucket", "Arn"]}:
        return "bucket"
    if value == {"Fn::GetAtt": ["MediaTable", "Arn"]}:
        return "table"
    if value == {"Ref": "Pipeline"}:
        return "state-machine:*"
    if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in QUEUES.values():
        return f"queue:{value['Fn::GetAtt'][0]}"
    sub = value.get("Fn::Sub") if isinstance(value, dict) else None
    if isinstance(sub, list) and sub[0].endswith(":event-bus/${eventBusName}"):  # SAM's EventBridgePutEventsPolicy
        return f"event-bus:{sub[1]['eventBusName']['Ref']}"
    if isinstance(sub, str):
        for prefix, spelled in (("${MediaBucket.Arn}/", "object:"), ("${MediaTable.Arn}/", "")):
            if sub.startswith(prefix):
                return spelled + sub.removeprefix(prefix)
        if sub.endswith(":execution:${Pipeline.Name}:*"):
            return "execution:*"
    raise AssertionError(f"a policy resource the test cannot read: {json.dumps(value)}")


def grants(statement: dict[str, Any]) -> set[Grant]:
    assert statement["Effect"] == "Allow", statement
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    condition = statement.get("Condition", {})
    prefixes = condition.get("StringLike", {}).get("s3:prefix") if condition else None
    assert set(condition) <= {"StringLike"}, statement
    found = set()
    for action in actions:
        for resource in map(_resource, resources):
            if prefixes is None:
                found.add(Grant(action, resource))
            else:  # ListBucket limited to keys under these prefixes
                found |= {Grant(action, f"{resource}?prefix={p}") for p in prefixes}
    return found


def role_grants(template: dict[str, Any], function: str) -> set[Grant]:
    role = template["Resources"][f"{function}Role"]["Properties"]
    return {g for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"] for g in grants(s)}


def functions(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(code directory, handler) → the function's logical id, as calls.CallRecorder keys the calls."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 - read as SAM wrote it: CodeUri is a folder

    declared = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    found = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            directory = Path(declared[name]["Properties"]["CodeUri"]).name
            module, _, attribute = resource["Properties"]["Handler"].partition(".")
            found[(directory, "app" if module == "app" else attribute)] = name
    return found


def spelled(call: Call) -> Call:
    """A recorded call with the functional stack's names in the template's (queues by logical id)."""
    if call.resource.startswith("queue:"):
        return Call(call.action, f"queue:{QUEUES[call.resource.rsplit('/', 1)[-1]]}")
    if call.resource.startswith("event-bus:"):
        return Call(call.action, f"event-bus:{BUSES[call.resource.removeprefix('event-bus:')]}")
    return call


def skip_unless_every_handler_ran(request: pytest.FixtureRequest) -> None:
    """What was *not* called is known only when every functional test ran (not for a single file or -k)."""
    ran = {Path(item.path) for item in request.session.items}
    suite = set(Path(__file__).parent.glob("test_*.py"))
    if not suite <= ran:
        pytest.skip(f"needs the whole functional suite to have run (missing {sorted(p.name for p in suite - ran)})")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return transformed()


def test_every_call_a_function_makes_is_allowed_by_its_role(template: dict[str, Any]) -> None:
    by_handler = functions(template)
    assert RECORDER.calls, "no calls were recorded: run this module with the other functional tests"
    refused = {}
    for handler, made in RECORDER.calls.items():
        name = by_handler[handler]
        allowed = role_grants(template, name)
        missing = sorted(c for c in map(spelled, made) if not any(g.allows(c) for g in allowed))
        if missing:
            refused[name] = missing
    assert refused == {}


def test_every_permission_a_function_has_is_used_by_its_code(
    template: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    skip_unless_every_handler_ran(request)
    unused = {}
    for handler, name in functions(template).items():
        made = {spelled(c) for c in RECORDER.calls.get(handler, set())}
        idle = sorted((g.action, g.resource) for g in role_grants(template, name) if not any(g.allows(c) for c in made))
        if idle:
            unused[name] = idle
    assert unused == {}


# What a state machine's logging configuration needs (CloudWatch Logs' log delivery, as Step Functions documents it).
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def test_the_state_machine_may_invoke_its_functions_and_write_only_what_its_last_resort_states_write(
    template: dict[str, Any],
) -> None:
    definition = template["Resources"]["Pipeline"]["Properties"]["DefinitionString"]
    text = json.dumps(definition)
    integrations = {
        "arn:aws:states:::dynamodb:updateItem": Grant("dynamodb:UpdateItem", "table"),
        "arn:aws:states:::sqs:sendMessage": Grant("sqs:SendMessage", "queue:FailedQueue"),
        "arn:aws:states:::events:putEvents": Grant("events:PutEvents", "event-bus:MediaEventBus"),
    }
    used = {grant for resource, grant in integrations.items() if resource in text}
    assert text.count("arn:aws:states:::") == text.count("arn:aws:states:::lambda:invoke") + len(used)
    statements = template["Resources"]["PipelineRole"]["Properties"]["Policies"]
    others = set()
    invoked = set()
    delivery: set[str] = set()
    for policy in statements:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Action"] in ("lambda:InvokeFunction", ["lambda:InvokeFunction"]):
                invoked.add(json.dumps(statement["Resource"], sort_keys=True))
            elif statement["Resource"] == "*":  # only the log delivery, whose actions take no resource
                delivery |= set(statement["Action"])
            else:
                others |= grants(statement)
    assert others == used
    assert delivery == LOG_DELIVERY
    substituted = template["Resources"]["Pipeline"]["Properties"]["DefinitionSubstitutions"]
    assert len(invoked) == sum(1 for key in substituted if key.endswith("FunctionArn"))


# Read by libraries, not by the settings model: Powertools (every function) and glibc (Resize).
LIBRARY_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "GLIBC_TUNABLES",
}
# Settings without a useful default: a function that reads one must be given it.
RESOURCE_NAMES = {
    "media_bucket",
    "media_table",
    "pipeline_arn",
    "ingest_queue_url",
    "failed_queue_url",
    "webhook_queue_url",
}


def test_each_function_is_given_only_the_variables_its_code_reads(
    template: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    skip_unless_every_handler_ran(request)
    wrong = {}
    for handler, name in functions(template).items():
        given = set(template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {}))
        read = RECORDER.settings.get(handler, set())
        unread = given - {field.upper() for field in read} - LIBRARY_VARIABLES
        missing = {field.upper() for field in read & RESOURCE_NAMES} - given
        if unread or missing:
            wrong[name] = {"given but never read": sorted(unread), "read but not given": sorted(missing)}
    assert wrong == {}
